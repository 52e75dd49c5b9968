"""A process's CPU time and memory, read from ``/proc`` (Linux), for the benchmarks that watch a
process: one reader of ``/proc/PID/stat`` and ``/proc/PID/status`` instead of one per benchmark.
Both return None where the figure cannot be read (the process is gone, no /proc). And
``interrupt``, the one way they (and the serve tests' server) stop a process they started."""
from __future__ import annotations

import os
import signal
import subprocess


def status_kib(pid: int | str, key: str) -> int | None:
    """A field of ``/proc/PID/status`` in KiB: ``VmRSS``, ``VmHWM`` (peak RSS), ``VmSize``...
    ``pid`` may be ``"self"``."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            prefix = key.encode() + b":"
            for line in f:
                if line.startswith(prefix):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int | str) -> float | None:
    """User + system CPU time of every thread of a process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def interrupt(process: subprocess.Popen, timeout: float) -> int:
    """Stop ``process`` as Ctrl-C does (SIGINT), killed if it has not ended after ``timeout``
    seconds; its exit status. One that has already ended is only waited for."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
