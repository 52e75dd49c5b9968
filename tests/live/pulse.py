"""A virtual microphone for the live tests: a private PulseAudio server with a null sink.

The fixture starts ``pulseaudio`` as the current user with its own runtime folder and socket,
loads a null sink ``vmic`` at 48 kHz whose monitor is the default source, and hands out the
environment (``PULSE_SERVER``) under which PortAudio's ALSA ``pulse`` device (from
libasound2-plugins) records what ``paplay --device=vmic`` plays. See DEVELOPERS.md.
Test modules import the fixtures (not a conftest.py, which would shadow tests/conftest.py).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.edge.modelfiles import model_path  # the same model lookup as tests/edge

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
    log = open(runtime / "pulseaudio.log", "w")
    server = subprocess.Popen(
        ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no",
         "--disallow-exit", f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1",
         f"--load=module-null-sink sink_name={SINK} rate={SINK_RATE}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(50):
            if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
                break
            if server.poll() is not None:
                break
            time.sleep(0.1)
        else:
            server.poll()
        if server.poll() is not None:
            pytest.skip("pulseaudio did not start: "
                        + (runtime / "pulseaudio.log").read_text().strip()[-300:])
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
        log.close()


@pytest.fixture(scope="session")
def live_model() -> Path:
    """The int8 TFLite default model: what a Pi runs."""
    return model_path("int8", "tflite")
