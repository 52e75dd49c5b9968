"""The run directory that training writes, read for export: model, card, run record, tracks.

Contract (see the project notes): ``<run>/model.keras``, ``<run>/model_card.json``
(``ModelCard.to_json()``) and ``<run>/run.json`` holding the split's track ids and the data folder.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_genre.edge.config import ModelCard
from edge_genre.errors import DataError, ModelError

log = logging.getLogger("edge_genre")

MODEL_FILE = "model.keras"
CARD_FILE = "model_card.json"
RUN_FILE = "run.json"


@dataclass
class RunSource:
    """A training run's output, validated enough to start converting."""

    run_dir: Path
    card: ModelCard
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def model_path(self) -> Path:
        return self.run_dir / MODEL_FILE

    @property
    def expected_input_shape(self) -> tuple[int, ...]:
        fr = self.card.frontend
        return fr.feature_shape(self.card.window.window_samples(fr))

    def split_ids(self, part: str, required: bool = True) -> list[str]:
        """Track ids of one part ("train", "valid", "test") of the run's split; an empty list
        for a missing or empty part unless ``required`` (then DataError)."""
        split = self.record.get("split", self.record)
        ids = split.get(part) if isinstance(split, dict) else None
        if not ids and not required:
            return []
        if not ids:
            raise DataError(f"{self.run_dir / RUN_FILE} lists no {part} tracks "
                            "(expected split.{part}: [track ids])")
        return [str(i) for i in ids]

    def data_dir(self, override: str | Path | None = None) -> Path:
        """The dataset folder: ``override`` (``--data``) or the one recorded by training."""
        if override is not None:
            path = Path(override).expanduser()
        else:
            recorded = _recorded_data_dir(self.record)
            if recorded is None:
                raise DataError(f"{self.run_dir / RUN_FILE} records no data folder; pass --data DIR")
            path = Path(recorded).expanduser()
            if not path.is_absolute():
                path = (self.run_dir / path).resolve()
        if not path.is_dir():
            raise DataError(f"data folder {path} does not exist (pass --data DIR)")
        return path


def _recorded_data_dir(record: dict[str, Any]) -> str | None:
    # Accept the shapes a run record plausibly uses: {"data": {"root": ...}}, {"data": "..."},
    # {"dataset": {"root": ...}}, {"data_dir": "..."}.
    for key in ("data", "dataset", "data_dir", "data_root"):
        value = record.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict):
            for sub in ("root", "path", "dir"):
                if isinstance(value.get(sub), str) and value[sub]:
                    return value[sub]
    return None


def load_run(run_dir: str | Path) -> RunSource:
    """Read and validate the card and run record of ``run_dir`` (the Keras model is loaded
    separately, because that needs TensorFlow)."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise ModelError(f"{run_dir} is not a directory (expected a training run with {MODEL_FILE})")
    if not (run_dir / MODEL_FILE).is_file():
        raise ModelError(f"{run_dir} is not a Keras model directory: no {MODEL_FILE}")
    if not (run_dir / CARD_FILE).is_file():
        raise ModelError(f"{run_dir} has no {CARD_FILE} (the model card training writes)")
    card = ModelCard.from_json((run_dir / CARD_FILE).read_text(encoding="utf-8"))
    record: dict[str, Any] = {}
    if (run_dir / RUN_FILE).is_file():
        try:
            record = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ModelError(f"{run_dir / RUN_FILE} is not valid JSON ({exc})") from None
        if not isinstance(record, dict):
            raise ModelError(f"{run_dir / RUN_FILE} is not a JSON object")
    return RunSource(run_dir, card, record)


def _register_custom_objects() -> None:
    # Presets may define serializable custom layers; importing them registers those with Keras.
    for name in ("edge_genre.train.presets", "edge_genre.train.transfer"):
        try:
            __import__(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def load_keras(source: RunSource):
    """The Keras model of a run, checked against its card. Returns (model, card) where the card's
    ``input_shape`` is filled in from the model when training left it empty."""
    import keras

    _register_custom_objects()
    try:
        model = keras.models.load_model(source.model_path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad archive
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{source.model_path} is not a loadable Keras model ({first})") from None
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"{source.model_path}: expected one input and one output, got "
                         f"{len(model.inputs)} and {len(model.outputs)}")
    shape = tuple(int(d) if d is not None else -1 for d in model.inputs[0].shape[1:])
    expected = source.expected_input_shape
    card = source.card
    if shape != tuple(expected):
        raise ModelError(f"{source.model_path}: model input {shape} does not match its front-end, "
                         f"which makes {tuple(expected)} ({card.frontend.n_mels} mels, "
                         f"{card.window.seconds:g} s windows)")
    if card.input_shape and tuple(card.input_shape) != shape:
        raise ModelError(f"{source.model_path}: model input {shape} does not match the card's "
                         f"input_shape {tuple(card.input_shape)}")
    n_out = model.outputs[0].shape[-1]
    if n_out != len(card.labels):
        raise ModelError(f"{source.model_path}: model has {n_out} outputs but the card lists "
                         f"{len(card.labels)} labels")
    if not card.input_shape:
        card = dataclasses.replace(card, input_shape=shape)
    return model, card
