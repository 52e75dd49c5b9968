"""A process's CPU time and memory, read from ``/proc`` (Linux), for the benchmarks that watch a
process: one reader of ``/proc/PID/stat`` and ``/proc/PID/status`` instead of one per benchmark.
Both return None where the figure cannot be read (the process is gone, no /proc)."""
from __future__ import annotations

import os


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
