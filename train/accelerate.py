"""The accelerator jobs' command line: pack the data here, run robust-teacher and paper-cv there.

    python -m edge_genre.train.accelerate pack --data DATA --out .accel/data
    python -m edge_genre.train.accelerate robust-teacher --data .accel/data --out OUT/robust
    python -m edge_genre.train.accelerate robust-teacher --body yamnet --data DATA --out OUT
    python -m edge_genre.train.accelerate robust-teacher --body student --teacher musicnn ...
    python -m edge_genre.train.accelerate paper-cv --data .accel/data --out OUT/paper
    python -m edge_genre.train.accelerate merge-cv A/paper-cv.json B/paper-cv.json --out ALL.json

Each job runs on a CPU too (slowly) with the same command. ``benchmarks/accelerator/`` holds the
prepared scripts (``prepare.sh`` here, ``run.sh`` on the lent machine). This module imports
nothing heavy: each job imports what it needs, and none imports TensorFlow or librosa when
``KERAS_BACKEND`` names another backend (JAX is taken when it is unset).
"""
from __future__ import annotations

import argparse
import sys

from edge_genre.errors import EdgeGenreError


def _folds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"folds are numbers like 1,2 (got {text!r})") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edge_genre.train.accelerate",
                                description="Jobs prepared for a lent accelerator.")
    sub = p.add_subparsers(dest="job", required=True)

    pk = sub.add_parser("pack", help="dataset -> Opus files + manifest (with the CV folds)")
    pk.add_argument("--data", default="../shared/data/gtzan-mini",
                    help="folder-per-genre dataset (default: %(default)s)")
    pk.add_argument("--out", required=True, help="the pack folder to write")
    pk.add_argument("--sample-rate", type=int, default=16000,
                    help="Opus rate (default %(default)s, musicnn's; 24000 keeps the paper "
                         "preset's band up to 11 kHz, at about 1.3x the size)")
    pk.add_argument("--compression", type=float, default=None, metavar="LEVEL",
                    help="libsndfile's Opus compression level, 0-1 (higher: smaller)")
    pk.add_argument("--limit", type=int, default=None, metavar="N", help="N tracks per genre")
    pk.add_argument("--cv", type=int, default=5, metavar="K", help="folds in the manifest")
    pk.add_argument("--seed", type=int, default=0)

    rt = sub.add_parser("robust-teacher", help="self-distil musicnn (or YAMNet) toward room "
                        "robustness")
    rt.add_argument("--data", required=True, help="a pack or a dataset folder")
    rt.add_argument("--out", required=True, help="output folder")
    rt.add_argument("--body", choices=("musicnn", "yamnet", "student"), default="musicnn",
                    help="the body that learns (default %(default)s; student: YAMNet's first 6 "
                         "layers at 20 ms)")
    rt.add_argument("--steps", type=int, default=500)
    rt.add_argument("--batch", type=int, default=128)
    rt.add_argument("--micro-batch", type=int, default=None, metavar="N",
                    help="crops per pass, gradients accumulated to --batch (a CPU's memory)")
    rt.add_argument("--lr", type=float, default=1e-4)
    rt.add_argument("--copies", type=int, default=8, help="room copies per track")
    rt.add_argument("--checkpoint-every", type=int, default=50, metavar="N")
    rt.add_argument("--max-seconds", type=float, default=None)
    rt.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    rt.add_argument("--room-cache", default=None, metavar="DIR",
                    help="impulse-response bank for roomsim.augmenter")
    rt.add_argument("--weights", default=None,
                    help="teacher weights (default: musicnn's shipped .npz, YAMNet's TFLite)")
    rt.add_argument("--stats-crops", type=int, default=1024)
    rt.add_argument("--eval-crops", type=int, default=256)
    rt.add_argument("--limit", type=int, default=None, metavar="N", help="N tracks per genre")
    rt.add_argument("--workers", type=int, default=None)
    rt.add_argument("--seed", type=int, default=0)
    rt.add_argument("--teacher", choices=("musicnn",), default=None,
                    help="a yamnet or student body learns musicnn's view of the clean crop "
                         "(default: its own); --weights is then musicnn's (default: the "
                         "shipped room-robust copy)")
    rt.add_argument("--start", default=None, metavar="FILE",
                    help="with --teacher: the body's first weights (default: YAMNet's TFLite)")
    rt.add_argument("--grid", type=float, default=0.96, metavar="SECONDS",
                    help="with --teacher: crops start on this grid, a multiple of 80 ms "
                         "(default %(default)s)")
    rt.add_argument("--mixes", type=int, default=0, metavar="N",
                    help="two-track mixes heard as further tracks (default %(default)s)")

    cv = sub.add_parser("paper-cv", help="the paper preset's K-fold CV (evaluate --cv's folds)")
    cv.add_argument("--data", required=True, help="a pack or a dataset folder")
    cv.add_argument("--out", required=True, help="output folder")
    cv.add_argument("--preset", default="paper",
                    help="the preset to cross-validate (default: %(default)s)")
    cv.add_argument("--cv", type=int, default=5, metavar="K")
    cv.add_argument("--seed", type=int, default=0)
    cv.add_argument("--folds", type=_folds, default=None, help="run only these, e.g. 1,2")
    cv.add_argument("--epochs", type=int, default=None, help="default: the preset's 30")
    cv.add_argument("--limit", type=int, default=None, metavar="N", help="N tracks per genre")
    cv.add_argument("--max-seconds", type=float, default=None)
    cv.add_argument("--precision", choices=("bf16", "fp32"), default="fp32")
    cv.add_argument("--workers", type=int, default=None)
    cv.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    mg = sub.add_parser("merge-cv", help="paper-cv records of disjoint folds -> one record")
    mg.add_argument("records", nargs="+", help="paper-cv.json files of one cross-validation")
    mg.add_argument("--out", required=True, help="the merged record to write")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.job == "pack":
            from edge_genre.train.pack import PackConfig, pack, pack_size

            m = pack(PackConfig(args.data, args.out, sample_rate=args.sample_rate,
                                compression=args.compression, limit=args.limit, k=args.cv,
                                seed=args.seed))
            print(f"packed {len(m['tracks'])} tracks ({len(m['skipped'])} skipped) into "
                  f"{args.out}: {pack_size(args.out) / 2**20:.1f} MiB in {m['seconds']} s")
        elif args.job == "robust-teacher":
            from edge_genre.train.robust import RobustConfig, run

            run(RobustConfig(
                args.data, args.out, body=args.body, steps=args.steps, batch=args.batch,
                micro_batch=args.micro_batch, lr=args.lr, copies=args.copies,
                checkpoint_every=args.checkpoint_every, max_seconds=args.max_seconds,
                precision=args.precision, room_cache=args.room_cache, weights=args.weights,
                stats_crops=args.stats_crops, eval_crops=args.eval_crops, limit=args.limit,
                workers=args.workers, seed=args.seed, teacher=args.teacher, start=args.start,
                grid=args.grid, mixes=args.mixes),
                log=lambda s: print(s, flush=True))
        elif args.job == "merge-cv":
            import json
            from pathlib import Path

            from edge_genre.errors import DataError
            from edge_genre.train.paper_cv import merge

            try:
                records = [json.loads(Path(p).read_text()) for p in args.records]
            except (OSError, ValueError) as e:
                raise DataError(f"cannot read a record: {e}") from None
            merged = merge(records)
            Path(args.out).write_text(json.dumps(merged, indent=1) + "\n")
            print(f"folds {merged['folds_run']}: track accuracy "
                  f"{100 * merged['track_accuracy_mean']:.1f} +- "
                  f"{100 * merged['track_accuracy_std']:.1f} %; wrote {args.out}")
        else:
            from edge_genre.train.paper_cv import PaperCVConfig, run

            run(PaperCVConfig(
                args.data, args.out, preset=args.preset, k=args.cv, seed=args.seed,
                folds=args.folds, epochs=args.epochs, limit=args.limit,
                max_seconds=args.max_seconds, precision=args.precision, workers=args.workers,
                progress=not args.quiet),
                log=lambda s: print(s, flush=True))
    except EdgeGenreError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
