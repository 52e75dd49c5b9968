"""Model files for the edge runtime tests (fixtures; test modules import what they use).

Not a conftest.py: a second module named ``conftest`` would shadow ``tests/conftest.py`` for the
tests that import it as ``conftest``.

The tests run the shipped default model (``edge_genre/models/default-{fp32,int8}.{tflite,onnx}``,
made by ``edge-genre export ... --name default``). ``EDGE_GENRE_TEST_MODELS`` may point at a folder
holding files of the same names instead (e.g. a development export). Without either, the tests
that need a model are skipped with a reason that says so.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from edge_genre.defaults import DEFAULT_STEM, MODELS_DIR

KINDS = (("fp32", "tflite"), ("int8", "tflite"), ("fp32", "onnx"), ("int8", "onnx"))


def model_folder() -> Path:
    override = os.environ.get("EDGE_GENRE_TEST_MODELS")
    return Path(override) if override else MODELS_DIR


def model_path(quantization: str, fmt: str) -> Path:
    """A model file for the tests. "int8" means the shipped quantised file: full integer
    (``-int8``) or, where the model keeps float activations, int8 weights (``-int8w``).

    The shipped files must exist: their absence fails the test. With ``EDGE_GENRE_TEST_MODELS``
    (another export), a missing file skips, naming what is missing."""
    names = [f"{DEFAULT_STEM}-{q}.{fmt}" for q in
             (("int8", "int8w") if quantization == "int8" else (quantization,))]
    for name in names:
        if (model_folder() / name).is_file():
            return model_folder() / name
    message = f"the default model {' or '.join(names)} is missing from {model_folder()}"
    if model_folder() == MODELS_DIR:
        pytest.fail(message + " (export one with 'edge-genre export RUN --out edge_genre/models "
                    "--name default')")
    pytest.skip(message)


@pytest.fixture(scope="session")
def fp32_tflite() -> Path:
    return model_path("fp32", "tflite")


@pytest.fixture(scope="session")
def int8_tflite() -> Path:
    return model_path("int8", "tflite")


@pytest.fixture(scope="session")
def fp32_onnx() -> Path:
    return model_path("fp32", "onnx")


@pytest.fixture(scope="session")
def int8_onnx() -> Path:
    return model_path("int8", "onnx")


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The model predict/listen use without --model (first present in the preference order)."""
    from edge_genre.defaults import DEFAULT_PREFERENCE

    for q, f in DEFAULT_PREFERENCE:
        path = model_folder() / f"{DEFAULT_STEM}-{q}.{f}"
        if path.is_file():
            return path
    return model_path(*DEFAULT_PREFERENCE[0])  # skips


@pytest.fixture(scope="session")
def real_windows(fp32_tflite):
    """Normalised features of real GTZAN windows (three genres), as the model expects them."""
    from edge_genre.edge.audio import load
    from edge_genre.edge.frontend import features
    from edge_genre.edge.modelfile import read_card

    from tests.conftest import gtzan_file

    card = read_card(fp32_tflite)
    fr = card.frontend
    n, hop = card.window.window_samples(fr), card.window.hop_samples(fr)
    out = []
    for track in ("metal.00002", "classical.00051", "hiphop.00003", "jazz.00002"):
        y = load(gtzan_file(track), fr.sample_rate)
        out += [features(y[s:s + n], fr) for s in range(0, len(y) - n + 1, hop)][:6]
    return np.stack(out)
