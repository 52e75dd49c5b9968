"""A fuzz pass over the audio file decoder: mutated and truncated real WAV and .au excerpts.

Each case starts from a real GTZAN excerpt (the .wav and .au files under ``--data``, by default
``../shared/data/gtzan-mini/genres``, as the other benchmarks find it), cut to a random length
(a few seconds of audio, or somewhere in its header), and mutated one to three times: an extreme
value in a header field (sizes, tag, channels, rate, bits, .au offset and encoding), random bytes
in the first 64, a different magic, a truncation, bit flips anywhere, an inserted RIFF chunk
with a lying size, a zeroed or duplicated region. Cases are a function of ``--seed`` and their
number alone, so a run can be repeated and one case replayed (``--replay N``).

A case runs in a child process forked for it, under a memory limit (``RLIMIT_AS``,
``--memory-mb``, 1 GB by default) and a time limit (``--timeout``): ``edge.audio.decode`` on its
bytes, then the front-end (resampled to the shipped default model's rate, log-mel windows as
``predict`` cuts them), and the same file through the block reader ``predict`` uses
(``audio.open_stream``, a streaming resampler and front-end). What happens is counted, never
fatal:

* ``refused``: a clean AudioError (one line, naming the file) from both readers, the same one;
* ``decoded``: decoded and through the front-end; the samples keep ``decode``'s promises
  (float32 in [-1, 1], finite, a rate in range, at most 4 bytes of float per byte of file) and
  both readers give the same windows (``invariant_violations``, ``disagreements`` otherwise);
* ``tracebacks``: any other exception (must be 0), with the traceback's last lines;
* ``hangs``: past the time limit, killed (must be 0);
* ``crashes``: the child died by a signal or exited without a result (a native crash);
* ``memory_limit``: the case reached the memory limit: a refusal "too large to decode", or a
  MemoryError anywhere else (a blow-up: for files this small, must be 0).

Peak memory is the largest resident size (``ru_maxrss`` from ``wait4``) of any case's child,
beside the idle size of the worker it was forked from. ``--workers`` workers (default: every
core) each fork their cases' children in turn.

    python -m edge_genre.benchmarks.fuzz_decoder --cases 3000 --seed 0 --out fuzz-out

Writes ``fuzz_decoder.json`` and ``fuzz_decoder.md`` to ``--out``; exit status 1 when a case
gave a traceback, a hang, a crash, a disagreement or a broken promise, else 0.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from edge_genre.benchmarks.proc import status_kib

REPO_PARENT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = (Path(os.environ.get("EDGE_GENRE_SHARED", REPO_PARENT / "shared"))
                / "data" / "gtzan-mini" / "genres")
SCHEMA = "edge-genre-fuzz-decoder/1"
#: WAV sources: a spread of genres (plus every .au file there is).
WAV_SOURCES = ("blues.00000", "classical.00002", "jazz.00002", "metal.00001", "reggae.00003",
               "rock.00000")
#: Longest excerpt a case starts from, in seconds of the source's audio.
MAX_EXCERPT_SECONDS = 8.0
#: Header fields worth hitting, (offset, width): RIFF size, fmt size, tag, channels, rate, byte
#: rate, block align, bits, data size; for .au: offset, size, encoding, rate, channels.
WAV_FIELDS = ((4, 4), (16, 4), (20, 2), (22, 2), (24, 4), (28, 4), (32, 2), (34, 2), (40, 4))
AU_FIELDS = ((4, 4), (8, 4), (12, 4), (16, 4), (20, 4))
EXTREMES = (0, 1, 2, 3, 5, 6, 7, 8, 12, 16, 24, 27, 32, 64, 0xFF, 0x100, 0xFFFE, 0xFFFF,
            0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFF, 1000, 8000, 44100, 383_987, 384_000,
            384_001, 999_983)
MAGICS = (b"RIFF", b"RIFX", b".snd", b"fLaC", b"OggS", b"FORM", b"ID3\x03", b"\0\0\0\0")
CHUNK_IDS = (b"fmt ", b"data", b"LIST", b"JUNK", b"fact", b"\0\0\0\0")
OPS = ("field", "bytes", "magic", "truncate", "bitflip", "chunk", "zero", "duplicate")


# ----------------------------------------------------------------------------- cases


def load_sources(data: Path) -> list[tuple[str, bytes]]:
    """(name, bytes) of the real excerpts cases start from: WAV_SOURCES and every .au file."""
    data = Path(data)
    found = []
    for track in WAV_SOURCES:
        path = data / track.split(".")[0] / f"{track}.wav"
        if path.is_file():
            found.append(path)
    found += sorted(data.glob("*/*.au"))
    if not any(p.suffix == ".wav" for p in found) or not any(p.suffix == ".au" for p in found):
        raise SystemExit(f"fuzz_decoder: error: no GTZAN .wav and .au excerpts under {data} "
                         "(pass --data or set EDGE_GENRE_SHARED)")
    return [(p.name, p.read_bytes()) for p in found]


def _put(b: bytearray, off: int, width: int, value: int, big: bool) -> None:
    if off + width <= len(b):
        value &= (1 << 8 * width) - 1
        b[off:off + width] = value.to_bytes(width, "big" if big else "little")


def make_case(sources: list[tuple[str, bytes]], seed: int,
              index: int) -> tuple[str, bytes, list[str]]:
    """Case ``index`` of ``seed``: (file name, bytes, the mutations applied). Deterministic."""
    import numpy as np

    rng = np.random.default_rng([seed, index])
    name, src = sources[int(rng.integers(len(sources)))]
    is_au = src[:4] == b".snd"
    big = is_au or src[:4] == b"RIFX"
    fields = AU_FIELDS if is_au else WAV_FIELDS
    # An excerpt: usually a few seconds of audio after the header, sometimes just header bytes.
    limit = min(len(src), 64 + int(MAX_EXCERPT_SECONDS * 22050 * 2))
    cut = int(rng.integers(0, 96)) if rng.random() < 0.1 else int(rng.integers(64, limit + 1))
    b = bytearray(src[:cut])
    applied = []
    for _ in range(int(rng.integers(1, 4))):
        op = OPS[int(rng.integers(len(OPS)))]
        applied.append(op)
        if op == "field":
            off, width = fields[int(rng.integers(len(fields)))]
            _put(b, off, width, EXTREMES[int(rng.integers(len(EXTREMES)))], big)
        elif op == "bytes" and b:
            for _ in range(int(rng.integers(1, 5))):
                b[int(rng.integers(0, min(64, len(b))))] = int(rng.integers(0, 256))
        elif op == "magic":
            magic = MAGICS[int(rng.integers(len(MAGICS)))]
            b[0:4] = magic
        elif op == "truncate":
            b = b[:int(rng.integers(0, len(b) + 1))]
        elif op == "bitflip" and b:
            for _ in range(int(rng.integers(1, 17))):
                i = int(rng.integers(0, len(b)))
                b[i] ^= 1 << int(rng.integers(0, 8))
        elif op == "chunk":  # a RIFF chunk with a lying size, inserted among the real ones
            cid = CHUNK_IDS[int(rng.integers(len(CHUNK_IDS)))]
            size = EXTREMES[int(rng.integers(len(EXTREMES)))] & 0xFFFFFFFF
            body = bytes(rng.integers(0, 256, int(rng.integers(0, 40)), dtype=np.uint8))
            at = min(len(b), 12 if rng.random() < 0.7 else int(rng.integers(0, len(b) + 1)))
            b[at:at] = cid + struct.pack(">I" if big else "<I", size) + body
        elif op == "zero" and b:
            i = int(rng.integers(0, len(b)))
            j = min(len(b), i + int(rng.integers(1, 4096)))
            b[i:j] = bytes(j - i)
        elif op == "duplicate" and b:
            i = int(rng.integers(0, len(b)))
            b[i:i] = b[i:i + int(rng.integers(1, 2048))]
    ext = ".au" if is_au else ".wav"
    return f"case{index:05d}-{Path(name).stem}{ext}", bytes(b), applied


# ----------------------------------------------------------------------------- one case


def _frontend():
    """The shipped default model's front-end and windows (what ``predict`` computes)."""
    from edge_genre.edge.config import FrontendConfig, WindowConfig

    try:
        from edge_genre.defaults import shipped_models
        from edge_genre.edge.modelfile import read_card

        tflite = [p for p in shipped_models() if p.suffix == ".tflite"]
        if tflite:
            card = read_card(tflite[0])
            return card.frontend, card.window
    except Exception:  # noqa: BLE001 - no shipped model here: the library defaults
        pass
    return FrontendConfig(), WindowConfig()


def run_case(path: Path, data: bytes, frontend, window) -> dict:
    """decode + front-end, and the block reader + streaming front-end, on one file. Raises
    whatever they raise except AudioError (the caller's traceback count)."""
    import numpy as np

    from edge_genre.edge import audio
    from edge_genre.edge.frontend import StreamingFrontend
    from edge_genre.edge.resample import MAX_RATE, MIN_RATE, Resampler
    from edge_genre.errors import AudioError

    name = str(path)
    n = window.window_samples(frontend)
    hop = window.hop_samples(frontend)
    out: dict = {}
    try:
        a = audio.decode(data, name)
    except AudioError as exc:
        out["decode"] = ("refused", str(exc))
    else:
        s = a.samples
        problems = []
        if s.dtype != np.float32 or s.ndim != 2 or s.size == 0:
            problems.append(f"samples {s.dtype} {s.shape}")
        if not MIN_RATE <= a.sample_rate <= MAX_RATE:
            problems.append(f"rate {a.sample_rate}")
        if not (np.all(np.isfinite(s)) and np.max(np.abs(s)) <= 1.0):
            problems.append("samples not finite or outside [-1, 1]")
        if s.nbytes > 4 * len(data):
            problems.append(f"{s.nbytes} bytes of samples from {len(data)} bytes of file")
        y = audio.prepare(a, frontend.sample_rate)
        windows = StreamingFrontend(frontend, n, hop).push(y)
        out["decode"] = ("ok", a.sample_rate, len(s), len(windows),
                         float(sum(float(np.sum(x, dtype=np.float64)) for x in windows)))
        out["problems"] = problems
    try:
        with audio.open_stream(path) as stream:
            resampler = (None if stream.sample_rate == frontend.sample_rate
                         else Resampler(stream.sample_rate, frontend.sample_rate))
            fe = StreamingFrontend(frontend, n, hop)
            count, total = 0, 0.0

            def take(y):
                nonlocal count, total
                for x in fe.push(y):
                    count += 1
                    total += float(np.sum(x, dtype=np.float64))

            for block in stream:
                take(resampler.process(block) if resampler is not None else block)
            if resampler is not None:
                take(resampler.flush())
        out["stream"] = ("ok", stream.sample_rate, stream.frames, count, total)
    except AudioError as exc:
        out["stream"] = ("refused", str(exc))
    return out


def classify(out: dict, name: str) -> tuple[str, str]:
    """(outcome, detail) of a finished case."""
    d, s = out["decode"], out["stream"]
    if d[0] == "refused":
        if s != d:
            return "disagreement", f"decode: {d[1]} | stream: {s[1:] if s[0] == 'ok' else s[1]}"
        if not d[1].startswith(f"{name}: ") or "\n" in d[1]:
            return "invariant", f"refusal not one line naming the file: {d[1]!r}"
        return ("memory_limit" if "too large to decode" in d[1] else "refused"), d[1]
    if s[0] != "ok" or s[1:4] != d[1:4] or abs(s[4] - d[4]) > 1e-6 * max(1.0, abs(d[4])):
        return "disagreement", f"decode: {d[1:]} | stream: {s[1:]}"
    if out["problems"]:
        return "invariant", "; ".join(out["problems"])
    return "decoded", ""


# ----------------------------------------------------------------------------- worker


def worker(args) -> int:
    """Run cases start, start + step, ... each in a forked child; one JSON line per case."""
    import resource
    import select
    import signal
    import tempfile
    import traceback

    import numpy as np  # noqa: F401 - imported once here, before the forks

    from edge_genre.edge import audio, frontend as _fe, resample as _rs  # noqa: F401

    sources = load_sources(Path(args.data))
    fe_cfg, window = _frontend()
    limit = int(args.memory_mb * (1 << 20))
    tmp = Path(tempfile.mkdtemp(prefix="edge-genre-fuzz-"))
    print(json.dumps({"worker": True, "rss_kb": status_kib("self", "VmRSS") or 0,
                      "vm_kb": status_kib("self", "VmSize") or 0}),
          flush=True)
    try:
        for index in range(args.start, args.cases, args.step):
            name, data, ops = make_case(sources, args.seed, index)
            path = tmp / name
            path.write_bytes(data)
            r, w = os.pipe()
            t0 = time.perf_counter()
            pid = os.fork()
            if pid == 0:  # the case's child
                os.close(r)
                try:
                    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
                    out = run_case(path, data, fe_cfg, window)
                    outcome, detail = classify(out, str(path))
                    result = {"outcome": outcome, "detail": detail[:400]}
                except BaseException as exc:  # noqa: BLE001 - what the fuzz counts
                    tb = traceback.format_exc().strip().splitlines()
                    result = {"outcome": "memory_limit" if isinstance(exc, MemoryError)
                              else "traceback",
                              "detail": f"{type(exc).__name__}: {exc}"[:400], "traceback": tb[-12:]}
                try:
                    os.write(w, json.dumps(result).encode())
                finally:
                    os._exit(0)
            os.close(w)
            pieces, killed = [], False
            deadline = t0 + args.timeout
            while True:
                left = deadline - time.perf_counter()
                if left <= 0:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
                    break
                ready, _, _ = select.select([r], [], [], left)
                if ready:
                    piece = os.read(r, 1 << 16)
                    if not piece:
                        break
                    pieces.append(piece)
            os.close(r)
            _, status, usage = os.wait4(pid, 0)
            seconds = time.perf_counter() - t0
            path.unlink()
            if killed:
                result = {"outcome": "hang", "detail": f"killed after {args.timeout:g} s"}
            elif pieces:
                result = json.loads(b"".join(pieces))
            elif os.WIFSIGNALED(status):
                result = {"outcome": "crash",
                          "detail": f"killed by {signal.Signals(os.WTERMSIG(status)).name}"}
            else:
                result = {"outcome": "crash",
                          "detail": f"exited {os.WEXITSTATUS(status)} without a result"}
            result.update(case=index, file=name, bytes=len(data), ops=ops,
                          seconds=round(seconds, 4), maxrss_kb=int(usage.ru_maxrss))
            print(json.dumps(result), flush=True)
    finally:
        for leftover in tmp.iterdir():
            leftover.unlink()
        tmp.rmdir()
    return 0


# ----------------------------------------------------------------------------- the run


def run(cases: int, seed: int = 0, data: Path = DEFAULT_DATA, workers: int | None = None,
        timeout: float = 20.0, memory_mb: float = 1024.0, progress=None) -> dict:
    """Run the fuzz pass; the report as a dict (see ``report_markdown``)."""
    from edge_genre.benchmarks import machine

    load_sources(Path(data))  # a clear error before any worker starts
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    workers = max(1, min(int(workers or os.cpu_count() or 1), cases or 1))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    procs = []
    t0 = time.perf_counter()
    for k in range(workers):
        cmd = [sys.executable, "-m", "edge_genre.benchmarks.fuzz_decoder", "--worker",
               "--cases", str(cases), "--seed", str(seed), "--data", str(data),
               "--timeout", str(timeout), "--memory-mb", str(memory_mb),
               "--start", str(k), "--step", str(workers)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env))
    results, idle_rss, idle_vm, worker_errors = [], [], [], []
    import selectors

    sel = selectors.DefaultSelector()
    for p in procs:
        sel.register(p.stdout, selectors.EVENT_READ, p)
    open_streams = len(procs)
    while open_streams:
        for key, _ in sel.select():
            line = key.fileobj.readline()
            if not line:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            rec = json.loads(line)
            if rec.get("worker"):
                idle_rss.append(rec["rss_kb"])
                idle_vm.append(rec["vm_kb"])
                continue
            results.append(rec)
            if progress:
                progress(len(results), cases)
    for p in procs:
        p.wait()
        if p.returncode != 0:
            worker_errors.append(f"worker exited {p.returncode}: {p.stderr.read()[-2000:]}")
    wall = time.perf_counter() - t0
    results.sort(key=lambda r: r["case"])
    counts = Counter(r["outcome"] for r in results)
    refusals = Counter(_message_kind(r["detail"]) for r in results
                       if r["outcome"] in ("refused", "memory_limit"))
    bad = [r for r in results if r["outcome"] in ("traceback", "hang", "crash", "disagreement",
                                                  "invariant", "memory_limit")]
    slowest = max(results, key=lambda r: r["seconds"]) if results else None
    biggest = max(results, key=lambda r: r["maxrss_kb"]) if results else None
    return {
        "schema": SCHEMA,
        "command": f"python -m edge_genre.benchmarks.fuzz_decoder --cases {cases} --seed {seed}",
        "machine": machine.cpu_model(machine.cpuinfo()), "cores": os.cpu_count(),
        "cases": cases, "finished": len(results), "seed": seed, "workers": workers,
        "timeout_s": timeout, "memory_limit_mb": memory_mb, "data": str(data),
        "wall_s": round(wall, 1), "cases_per_s": round(len(results) / wall, 1) if wall else None,
        "counts": {k: counts.get(k, 0) for k in ("refused", "decoded", "traceback", "hang",
                                                  "crash", "memory_limit", "disagreement",
                                                  "invariant")},
        "refusal_kinds": dict(refusals.most_common()),
        "ops": dict(Counter(op for r in results for op in r["ops"]).most_common()),
        "peak_rss_mb": round(biggest["maxrss_kb"] / 1024, 1) if biggest else None,
        "peak_rss_case": biggest["case"] if biggest else None,
        "worker_idle_rss_mb": round(max(idle_rss) / 1024, 1) if idle_rss else None,
        "worker_idle_vm_mb": round(max(idle_vm) / 1024, 1) if idle_vm else None,
        "slowest_case_s": slowest["seconds"] if slowest else None,
        "slowest_case": slowest["case"] if slowest else None,
        "median_case_s": round(sorted(r["seconds"] for r in results)[len(results) // 2], 4)
        if results else None,
        "load_average": {"before": load_before,
                         "after": os.getloadavg()[0] if hasattr(os, "getloadavg") else None},
        "failures": bad[:50],
        "worker_errors": worker_errors,
    }


def _message_kind(detail: str) -> str:
    """A refusal's message without the file name and numbers: what kind of refusal it is."""
    import re

    text = detail.split(": ", 1)[1] if ": " in detail else detail
    return re.sub(r"\d+(\.\d+)?", "N", text)[:100]


def report_markdown(r: dict) -> str:
    c = r["counts"]
    lines = [
        "# Decoder fuzz pass", "",
        f"`{r['command']}` on {r['machine']} ({r['cores']} cores), {r['workers']} workers, "
        f"{r['wall_s']} s ({r['cases_per_s']} cases/s). Each case in its own forked child: "
        f"`audio.decode` + front-end and `audio.open_stream` + streaming front-end, limits "
        f"{r['timeout_s']:g} s and {r['memory_limit_mb']:g} MB of address space.", "",
        "| outcome | cases |", "| --- | ---: |",
        f"| clean AudioError refusals | {c['refused']} |",
        f"| decoded OK (and through the front-end) | {c['decoded']} |",
        f"| other exceptions (tracebacks) | {c['traceback']} |",
        f"| hangs (past {r['timeout_s']:g} s) | {c['hang']} |",
        f"| crashes (signal, no result) | {c['crash']} |",
        f"| memory limit hit (refused as too large, or MemoryError) | {c['memory_limit']} |",
        f"| decode vs block reader disagree | {c['disagreement']} |",
        f"| broken promises (samples, messages) | {c['invariant']} |", "",
        f"Peak memory: {r['peak_rss_mb']} MB max RSS over cases (case {r['peak_rss_case']}); "
        f"a worker idles at {r['worker_idle_rss_mb']} MB RSS ({r['worker_idle_vm_mb']} MB of "
        f"address space, inside the limit) before forking. Slowest case "
        f"{r['slowest_case_s']} s (case {r['slowest_case']}), median {r['median_case_s']} s. "
        f"Load average (1 min) {_fmt(r['load_average']['before'])} before, "
        f"{_fmt(r['load_average']['after'])} after.", "",
        "Refusals by kind (file name and numbers left out):", "",
    ]
    lines += [f"- {n} x {kind}" for kind, n in list(r["refusal_kinds"].items())[:15]]
    if r["failures"]:
        lines += ["", "Failures (first 10):", ""]
        for f in r["failures"][:10]:
            lines.append(f"- case {f['case']} ({', '.join(f['ops'])}): {f['outcome']}: "
                         f"{f['detail']}")
    return "\n".join(lines) + "\n"


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def replay(seed: int, index: int, data: Path, out: Path) -> Path:
    """Write case ``index`` of ``seed`` to ``out`` (a folder) and return its path."""
    name, content, ops = make_case(load_sources(data), seed, index)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_bytes(content)
    print(f"{path} ({len(content)} bytes; {', '.join(ops)})")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_genre.benchmarks.fuzz_decoder",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=3000, help="cases to run (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mutations (default 0)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="GTZAN genres folder with the .wav and .au excerpts (default ../shared)")
    p.add_argument("--workers", type=int, help="worker processes (default: every core)")
    p.add_argument("--timeout", type=float, default=20.0,
                   help="seconds a case may take before it counts as a hang (default 20)")
    p.add_argument("--memory-mb", type=float, default=1024.0,
                   help="address-space limit of a case's process, MB (default 1024)")
    p.add_argument("--out", type=Path, default=Path("edge-genre-fuzz"),
                   help="folder for fuzz_decoder.json and fuzz_decoder.md")
    p.add_argument("--replay", type=int, metavar="N", help="write case N's file to --out and exit")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--step", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.replay is not None:
        replay(args.seed, args.replay, args.data, args.out)
        return 0
    if args.cases < 1:
        p.error("--cases must be at least 1")

    def progress(done, total):
        if done % 250 == 0 or done == total:
            print(f"fuzz_decoder: {done}/{total} cases", file=sys.stderr, flush=True)

    result = run(args.cases, args.seed, args.data, args.workers, args.timeout, args.memory_mb,
                 progress=progress)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fuzz_decoder.json").write_text(json.dumps(result, indent=1) + "\n")
    md = report_markdown(result)
    (args.out / "fuzz_decoder.md").write_text(md)
    print(md)
    c = result["counts"]
    failed = (c["traceback"] + c["hang"] + c["crash"] + c["disagreement"] + c["invariant"]
              + c["memory_limit"] + len(result["worker_errors"])
              + (result["finished"] != result["cases"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
