"""What ``edge-genre listen`` costs live, against the same audio pushed offline.

A private PulseAudio server with a null sink is the microphone (as in the live tests; see
DEVELOPERS.md): a real GTZAN excerpt plays into it in a loop (``paplay``, restarted when it ends)
while ``edge-genre listen --json --device pulse`` records the sink's monitor. From the first
decision on (interpreter start and model load left out), the listen process's CPU time
(utime + stime of every thread, ``/proc/PID/stat``) and RSS (``/proc/PID/status``) are sampled
every ``--every`` seconds for ``--seconds`` seconds. Then the same with nothing playing (silence:
the model never runs, so what is left is the capture path). Then the same audio, at the rate the
device opened at, is pushed through ``Classifier.push`` in this process in 100 ms blocks (what
the capture delivers) as fast as it goes: CPU time / seconds of audio is the offline figure.

Figures: % of one core (CPU seconds / wall seconds x 100), RSS at the start and its growth, and
the largest gap between two decisions on the wall clock (the hop is 2 s; a gap well above it is
a stall). Run it on an otherwise idle machine: a shared one adds noise to the wall clock, not to
the CPU time.

    python -m edge_genre.benchmarks.live_cost --seconds 60
    python -m edge_genre.benchmarks.live_cost --seconds 120 --json > live_cost.json

Needs ``pulseaudio``, ``pulseaudio-utils`` (paplay, pactl), ``libportaudio2`` and
``libasound2-plugins`` (ALSA's ``pulse`` device).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edge_genre.benchmarks.proc import cpu_seconds, interrupt, status_kib

REPO_PARENT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = Path(os.environ.get("EDGE_GENRE_SHARED", REPO_PARENT / "shared")) / "data" / "gtzan-mini" / "genres"
DEFAULT_EXCERPT = "metal.00002"
SINK = "vmic"
SINK_RATE = 48000
DEVICE = "pulse"
#: Seconds of audio per block in the offline run: the capture's callback block (edge.mic).
OFFLINE_BLOCK_SECONDS = 0.1


class BenchError(RuntimeError):
    pass


def excerpt_path(spec: str, data: Path = DEFAULT_DATA) -> Path:
    """A file path, or a GTZAN id such as 'metal.00002' under ``data``."""
    path = Path(spec)
    if path.is_file():
        return path
    genre = spec.split(".")[0]
    for ext in (".wav", ".au"):
        candidate = data / genre / f"{spec}{ext}"
        if candidate.is_file():
            return candidate
    raise BenchError(f"no audio file {spec!r} (nor {data / genre}/{spec}.wav)")


class PulseServer:
    """A private PulseAudio server (own runtime folder and socket) with the null sink ``vmic``
    whose monitor is the default source. ``env`` is the environment that reaches it."""

    def __init__(self):
        for tool in ("pulseaudio", "paplay", "pactl"):
            if shutil.which(tool) is None:
                raise BenchError(f"'{tool}' is not installed: apt install pulseaudio "
                                 "pulseaudio-utils libportaudio2 libasound2-plugins")
        self._dir = tempfile.TemporaryDirectory(prefix="edge-genre-pulse-")
        runtime = Path(self._dir.name)
        runtime.chmod(0o700)
        socket = runtime / "pulse.sock"
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(runtime),
                    "PULSE_SERVER": f"unix:{socket}"}
        self.env.pop("PULSE_SINK", None)
        self.env.pop("PULSE_SOURCE", None)
        self._log = open(runtime / "pulseaudio.log", "w")
        self.process = subprocess.Popen(
            ["pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "-n", "--use-pid-file=no",
             "--disallow-exit",
             f"--load=module-native-protocol-unix socket={socket} auth-anonymous=1",
             f"--load=module-null-sink sink_name={SINK} rate={SINK_RATE}"],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.pactl("info").returncode == 0:
                break
            time.sleep(0.1)
        if self.process.poll() is not None or self.pactl("info").returncode != 0:
            self.close()
            raise BenchError("pulseaudio did not start: "
                             + (runtime / "pulseaudio.log").read_text().strip()[-300:])
        self.pactl("set-default-source", f"{SINK}.monitor")

    def pactl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True)

    def unplug(self) -> None:
        """The microphone disappears: the null sink (and its monitor) is unloaded."""
        for line in self.pactl("list", "short", "modules").stdout.splitlines():
            if "module-null-sink" in line:
                self.pactl("unload-module", line.split()[0])

    def plug(self) -> None:
        """It comes back, as the default source again."""
        self.pactl("load-module", "module-null-sink", f"sink_name={SINK}", f"rate={SINK_RATE}")
        self.pactl("set-default-source", f"{SINK}.monitor")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        self._dir.cleanup()

    def __enter__(self) -> "PulseServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LoopPlayer:
    """``paplay`` of one file into the sink, started again each time it ends, until ``stop()``."""

    def __init__(self, path: Path, env: dict):
        self.path, self.env = path, env
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="paplay-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    return
                self._proc = subprocess.Popen(["paplay", f"--device={SINK}", str(self.path)],
                                              env=self.env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL)
                started = time.monotonic()
            self._proc.wait()
            if time.monotonic() - started < 1.0:  # no sink (pulled): try again shortly
                self._stop.wait(0.5)

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
        self._thread.join(10)


def rss_mib(pid: int) -> float:
    kib = status_kib(pid, "VmRSS")
    return float("nan") if kib is None else kib / 1024.0


@dataclass
class LiveCost:
    """One listen run: CPU, memory and decision gaps over the measured interval."""

    audio: str
    wall_seconds: float
    cpu_seconds: float
    core_percent: float
    interval_core_percent: list[float]
    rss_start_mib: float
    rss_end_mib: float
    rss_max_mib: float
    decisions: int
    max_gap_seconds: float
    device_rate: int | None
    mean_latency_ms: float | None
    exit_code: int | None
    stderr_tail: str = field(default="", repr=False)
    #: device events (``device_lost``, ``device_restored``, ...) at seconds after the first decision
    events: list[dict] = field(default_factory=list)
    #: the largest gap between decisions outside an outage (lost -> restored)
    max_gap_outside_outage_seconds: float | None = None

    @property
    def rss_growth_mib(self) -> float:
        return self.rss_end_mib - self.rss_start_mib

    def to_dict(self) -> dict:
        return {**asdict(self), "rss_growth_mib": round(self.rss_growth_mib, 2)}


def measure_listen(env: dict, seconds: float, every: float, model: str | None,
                   audio: str, extra: list[str] = (), start_timeout: float = 90.0,
                   fault=None) -> LiveCost:
    """Run ``listen --json`` on the virtual microphone; measure from its first decision on for
    ``seconds``; stop it with SIGINT (as Ctrl-C). ``fault``, if given, is called in a thread
    once the measurement starts (e.g. to pull the microphone and plug it back)."""
    cmd = [sys.executable, "-m", "edge_genre", "listen", "--device", DEVICE, "--json", *extra]
    if model:
        cmd += ["--model", model]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    arrivals: list[tuple[float, dict]] = []
    first = threading.Event()
    err_lines: list[str] = []

    def read_stdout():
        for line in proc.stdout:
            now = time.monotonic()
            try:
                arrivals.append((now, json.loads(line)))
            except ValueError:
                continue
            first.set()
        first.set()  # ended: let the waiter see it

    def read_stderr():
        for line in proc.stderr:
            err_lines.append(line.rstrip())

    readers = [threading.Thread(target=read_stdout, daemon=True),
               threading.Thread(target=read_stderr, daemon=True)]
    for t in readers:
        t.start()
    try:
        if not first.wait(start_timeout) or proc.poll() is not None:
            raise BenchError("listen gave no decision: " + "\n".join(err_lines[-5:]))
        t0, c0, r0 = time.monotonic(), cpu_seconds(proc.pid), rss_mib(proc.pid)
        samples = [(t0, c0, r0)]
        if fault is not None:
            threading.Thread(target=fault, daemon=True).start()
        end = t0 + seconds
        while True:
            now = time.monotonic()
            if now >= end or proc.poll() is not None:
                break
            time.sleep(min(every, end - now))
            samples.append((time.monotonic(), cpu_seconds(proc.pid), rss_mib(proc.pid)))
        if proc.poll() is not None:
            raise BenchError(f"listen ended early (exit {proc.returncode}): "
                             + "\n".join(err_lines[-5:]))
        t1, c1, r1 = samples[-1]
    finally:
        interrupt(proc, 20)
        for t in readers:
            t.join(5)
    in_window = [(t, d) for t, d in arrivals if t0 - 0.001 <= t <= t1]
    events = [{"event": d["event"], "at_seconds": round(t - t0, 2)} for t, d in in_window
              if "event" in d]
    measured = [(t, d) for t, d in in_window if "event" not in d]
    times = [t0] + [t for t, _ in measured]
    gaps = [b - a for a, b in zip(times, times[1:])]
    outages = []  # (lost, restored) on the monotonic clock
    for t, d in in_window:
        if d.get("event") == "device_lost":
            outages.append([t, t1])
        elif d.get("event") == "device_restored" and outages:
            outages[-1][1] = t
    calm = [b - a for a, b in zip(times, times[1:])
            if not any(lo <= b and a <= hi for lo, hi in outages)]
    intervals = [100.0 * (cb - ca) / (tb - ta) for (ta, ca, _), (tb, cb, _) in zip(samples, samples[1:])
                 if tb > ta]
    latencies = [d.get("latency_ms") for _, d in measured if not d.get("silent")]
    rates = {d.get("device_rate") for _, d in arrivals if "event" not in d}
    return LiveCost(audio=audio, wall_seconds=round(t1 - t0, 2), cpu_seconds=round(c1 - c0, 3),
                    core_percent=round(100.0 * (c1 - c0) / (t1 - t0), 2),
                    interval_core_percent=[round(x, 2) for x in intervals],
                    rss_start_mib=round(r0, 1), rss_end_mib=round(r1, 1),
                    rss_max_mib=round(max(r for _, _, r in samples), 1), decisions=len(measured),
                    max_gap_seconds=round(max(gaps), 3) if gaps else float("nan"),
                    device_rate=next(iter(rates)) if len(rates) == 1 else None,
                    mean_latency_ms=(round(sum(latencies) / len(latencies), 2) if latencies else None),
                    exit_code=proc.returncode, stderr_tail="\n".join(err_lines[-5:]),
                    events=events,
                    max_gap_outside_outage_seconds=round(max(calm), 3) if calm else None)


@dataclass
class OfflineCost:
    audio: str
    audio_seconds: float
    device_rate: int
    block_seconds: float
    cpu_seconds: float
    wall_seconds: float
    core_percent: float
    decisions: int

    def to_dict(self) -> dict:
        return asdict(self)


def measure_offline(path: Path | None, rate: int, seconds: float, model: str | None,
                    block_seconds: float = OFFLINE_BLOCK_SECONDS) -> OfflineCost:
    """Push ``seconds`` of the excerpt (looped, at ``rate``) or of silence (``path`` None)
    through ``Classifier.push`` in ``block_seconds`` blocks; CPU time of this process."""
    import numpy as np

    from edge_genre.edge.audio import read
    from edge_genre.edge.classifier import Classifier
    from edge_genre.edge.resample import resample

    n = int(round(seconds * rate))
    if path is None:
        y = np.zeros(n, dtype=np.float32)
    else:
        audio = read(path)
        one = resample(audio.samples if audio.samples.ndim == 1 else audio.samples.mean(axis=1),
                       audio.sample_rate, rate)
        y = np.tile(one, -(-n // len(one)))[:n].astype(np.float32)
    clf = Classifier(model)
    clf.push(np.zeros(int(rate * 0.5), dtype=np.float32), rate)  # warm the interpreter
    clf.reset()
    block = max(1, int(round(block_seconds * rate)))
    decisions = 0
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, n, block):
        decisions += len(clf.push(y[i:i + block], rate))
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return OfflineCost(audio=path.name if path else "silence", audio_seconds=round(n / rate, 2),
                       device_rate=rate, block_seconds=block_seconds, cpu_seconds=round(cpu, 3),
                       wall_seconds=round(wall, 3), core_percent=round(100.0 * cpu / (n / rate), 2),
                       decisions=decisions)


def report(result: dict) -> str:
    lines = [f"edge-genre listen, live cost ({result['machine']}; {result['seconds']:g} s per run)"]
    for live in result["live"]:
        lines.append(
            f"  listen, {live['audio']:<16} {live['core_percent']:6.2f} % of one core "
            f"(intervals {min(live['interval_core_percent'], default=float('nan')):.2f}-"
            f"{max(live['interval_core_percent'], default=float('nan')):.2f} %), "
            f"RSS {live['rss_start_mib']:.1f} MiB {live['rss_growth_mib']:+.2f} MiB, "
            f"{live['decisions']} decisions, max gap {live['max_gap_seconds']:.2f} s, "
            f"{live['device_rate']} Hz")
        if live.get("events"):
            lines.append("    device events: " + ", ".join(
                f"{e['event']} at {e['at_seconds']:.1f} s" for e in live["events"])
                + f"; max gap outside the outage {live['max_gap_outside_outage_seconds']:.2f} s")
    for off in result["offline"]:
        lines.append(
            f"  offline, {off['audio']:<15} {off['core_percent']:6.2f} % of one core "
            f"({off['cpu_seconds']:.2f} s CPU for {off['audio_seconds']:g} s of audio at "
            f"{off['device_rate']} Hz in {off['block_seconds'] * 1000:g} ms blocks, "
            f"{off['decisions']} decisions)")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_genre.benchmarks.live_cost",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="measured seconds per run (default 60)")
    p.add_argument("--every", type=float, default=5.0, help="sampling period in seconds (default 5)")
    p.add_argument("--excerpt", default=DEFAULT_EXCERPT,
                   help=f"audio file or GTZAN id to play (default {DEFAULT_EXCERPT})")
    p.add_argument("--model", help="model for listen and the offline run (default: the shipped one)")
    p.add_argument("--skip", action="append", default=[], choices=("music", "silence", "offline"),
                   help="leave out a run (repeatable)")
    p.add_argument("--pull-at", type=float, metavar="S",
                   help="pull the microphone (unload the null sink) S seconds into the music run")
    p.add_argument("--pull-for", type=float, default=10.0, metavar="S",
                   help="... and plug it back S seconds later (default 10)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = p.parse_args(argv)

    from edge_genre.benchmarks import machine

    try:
        path = excerpt_path(args.excerpt)
        result = {"machine": machine.cpu_model(machine.cpuinfo()), "cores": os.cpu_count(),
                  "seconds": args.seconds, "excerpt": str(path), "live": [], "offline": []}
        rate = None
        with PulseServer() as pulse:
            if "music" not in args.skip:
                player = LoopPlayer(path, pulse.env)
                def pull(pulse=pulse):
                    time.sleep(args.pull_at)
                    pulse.unplug()
                    time.sleep(args.pull_for)
                    pulse.plug()  # the player's loop starts paplay again by itself

                fault = pull if args.pull_at is not None else None
                try:
                    live = measure_listen(pulse.env, args.seconds, args.every, args.model, path.name,
                                          fault=fault)
                finally:
                    player.stop()
                result["live"].append(live.to_dict())
                rate = live.device_rate
            if "silence" not in args.skip:
                live = measure_listen(pulse.env, args.seconds, args.every, args.model, "silence")
                result["live"].append(live.to_dict())
                rate = rate or live.device_rate
        if "offline" not in args.skip:
            rate = rate or 44100
            for audio in (path, None):
                result["offline"].append(
                    measure_offline(audio, rate, args.seconds, args.model).to_dict())
    except BenchError as exc:
        print(f"live_cost: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else report(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
