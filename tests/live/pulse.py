"""A virtual microphone for the live tests: a private PulseAudio server with a null sink.

The fixture starts ``pulseaudio`` as the current user with its own runtime folder and socket,
loads a null sink ``vmic`` at 48 kHz whose monitor is the default source, and hands out the
environment (``PULSE_SERVER``) under which PortAudio's ALSA ``pulse`` device (from
libasound2-plugins) records what ``paplay --device=vmic`` plays. See DEVELOPERS.md.
Test modules import the fixtures (not a conftest.py, which would shadow tests/conftest.py).
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.edge.modelfiles import model_path  # the same model lookup as tests/edge
from tests.process_output import LogFollower

SINK = "vmic"
SINK_RATE = 48000
DEVICE = "pulse"  # the ALSA PCM that talks to PulseAudio


@dataclass
class VirtualMic:
    env: dict
    runtime: Path
    device: str = DEVICE

    def play(self, path: Path) -> subprocess.Popen:
        """Start playing an audio file into the null sink (returns at once)."""
        return subprocess.Popen(["paplay", f"--device={SINK}", str(path)], env=self.env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def listen(self, *args, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "edge_genre", "listen", "--device",
                               self.device, *map(str, args)], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def start_listen(self, *args) -> "Listening":
        """``listen --json`` in the background (SIGINT at its default, as from a terminal)."""
        return Listening(subprocess.Popen(
            [sys.executable, "-m", "edge_genre", "listen", "--device", self.device, "--json",
             *map(str, args)], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)))

    def pactl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True,
                              timeout=30)

    def unplug(self) -> None:
        """Take the microphone away, as a pulled USB microphone: unload the null sink (its
        monitor, the source listen records, goes with it; PulseAudio ends the streams on it)."""
        done = self.pactl("unload-module", "module-null-sink")
        assert done.returncode == 0, done.stderr
        assert f"{SINK}.monitor" not in self.pactl("list", "short", "sources").stdout

    def plug(self) -> None:
        """Bring it back: load the null sink again and make its monitor the default source."""
        if f"{SINK}.monitor" not in self.pactl("list", "short", "sources").stdout:
            done = self.pactl("load-module", "module-null-sink", f"sink_name={SINK}",
                              f"rate={SINK_RATE}")
            assert done.returncode == 0, done.stderr
        done = self.pactl("set-default-source", f"{SINK}.monitor")
        assert done.returncode == 0, done.stderr


class Listening:
    """A running ``listen --json``: its stdout lines as parsed JSON, arriving on a queue, and its
    stderr collected, each read by a thread (so neither pipe can fill up and block it)."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[dict] = []
        self._stderr: list[str] = []
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for t in self._readers:
            t.start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            if line.strip():
                self.lines.put(json.loads(line))
        self.lines.put(None)  # end of output

    def _read_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def next_line(self, match, timeout: float) -> dict:
        """The next stdout object for which ``match(obj)`` is true, waiting at most ``timeout`` s
        in all; AssertionError (with stderr) when it does not come or the process ends first."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                obj = self.lines.get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(f"no matching line within {timeout:g} s; stderr:\n"
                                     + self.stderr) from None
            if obj is None:
                self.lines.put(None)
                self.process.wait(timeout=30)
                raise AssertionError(f"listen ended (exit {self.process.returncode}) before a "
                                     f"matching line; stderr:\n{self.stderr}")
            self.seen.append(obj)
            if match(obj):
                return obj

    def stop(self, timeout: float = 30) -> int:
        """Ctrl-C; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"listen did not end within {timeout:g} s; stderr:\n"
                                 + self.stderr) from None
        for t in self._readers:
            t.join(10)
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="session")
def virtual_mic(tmp_path_factory) -> VirtualMic:
    for tool in ("pulseaudio", "paplay", "pactl"):
        if shutil.which(tool) is None:
            pytest.skip(f"'{tool}' is not installed: the live tests need "
                        "'apt install pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins'")
    runtime = tmp_path_factory.mktemp("pulse")
    runtime.chmod(0o700)
    socket = runtime / "pulse.sock"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime),
           "PULSE_SERVER": f"unix:{socket}"}
    env.pop("PULSE_SINK", None)
    env.pop("PULSE_SOURCE", None)
    # The server's log (info level, on stderr) is copied to pulseaudio.log as it comes; its line
    # "Daemon startup complete." (modules loaded, socket listening) is the event waited on.
    server = subprocess.Popen(
        ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no",
         "--disallow-exit", "--log-target=stderr", "--log-level=info",
         f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1",
         f"--load=module-null-sink sink_name={SINK} rate={SINK_RATE}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    output = LogFollower(server.stderr, runtime / "pulseaudio.log")
    try:
        # 60 s: a bound for a hung start, not a synchronisation (it returns at the line, or
        # when the server ends).
        started = output.wait_for(lambda text: "Daemon startup complete" in text, timeout=60)
        if not started or server.poll() is not None:
            pytest.skip("pulseaudio did not start: " + output.text.strip()[-300:])
        subprocess.run(["pactl", "set-default-source", f"{SINK}.monitor"], env=env, check=True)
        listed = subprocess.run([sys.executable, "-m", "edge_genre", "listen", "--list-devices"],
                                env=env, capture_output=True, text=True, timeout=60)
        if listed.returncode != 0:
            pytest.skip("listen --list-devices failed: " + listed.stderr.strip())
        if f"  {DEVICE}  (" not in listed.stdout:
            pytest.skip(f"PortAudio shows no '{DEVICE}' capture device (is libasound2-plugins "
                        "installed?): " + listed.stdout.strip())
        yield VirtualMic(env=env, runtime=runtime)
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        output.join(10)  # the log copied to its end and its file closed


@pytest.fixture
def replug(virtual_mic) -> VirtualMic:
    """The virtual microphone for a test that unplugs it: plugged back in afterwards, whatever
    happened, so the session's other tests still have it."""
    yield virtual_mic
    virtual_mic.plug()


@pytest.fixture(scope="session")
def live_model() -> Path:
    """The int8 TFLite default model: what a Pi runs."""
    return model_path("int8", "tflite")
