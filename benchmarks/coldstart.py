"""Cold start of ``edge-genre predict FILE --model M`` in a fresh process, and its peak RSS.

Each run is a new Python process (``python -m edge_genre predict ...``), timed from spawn to exit
with ``time.perf_counter``. Its peak resident set size is the child's own ``VmHWM`` from
``/proc/<pid>/status``, polled while it runs (the high-water mark only grows, so the last read
holds the peak up to a few milliseconds before exit). Not ``ru_maxrss``: Linux carries the
parent's RSS over a fork + exec into the child's ``ru_maxrss``, so a child of a large benchmark
process would report the parent's size. Where /proc is missing, ``ru_maxrss`` is the fallback. The OS file cache is warm after the first run,
so the median of a few runs is what a user sees on the second and later calls; the first run is
kept apart. A bare ``python -c pass`` is measured the same way, as the floor no command beats.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_genre.benchmarks.proc import status_kib


#: How often the child's peak RSS is read while it runs.
POLL_SECONDS = 0.005


@dataclass
class ProcessRun:
    seconds: float
    peak_rss_mib: float
    returncode: int
    stdout: str = ""
    stderr: str = ""


@dataclass
class ColdStart:
    command: list[str]
    runs: list[ProcessRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.returncode == 0 for r in self.runs)

    def to_dict(self) -> dict:
        secs = [r.seconds for r in self.runs]
        rss = [r.peak_rss_mib for r in self.runs]
        d = {"command": " ".join(self.command), "runs": len(self.runs), "ok": self.ok,
             "first_s": round(secs[0], 4) if secs else None,
             "median_s": round(float(np.median(secs)), 4) if secs else None,
             "min_s": round(min(secs), 4) if secs else None,
             "peak_rss_mib": round(max(rss), 2) if rss else None}
        if not self.ok and self.runs:
            bad = next(r for r in self.runs if r.returncode != 0)
            d["error"] = (bad.stderr.strip().splitlines() or ["exit %d" % bad.returncode])[-1]
        return d


def run_process(cmd: list[str], env: dict | None = None, timeout: float = 120.0) -> ProcessRun:
    """Spawn ``cmd``, wait for it, return wall seconds, peak RSS (MiB) and its output."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    # communicate() reaps the child itself; read the pipes in full first, then wait4 for rusage.
    hwm = [0]
    try:
        out, err = _read_all(proc, timeout, hwm)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if hwm[0]:
        peak_mib = hwm[0] / 1024.0
    else:
        scale = 1024.0 if sys.platform != "darwin" else 1.0  # KiB on Linux, bytes on macOS
        peak_mib = usage.ru_maxrss * scale / 2**20
    return ProcessRun(seconds, peak_mib, proc.returncode,
                      out.decode(errors="replace"), err.decode(errors="replace"))


def _read_all(proc: subprocess.Popen, timeout: float, hwm: list[int]) -> tuple[bytes, bytes]:
    import selectors

    sel = selectors.DefaultSelector()
    bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    for f in bufs:
        sel.register(f, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        hwm[0] = max(hwm[0], status_kib(proc.pid, "VmHWM") or 0)  # 0: exited, no /proc
        for key, _ in sel.select(min(left, POLL_SECONDS)):
            data = os.read(key.fileobj.fileno(), 65536)
            if data:
                bufs[key.fileobj] += data
            else:
                sel.unregister(key.fileobj)
    for f in bufs:
        f.close()
    return bytes(bufs[proc.stdout]), bytes(bufs[proc.stderr])


def predict_command(audio: str | Path, model: str | Path, backend: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "edge_genre", "predict", str(audio), "--model", str(model)]
    if backend:
        cmd += ["--backend", backend]
    return cmd


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def measure(cmd: list[str], repeats: int = 3) -> ColdStart:
    """Run ``cmd`` ``repeats`` times in fresh processes."""
    result = ColdStart(cmd)
    env = _env()
    for _ in range(max(1, repeats)):
        result.runs.append(run_process(cmd, env))
        if result.runs[-1].returncode != 0:
            break
    return result


def python_floor(repeats: int = 3) -> ColdStart:
    """A bare interpreter start (``python -c pass``): the floor under every cold start."""
    return measure([sys.executable, "-c", "pass"], repeats)
