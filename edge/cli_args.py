"""Command-line arguments shared by every command that runs a model (``predict``, ``listen``,
``tag``, ``serve``): one definition of each flag's name, type and help; and ``output_folder``,
the check every command that writes an ``--out`` folder makes before its work."""
from __future__ import annotations

import argparse

BACKEND_CHOICES = ("auto", "ai-edge-litert", "tflite-runtime", "onnxruntime")


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0 (anything else is a usage error: one line, exit 2)."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text!r}")
    return value


def finite_float(text: str) -> float:
    """argparse type: any finite number (NaN and infinities are usage errors: a NaN silence
    gate once made every window "no music")."""
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port, 0 (any free one) to 65535 (the OS wrapped 70000 to 4464)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, not {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535, not {text!r}")
    return value


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="PATH|NAME",
                   help="a .tflite or .onnx file made by 'edge-genre export', or the name of a "
                        "shipped model (default: the shipped default; 'music': the heavier "
                        "music-trained teacher; 'student': the small full-int8 one)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto",
                   help="interpreter (default: ai-edge-litert, then tflite-runtime for .tflite; "
                        "onnxruntime for .onnx)")
    p.add_argument("--threads", type=positive_int, metavar="N",
                   help="interpreter threads, at least 1 (default: backend's)")


def add_cache_arg(p: argparse.ArgumentParser) -> None:
    """The feature cache flag of train, evaluate, export and bench: one name, ``--cache-dir``
    (``--cache``, its old name in train and evaluate, is still read)."""
    from edge_genre.defaults import DEFAULT_CACHE

    p.add_argument("--cache-dir", "--cache", dest="cache_dir", default=str(DEFAULT_CACHE),
                   metavar="DIR", help="feature cache folder (default %(default)s; '' for none)")


def output_folder(path, shown: str | None = None):
    """Check, before any work and without making anything, that the folder ``path`` could be
    made and written: a typo in ``--out`` must not surface as a traceback after an hour of
    training, and a command refused for another reason must leave no empty folder behind.
    Returns the Path; EdgeGenreError (one line, exit 2) naming ``shown`` (the user's ``--out``;
    default ``path``) when the nearest existing folder on its way is a file or not writable
    (``os.access`` also says so on a read-only mount)."""
    import os
    from pathlib import Path

    from edge_genre.errors import EdgeGenreError

    folder = Path(path).expanduser()
    whole = folder.absolute()
    existing = next(p for p in (whole, *whole.parents) if p.exists())
    if not existing.is_dir():
        reason = f"{existing} is a file, not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f"{existing} is not writable"
    else:
        return folder
    raise EdgeGenreError(f"cannot write --out {shown or path}: {reason}")
