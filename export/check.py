"""Does each exported file classify as the Keras model does? Measured on held-out windows (or,
for a run without test tracks, on a labelled subset of its training windows).

For each file: top-1 window agreement with Keras, the largest probability difference, and its own
chunk (window) and track accuracy (a track's label is the argmax of its windows' mean
probabilities, as the runtime's ``Classifier.classify`` does). Files run in the interpreter that
runs them on a device, through ``edge_genre.edge.backends.load_model``; until that module exists a
minimal private runner here does the same job.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_genre.export.calibration import WindowSet
from edge_genre.export.config import ExportConfig

BACKEND_FOR = {"tflite": "ai-edge-litert", "onnx": "onnxruntime"}


@dataclass
class FileCheck:
    """One exported file measured against the Keras model."""

    file: str
    format: str
    quantization: str
    bytes: int
    backend: str
    agreement: float  # fraction of windows with Keras's top-1 label
    max_prob_diff: float
    chunk_accuracy: float
    track_accuracy: float
    track_accuracy_drop: float  # points, Keras minus this file (positive = worse)
    passed: bool
    problems: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- running files


class _LiteRunner:
    """ai-edge-litert interpreter: float or int8 I/O, batch resized to what it is given."""

    backend = "ai-edge-litert"

    def __init__(self, path: Path):
        from ai_edge_litert.interpreter import Interpreter

        self._interp = Interpreter(model_path=str(path))
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self._batch = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        it = self._interp
        if self._batch != len(x):
            it.resize_tensor_input(self._in["index"], [len(x), *x.shape[1:]])
            it.allocate_tensors()
            self._batch = len(x)
            self._in = it.get_input_details()[0]
            self._out = it.get_output_details()[0]
        inp = x.astype(np.float32)
        if self._in["dtype"] != np.float32:
            scale, zero = self._in["quantization"]
            info = np.iinfo(self._in["dtype"])
            inp = np.clip(np.round(inp / scale + zero), info.min, info.max).astype(self._in["dtype"])
        it.set_tensor(self._in["index"], inp)
        it.invoke()
        out = it.get_tensor(self._out["index"])
        if out.dtype != np.float32:
            scale, zero = self._out["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return out.astype(np.float32)


class _OrtRunner:
    backend = "onnxruntime"

    def __init__(self, path: Path):
        import onnxruntime as ort

        self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self._name = self._session.get_inputs()[0].name

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._name: x.astype(np.float32)})[0].astype(np.float32)


def load_runner(path: Path, fmt: str):
    """A runner with ``predict(x) -> probabilities`` for an exported file."""
    try:
        from edge_genre.edge.backends import load_model
    except ImportError:
        return _LiteRunner(path) if fmt == "tflite" else _OrtRunner(path)
    return load_model(path, backend=BACKEND_FOR[fmt])


def predict(runner, x: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([runner.predict(x[i:i + batch]) for i in range(0, len(x), batch)])


# ----------------------------------------------------------------------------- measuring


def track_predictions(probs: np.ndarray, owner: np.ndarray, n_tracks: int) -> np.ndarray:
    """Argmax of each track's mean window probabilities."""
    sums = np.zeros((n_tracks, probs.shape[1]), dtype=np.float64)
    np.add.at(sums, owner, probs)
    return sums.argmax(1)


def accuracies(probs: np.ndarray, held: WindowSet) -> tuple[float, float]:
    """(chunk accuracy, track accuracy) of window probabilities on the held-out set."""
    chunk = float(np.mean(probs.argmax(1) == held.y))
    n_tracks = len(held.track_ids)
    track_label = np.zeros(n_tracks, dtype=int)
    track_label[held.track] = held.y
    track = float(np.mean(track_predictions(probs, held.track, n_tracks) == track_label))
    return chunk, track


def check_file(path: Path, fmt: str, quantization: str, keras_probs: np.ndarray,
               held: WindowSet, config: ExportConfig) -> FileCheck:
    runner = load_runner(path, fmt)
    probs = predict(runner, held.x, config.check_batch)
    agreement = float(np.mean(probs.argmax(1) == keras_probs.argmax(1)))
    max_diff = float(np.max(np.abs(probs - keras_probs)))
    chunk, track = accuracies(probs, held)
    _, keras_track = accuracies(keras_probs, held)
    drop = 100.0 * (keras_track - track)
    problems = []
    if agreement < config.min_agreement:
        problems.append(f"top-1 agreement {agreement:.1%} < {config.min_agreement:.0%}")
    if drop > config.max_track_accuracy_drop + 1e-9:
        problems.append(f"track accuracy {drop:.1f} points below Keras "
                        f"(limit {config.max_track_accuracy_drop:g})")
    return FileCheck(path.name, fmt, quantization, path.stat().st_size,
                     getattr(runner, "backend", "?"), agreement, max_diff, chunk, track, drop,
                     not problems, problems)


# ----------------------------------------------------------------------------- printing


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def format_table(report: dict) -> str:
    """The report as a plain-text table."""
    ev = report["evaluation"]
    train = ev.get("part", "test") != "test"
    acc = ("train chunk acc", "train track acc") if train else ("chunk acc", "track acc")
    rows = [("file", "size", "backend", "agree", "max dp", *acc, "ok"),
            ("keras (reference)", _size(report["keras"]["bytes"]), "keras", "-", "-",
             f"{ev['keras_chunk_accuracy']:.1%}", f"{ev['keras_track_accuracy']:.1%}", "")]
    for f in report["files"]:
        rows.append((f["file"], _size(f["bytes"]), f["backend"], f"{f['agreement']:.1%}",
                     f"{f['max_prob_diff']:.3f}", f"{f['chunk_accuracy']:.1%}",
                     f"{f['track_accuracy']:.1%}", "yes" if f["passed"] else "NO"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    cal = report.get("calibration")
    where = (f"held-out: {ev['windows']} windows of {ev['tracks']} test tracks"
             if ev.get("part", "test") == "test" else
             f"check on {ev['windows']} windows of {ev['tracks']} "
             + ev.get("note", "training tracks"))
    head = (where
            + (f"; calibration: {cal['windows']} training windows of {cal['tracks']} tracks"
               if cal else ""))
    return head + "\n" + "\n".join(lines)
