"""The run being exported: its Keras model checked against its card, and the tracks its files
are checked on. ``export_model`` and ``export_mediapipe`` both open a run the same way:
``run_dir.read_run`` (the cheap checks, before any TensorFlow for a wrong path), then, once the
converters are known to be installed, ``load_keras`` and ``check_tracks``.

The run directory itself (file names, ``run.json``'s record, reading it) is
``edge_genre.train.run_dir``'s.
"""
from __future__ import annotations

import dataclasses
import logging

from edge_genre.errors import ModelError
from edge_genre.train.run_dir import Run, load_model

log = logging.getLogger("edge_genre")


def check_tracks(run: Run) -> tuple[str, list[str]]:
    """(part, track ids) a run's exported files are checked on: its held-out "test" tracks, or
    its "train" tracks when it has none (a run trained on every track)."""
    ids = run.split_ids("test", required=False)
    return ("test", ids) if ids else ("train", run.split_ids("train"))


def load_keras(run: Run, say=None):
    """The Keras model of a run, checked against its card. Returns (model, card) where the card's
    ``input_shape`` is filled in from the model when training left it empty."""
    (say or log.info)(f"loading {run.model_path}")
    model = load_model(run)
    path, card = run.model_path, run.card
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"{path}: expected one input and one output, got "
                         f"{len(model.inputs)} and {len(model.outputs)}")
    shape = tuple(int(d) if d is not None else -1 for d in model.inputs[0].shape[1:])
    expected = tuple(card.frontend.feature_shape(card.window.window_samples(card.frontend)))
    if shape != expected:
        raise ModelError(f"{path}: model input {shape} does not match its front-end, "
                         f"which makes {expected} ({card.frontend.n_mels} mels, "
                         f"{card.window.seconds:g} s windows)")
    if card.input_shape and tuple(card.input_shape) != shape:
        raise ModelError(f"{path}: model input {shape} does not match the card's "
                         f"input_shape {tuple(card.input_shape)}")
    n_out = model.outputs[0].shape[-1]
    if n_out != len(card.labels):
        raise ModelError(f"{path}: model has {n_out} outputs but the card lists "
                         f"{len(card.labels)} labels")
    if not card.input_shape:
        card = dataclasses.replace(card, input_shape=shape)
    return model, card
