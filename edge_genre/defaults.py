"""Which model is the default, and which other models ship by name: the one place that says so.

The shipped files live in ``edge_genre/models/`` as ``<name>-<quantization>.<format>`` (made by
``edge-genre export ... --name NAME``). ``default`` is what runs without ``--model``; any other
shipped name (e.g. ``music``, the heavier teacher) is chosen with ``--model NAME``. Replacing the
default model means replacing its files and, if the stem changes, this constant; nothing else in
the code names them.
"""
from __future__ import annotations

import os
from pathlib import Path

from edge_genre.errors import ModelError

MODELS_DIR = Path(__file__).resolve().parent / "models"
DEFAULT_STEM = "default"
#: What `predict`, `listen` and `serve` load without ``--model``, first present wins: LiteRT
#: before ONNX (the fallback for installs without a TFLite interpreter); full int8, then int8
#: weights with float activations ("int8w"), then fp32.
DEFAULT_PREFERENCE = tuple((q, f) for f in ("tflite", "onnx") for q in ("int8", "int8w", "fp32"))


def shipped_model(quantization: str = "int8", fmt: str = "tflite") -> Path:
    """Path of one shipped default model file; ModelError if this install lacks it."""
    path = MODELS_DIR / f"{DEFAULT_STEM}-{quantization}.{fmt}"
    if not path.is_file():
        raise ModelError(f"the shipped model {path.name} is missing from {MODELS_DIR}; "
                         "reinstall edge-genre or pass --model")
    return path


def shipped_models(name: str = DEFAULT_STEM) -> list[Path]:
    """Every shipped file of the model called ``name`` present, in order of preference."""
    return [MODELS_DIR / f"{name}-{q}.{f}" for q, f in DEFAULT_PREFERENCE
            if (MODELS_DIR / f"{name}-{q}.{f}").is_file()]


def shipped_names() -> list[str]:
    """Names of the shipped models (``default`` first), as ``--model NAME`` takes them."""
    suffixes = {f"-{q}.{f}" for q, f in DEFAULT_PREFERENCE}
    names = {p.name[: -len(s)] for p in MODELS_DIR.glob("*-*.*") for s in suffixes
             if p.name.endswith(s)}
    return sorted(names, key=lambda n: (n != DEFAULT_STEM, n))


#: Where training, export and bench cache decoded audio and features (``EDGE_GENRE_CACHE``).
DEFAULT_CACHE = Path(os.environ.get("EDGE_GENRE_CACHE", "~/.cache/edge-genre")).expanduser()
