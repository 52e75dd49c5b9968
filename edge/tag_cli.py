"""``edge-genre tag``: light at import (argparse only); the work is in ``edge.tag_run``.

Exit codes: 0 every track classified; 1 some track could not be (an error row each, the
batch goes on), or a tag could not be written; 2 a usage, model, backend or output-file error
(one line); 130 on Ctrl-C (rows written so far are kept: run it again to resume).
"""
from __future__ import annotations

import sys


def register(sub) -> None:
    from edge_genre.edge.cli_args import add_model_args, positive_int

    p = sub.add_parser(
        "tag", help="classify a whole music library into a CSV / JSON Lines / Parquet file",
        description="Classify every audio file under LIBRARY (wav, flac, ogg, mp3, au, aiff; "
                    "m4a/aac where the decoder can read them) with the same per-track function "
                    "as 'predict', in N worker processes, and write one row per track as it "
                    "goes: path, size, mtime, genre, confidence, a probability per genre, model "
                    "and version, seconds of audio, or an error. Run it again to resume: tracks "
                    "already in the output with the same path, size and mtime are skipped.",
        epilog="Exit status: 0 every track classified; 1 some track gave an error row (or a "
               "tag could not be written); 2 a usage, model or output error; 130 Ctrl-C "
               "(the rows written are kept).")
    p.add_argument("paths", nargs="+", metavar="LIBRARY", help="folders (walked) or files")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="output: .csv, .jsonl or .parquet (Parquet needs pyarrow)")
    p.add_argument("--format", dest="fmt", choices=("csv", "jsonl", "parquet"),
                   help="output format (default: from the --out suffix)")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="worker processes (Ray actors with --engine ray), one interpreter "
                        "thread each (default: every usable core; on a Ray cluster, its CPUs)")
    add_model_args(p)
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: worker processes on this machine (default); ray: a Ray Data "
                        "pipeline on a local Ray instance or --address (pip install "
                        "'edge-genre[scale]')")
    p.add_argument("--address", metavar="ray://HOST:PORT",
                   help="with --engine ray: an existing cluster (default: start a local one)")
    p.add_argument("--write-tags", action="store_true",
                   help="write the genre into each file's own tags (ID3 TCON for mp3, Vorbis "
                        "GENRE for flac/ogg, MP4 \u00a9gen for m4a; needs mutagen); the audio is "
                        "never touched")
    p.add_argument("--dry-run", action="store_true",
                   help="show the tag changes that --write-tags would make, write none (rows "
                        "are still written to --out)")
    p.add_argument("--overwrite", action="store_true",
                   help="with --write-tags: replace a genre the file already has (default: "
                        "keep it)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar, no summary (error lines still go to stderr)")
    p.set_defaults(func=run_tag)


def local_workers(asked: int | None, cores: int) -> int | None:
    """``--workers`` for local worker processes: at most one per usable core (each is a CPU-bound
    interpreter; 10000 asked for once started a process per track and reported 10000), with a
    warning when it is lowered."""
    if asked is None or asked <= cores:
        return asked
    import logging

    logging.getLogger("edge_genre.tag").warning(
        "--workers %d is more than the %d usable core(s) here: using %d", asked, cores, cores)
    return cores


def run_tag(args) -> int:
    from edge_genre.edge.tag_run import TagOptions, tag_library
    from edge_genre.edge.track import usable_cores

    if args.engine == "local":
        args.workers = local_workers(args.workers, usable_cores())
    opts = TagOptions(paths=list(args.paths), out=args.out, fmt=args.fmt, workers=args.workers,
                      engine=args.engine, address=args.address, model=args.model,
                      backend=args.backend, threads=args.threads, write_tags=args.write_tags,
                      dry_run=args.dry_run, overwrite=args.overwrite, quiet=args.quiet)
    from edge_genre.edge.native_stderr import divert

    with divert():  # libmpg123's and Ray's native lines (workers inherit it): -v shows them
        summary = tag_library(opts, stdout=sys.stdout, stderr=sys.stderr)
    return 1 if summary.failed else 0
