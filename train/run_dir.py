"""The run directory: what ``edge-genre train`` writes and ``evaluate``, ``export`` and ``bench``
read. The one place that knows its file names and the shape of its record::

    <run>/model.keras        MODEL_FILE: Keras 3 model, input (H, W, 1) normalised features
    <run>/model_card.json    CARD_FILE: ModelCard.to_json() (labels, front-end with mean/std, ...)
    <run>/run.json           RECORD_FILE: a RunRecord (data, split's track ids, settings, history)
    <run>/curves.png         CURVES_FILE: accuracy and loss per epoch
    <run>/confusion.png      CONFUSION_FILE: test-track confusion (when there is a test part)
    <run>/test_report.txt    TEST_REPORT_FILE: the test report as text (idem)

``write_run`` writes the first three, ``read_run`` reads a run back (card and record; the Keras
model with ``load_model``, because that needs TensorFlow). ``record_in`` is where a folder's
record is (the bench looks for the runs of its model files with it), and ``read_json`` the one
reader of a JSON file for every package, with the error class its caller reports.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_genre.edge.config import ModelCard
from edge_genre.errors import DataError, EdgeGenreError, ModelError

MODEL_FILE = "model.keras"
CARD_FILE = "model_card.json"
RECORD_FILE = "run.json"
CURVES_FILE = "curves.png"
CONFUSION_FILE = "confusion.png"
TEST_REPORT_FILE = "test_report.txt"

#: The parts of a split, in the order a record lists them.
PARTS = ("train", "valid", "test")


@dataclass(frozen=True)
class RunSplit:
    """Which tracks trained, chose the checkpoint and were held out (``Split.summary()``)."""

    name: str = ""
    description: str = ""
    train: tuple[str, ...] = ()
    valid: tuple[str, ...] = ()
    test: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                **{part: list(getattr(self, part)) for part in PARTS}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> "RunSplit":
        if not isinstance(data, dict):
            raise ModelError(f"{where}: split is not a JSON object")
        parts = {}
        for part in PARTS:
            ids = data.get(part) or []
            if not isinstance(ids, list):
                raise ModelError(f"{where}: split.{part} is not a list of track ids")
            parts[part] = tuple(str(i) for i in ids)
        return cls(name=str(data.get("name") or ""),
                   description=str(data.get("description") or ""), **parts)


@dataclass
class RunRecord:
    """``run.json``: what a run was trained on and how, and what it scored.

    ``split`` names the tracks of each part; ``data["root"]`` the dataset folder (absolute since
    this version); the other sections are informative (``edge-genre train`` fills them all, a
    record made elsewhere, like the bench's untrained peer, only what it knows). ``extra`` keeps
    keys this version does not write (records of older writers), written back as read.
    """

    preset: str = ""
    description: str = ""
    package_version: str = ""
    created: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    split: RunSplit = field(default_factory=RunSplit)
    windows: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    normalization: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    epochs_run: int = 0
    feature_seconds: float = 0.0
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    test: dict[str, Any] | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, preset: str, **fields) -> "RunRecord":
        """A record made now by this version of the package."""
        from edge_genre import __version__

        return cls(preset=preset, package_version=__version__,
                   created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **fields)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``run.json``: every field in order, then ``extra``'s keys."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "extra"}
        out["split"] = self.split.to_dict()
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: Any, where: str = RECORD_FILE) -> "RunRecord":
        """The record of a parsed ``run.json``; ModelError (one line) for one that is not."""
        if not isinstance(data, dict):
            raise ModelError(f"{where} is not a JSON object")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        values["split"] = RunSplit.from_dict(data.get("split") or {}, where)
        for key in ("machine", "data", "windows", "settings", "normalization", "model"):
            if not isinstance(values.get(key, {}), dict):
                raise ModelError(f"{where}: {key} is not a JSON object")
        if not isinstance(values.get("history", []), list):
            raise ModelError(f"{where}: history is not a list")
        return cls(**values, extra=extra)

    @property
    def data_root(self) -> str | None:
        """The dataset folder recorded by training, as written."""
        root = self.data.get("root")
        return root if isinstance(root, str) and root else None


@dataclass
class Run:
    """A run directory read back: its card and record (the model stays on disk)."""

    run_dir: Path
    card: ModelCard
    record: RunRecord

    @property
    def model_path(self) -> Path:
        return self.run_dir / MODEL_FILE

    @property
    def record_path(self) -> Path:
        return self.run_dir / RECORD_FILE

    def split_ids(self, part: str, required: bool = True) -> list[str]:
        """Track ids of one part ("train", "valid", "test") of the run's split; an empty list
        for a missing or empty part unless ``required`` (then DataError)."""
        ids = list(getattr(self.record.split, part))
        if not ids and required:
            raise DataError(f"{self.record_path} lists no {part} tracks "
                            f"(expected split.{part}: [track ids])")
        return ids

    def data_dir(self, override: str | Path | None = None) -> Path:
        """The dataset folder: ``override`` (``--data``) or the one recorded by training.

        A relative recorded path is taken from the run directory, else from the working
        directory: runs written before the root was recorded absolute (``runs/default``,
        ``runs/music``, ``runs/student``) hold the path as typed at training time, relative to
        where training ran (the project root)."""
        if override is not None:
            path = Path(override).expanduser()
        else:
            recorded = self.record.data_root
            if recorded is None:
                raise DataError(f"{self.record_path} records no data folder; pass --data DIR")
            path = Path(recorded).expanduser()
            if not path.is_absolute():
                beside = (self.run_dir / path).resolve()
                path = beside if beside.is_dir() else path.resolve()
        if not path.is_dir():
            raise DataError(f"data folder {path} does not exist (pass --data DIR)")
        return path


def _not_a_run(path: Path, why: str) -> ModelError:
    return ModelError(f"{path} is not a model directory: {why} (a training run holds "
                      f"{MODEL_FILE}, {CARD_FILE} and {RECORD_FILE}, as `edge-genre train` "
                      "writes)")


def is_run(path: str | Path) -> bool:
    """Whether ``path`` holds all three files of a run."""
    path = Path(path)
    return all((path / name).is_file() for name in (MODEL_FILE, CARD_FILE, RECORD_FILE))


def read_json(path: str | Path, where: str | None = None,
              error: type[EdgeGenreError] = ModelError) -> Any:
    """The parsed JSON file ``path``. ``error`` (one line starting with ``where``, the path by
    default) for a file that cannot be read or is not JSON: callers differ in what a bad file
    is (a broken model directory, a bad command-line argument), not in how it is read."""
    path = Path(path)
    where = where or str(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{where}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise error(f"{where} is not valid JSON ({exc})") from None


def read_record(path: str | Path) -> RunRecord:
    """The ``RunRecord`` in the file ``path`` (a run's ``run.json``). ModelError for a file
    that cannot be read or is not a record."""
    return RunRecord.from_dict(read_json(path), str(path))


def record_in(folder: str | Path) -> RunRecord | None:
    """The record of the run directory ``folder`` (its ``RECORD_FILE``); None when it has none.
    ModelError for one that is not a record."""
    path = Path(folder) / RECORD_FILE
    return read_record(path) if path.is_file() else None


def read_run(path: str | Path) -> Run:
    """Read and validate the card and record of the run directory ``path``. ModelError (one
    line) for a folder that is not a run; a run without ``run.json`` reads with an empty
    record (its split and data folder are then unknown)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise _not_a_run(path, "no such folder")
    for name in (MODEL_FILE, CARD_FILE):
        if not (path / name).is_file():
            raise _not_a_run(path, f"no {name}")
    card = ModelCard.from_json((path / CARD_FILE).read_text(encoding="utf-8"))
    record = record_in(path)
    return Run(path, card, RunRecord() if record is None else record)


def write_run(path: str | Path, model, card: ModelCard, record: RunRecord) -> Run:
    """Write ``model`` (Keras), ``card`` and ``record`` as the run directory ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save(path / MODEL_FILE)
    (path / CARD_FILE).write_text(card.to_json() + "\n", encoding="utf-8")
    (path / RECORD_FILE).write_text(json.dumps(record.to_dict(), indent=1) + "\n",
                                    encoding="utf-8")
    return Run(path, card, record)


def load_model(run: Run):
    """The run's Keras model (uncompiled). ModelError (one line) for a file Keras cannot load."""
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    try:
        return keras.models.load_model(run.model_path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad archive
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{run.model_path} is not a loadable Keras model ({first})") from None
