"""``edge-genre bench``: argparse only at import; the work is in ``bench`` and ``report``."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from edge_genre.edge.cli_args import add_cache_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="measure latency, front-end cost, cold start, size and accuracy",
        description="Benchmark model files on this machine, side by side with the paper preset "
                    "and YAMNet: per-window latency (1 thread and all cores), front-end cost per "
                    "hop (streaming, from scratch, librosa), streaming real-time factor and CPU "
                    "share, cold start and peak RSS of 'predict', size / params / MACs from the "
                    "graph, and accuracy: the artist-grouped cross-validation recorded in a "
                    "file's card ('edge-genre export --cv-record'), else held-out tracks its "
                    "training run lists, never tracks it trained on; YAMNet zero-shot over all "
                    "tracks. Writes bench.json, bench.md and bench.png to --out.")
    p.add_argument("--models", nargs="+", metavar="PATH",
                   help="model files (default: the shipped default files)")
    p.add_argument("--backends", metavar="LIST",
                   help="comma-separated backends (default: every available one)")
    p.add_argument("--threads", default="1,N", metavar="LIST",
                   help="thread counts for latency, N = all usable cores (default %(default)s)")
    p.add_argument("--seconds", type=float, default=2.0, metavar="S",
                   help="time budget per latency / front-end measurement (default %(default)s)")
    p.add_argument("--data", metavar="DIR",
                   help="dataset for accuracy and audio (default ../shared gtzan-mini)")
    p.add_argument("--tracks", type=int, metavar="N",
                   help="score at most N tracks, evenly spaced, where accuracy is measured: a "
                        "run's held-out tracks, and YAMNet zero-shot (all tracks of --data); "
                        "default all")
    p.add_argument("--peer-yamnet", metavar="PATH",
                   help="YAMNet .tflite (default ../shared/peers/yamnet/yamnet.tflite; "
                        "'none' to skip)")
    p.add_argument("--no-paper", action="store_true", help="skip the paper-preset peer")
    p.add_argument("--paper-run", metavar="DIR",
                   help="trained paper run (default: random weights, accuracy not measured)")
    p.add_argument("--stream-seconds", type=float, default=60.0, metavar="S",
                   help="audio streamed for the end-to-end cost (default %(default)s)")
    p.add_argument("--coldstart-repeats", type=int, default=3, metavar="N",
                   help="fresh 'predict' processes per file, 0 to skip (default %(default)s)")
    p.add_argument("--out", default="edge-genre-bench", metavar="DIR",
                   help="output folder (default %(default)s); peers cached in DIR/peers")
    add_cache_arg(p)
    p.set_defaults(func=run)


def parse_threads(text: str, cores: int) -> tuple[int, ...]:
    from edge_genre.errors import EdgeGenreError

    out = []
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        if token.lower() in ("n", "all", "max"):
            out.append(cores)
        elif token.isdigit() and int(token) > 0:
            out.append(int(token))
        else:
            raise EdgeGenreError(f"--threads: {token!r} is not a positive number or N")
    if not out:
        raise EdgeGenreError("--threads needs at least one thread count")
    return tuple(dict.fromkeys(out))


def run(args: argparse.Namespace) -> int:
    import sys

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edge_genre.benchmarks import machine, report
    from edge_genre.benchmarks.bench import DEFAULT_DATA, DEFAULT_YAMNET, BenchConfig, run_bench
    from edge_genre.edge.cli_args import output_folder
    from edge_genre.errors import EdgeGenreError

    if args.seconds <= 0:
        raise EdgeGenreError("--seconds must be positive")
    yamnet = args.peer_yamnet
    cfg = BenchConfig(
        models=tuple(Path(m) for m in args.models or ()),
        backends=tuple(b.strip() for b in args.backends.split(",") if b.strip())
        if args.backends else None,
        threads=parse_threads(args.threads, machine.usable_cores()),
        seconds=args.seconds,
        warmup_runs=max(1, min(5, int(args.seconds * 5))),
        data=Path(args.data) if args.data else DEFAULT_DATA,
        max_tracks=args.tracks,
        peer_yamnet=None if (yamnet or "").lower() == "none" else Path(yamnet or DEFAULT_YAMNET),
        paper=not args.no_paper,
        paper_run=Path(args.paper_run) if args.paper_run else None,
        stream_seconds=args.stream_seconds,
        coldstart_repeats=max(0, args.coldstart_repeats),
        out=output_folder(args.out),
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
    )
    record = run_bench(cfg, argv=sys.argv[2:] if len(sys.argv) > 2 else [])
    paths = report.write(record, cfg.out)
    print(report.markdown(record))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
