"""What the benchmark ran on: CPU model, cores, SIMD flags, OS, Python and backend versions.

Read from ``/proc/cpuinfo`` (Linux, x86 and ARM) and the standard library, so it works on a Pi
without extra packages. Numbers from two machines are only comparable with this beside them.
"""
from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

#: SIMD features that decide int8 / fp32 kernel speed, as /proc/cpuinfo spells them, and the
#: name the report uses. x86: AVX2, AVX-512 (foundation), VNNI (AVX-512 or AVX variant); ARM:
#: NEON is "asimd" on aarch64 ("neon" on 32-bit), dot product "asimddp", fp16 "asimdhp", i8mm.
SIMD_FLAGS = {
    "avx2": "AVX2", "fma": "FMA", "avx512f": "AVX-512", "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI", "avx512_bf16": "AVX-512 BF16", "amx_int8": "AMX-INT8",
    "neon": "NEON", "asimd": "NEON", "asimddp": "NEON dot product", "asimdhp": "NEON fp16",
    "i8mm": "I8MM", "sve": "SVE",
}

#: Packages whose versions change the figures (interpreters, numpy, the peer front-end).
VERSION_PACKAGES = ("edge-genre", "numpy", "ai-edge-litert", "tflite-runtime", "onnxruntime",
                    "librosa", "tensorflow", "tensorflow-cpu", "onnx")


def cpuinfo(text: str | None = None) -> dict[str, str]:
    """The first processor block of /proc/cpuinfo plus board-level keys, as a dict."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        key, value = (s.strip() for s in line.split(":", 1))
        info.setdefault(key.lower(), value)
    return info


def simd_flags(info: dict[str, str]) -> list[str]:
    """Report names of the SIMD features present (x86 'flags' or ARM 'features')."""
    present = set((info.get("flags") or info.get("features") or "").split())
    if platform.machine().lower() in ("aarch64", "arm64"):
        present.add("asimd")  # NEON is mandatory on AArch64, even where cpuinfo omits it
    names = []
    for flag, name in SIMD_FLAGS.items():
        if flag in present and name not in names:
            names.append(name)
    return names


def cpu_model(info: dict[str, str]) -> str:
    for key in ("model name", "hardware", "cpu model", "processor"):
        value = info.get(key, "")
        if value and not value.isdigit():
            return value
    # Raspberry Pi OS: /proc/cpuinfo has "Model : Raspberry Pi 4 Model B" and ARM part numbers.
    if info.get("model"):
        return info["model"]
    return platform.processor() or platform.machine()


def board_model() -> str | None:
    """The board name on a Pi (or other device-tree machine), else None."""
    try:
        return Path("/proc/device-tree/model").read_text(errors="replace").strip("\x00\n ") or None
    except OSError:
        return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def package_versions(names=VERSION_PACKAGES) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def backend_versions() -> dict[str, str]:
    """Interpreters the edge runtime can use here, name -> version."""
    try:
        from edge_genre.edge.backends import available_backends
    except ImportError:
        return {}
    return dict(available_backends())


def describe() -> dict:
    """The machine description stored in every benchmark record."""
    info = cpuinfo()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "cpu_model": cpu_model(info),
        "board": board_model(),
        "architecture": platform.machine(),
        "logical_cores": os.cpu_count() or 1,
        "usable_cores": usable_cores(),
        "simd": simd_flags(info),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "backends": backend_versions(),
        "packages": package_versions(),
        # Shared machines are noisy: the load when the run started says how noisy.
        "load_average_1m": round(load[0], 2) if load else None,
    }


def one_line(machine: dict) -> str:
    simd = ", ".join(machine.get("simd") or []) or "no SIMD flags found"
    board = f"{machine['board']}, " if machine.get("board") else ""
    return (f"{board}{machine['cpu_model']} ({machine['architecture']}, "
            f"{machine['usable_cores']} usable cores; {simd})")
