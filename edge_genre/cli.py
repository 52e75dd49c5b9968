"""The ``edge-genre`` command. Each package registers its own subcommands from a light ``cli``
module (argparse only at import); heavy imports happen inside the command that needs them, so
``edge-genre predict`` never loads TensorFlow."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from edge_genre import __version__
from edge_genre.errors import EdgeGenreError

# Module that registers each package's subcommands: one line per package.
PACKAGES = (
    "edge_genre.edge.cli",        # predict, listen
    "edge_genre.train.cli",       # train, evaluate, summary
    "edge_genre.export.cli",      # export
    "edge_genre.benchmarks.cli",  # bench
    "edge_genre.serve.cli",       # serve
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-genre",
        description="Music-genre classification on small devices.")
    parser.add_argument("--version", action="version", version=f"edge-genre {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in PACKAGES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a package that is not part of this install
                continue
            raise
        module.register(sub)
    return parser


def _configure_logging(verbose: bool) -> None:
    """Warnings (a skipped file, a fallback taken) as one plain line each on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("edge-genre: %(levelname)s: %(message)s"))
    log = logging.getLogger("edge_genre")
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(getattr(args, "verbose", False))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EdgeGenreError as exc:
        print(f"edge-genre {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `edge-genre predict ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
