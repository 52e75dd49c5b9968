"""Does each exported file classify as the Keras model does? Measured on held-out windows (or,
for a run without test tracks, on a labelled subset of its training windows).

For each file: top-1 window agreement with Keras, the largest probability difference, and its own
window and track accuracy (a track's label is the argmax of its windows' mean
probabilities: ``edge.windowing.track_probabilities``, which the runtime's ``Classifier.classify``
also uses). Files run in the interpreter that runs them on a device, through
``edge_genre.edge.backends.load_model``. The scores are ``train.scores``'s, as in training and
evaluation.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_genre.edge.backends import load_model
from edge_genre.export.calibration import ExportWindows
from edge_genre.export.config import ExportConfig
from edge_genre.train.scores import predict_batches, track_accuracy, window_accuracy

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
    window_accuracy: float
    track_accuracy: float
    track_accuracy_drop: float  # points, Keras minus this file (positive = worse)
    passed: bool
    problems: list[str]

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- running files


def load_runner(path: Path, fmt: str):
    """The edge runtime's Runner (``predict(x) -> probabilities``) for an exported file, in the
    interpreter a device runs that format with."""
    return load_model(path, backend=BACKEND_FOR[fmt])


# ----------------------------------------------------------------------------- measuring


def against_keras(probs: np.ndarray, keras_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per window: whether the file's top-1 label is Keras's, and its largest probability
    difference from Keras."""
    return probs.argmax(1) == keras_probs.argmax(1), np.abs(probs - keras_probs).max(axis=1)


def bound_problems(agreement: float, min_agreement: float, max_diff: float | None = None,
                   max_prob_diff: float | None = None) -> list[str]:
    """What misses the bounds: top-1 agreement below ``min_agreement``, and, when
    ``max_prob_diff`` is a bound, a larger probability difference."""
    problems = []
    if agreement < min_agreement:
        problems.append(f"top-1 agreement {agreement:.1%} < {min_agreement:.0%}")
    if max_prob_diff is not None and max_diff is not None and max_diff > max_prob_diff:
        problems.append(f"max probability difference {max_diff:.3f} > {max_prob_diff}")
    return problems


def accuracies(probs: np.ndarray, held: ExportWindows) -> tuple[float, float]:
    """(window accuracy, track accuracy) of window probabilities on the held-out set."""
    return window_accuracy(probs, held.y), track_accuracy(probs, held.track, held.y)


def check_file(path: Path, fmt: str, quantization: str, keras_probs: np.ndarray,
               held: ExportWindows, config: ExportConfig) -> FileCheck:
    runner = load_runner(path, fmt)
    probs = predict_batches(runner.predict, held.x, config.check_batch)
    agree, diff = against_keras(probs, keras_probs)
    agreement, max_diff = float(agree.mean()), float(diff.max())
    window, track = accuracies(probs, held)
    _, keras_track = accuracies(keras_probs, held)
    drop = 100.0 * (keras_track - track)
    problems = bound_problems(agreement, config.min_agreement)
    if drop > config.max_track_accuracy_drop + 1e-9:
        problems.append(f"track accuracy {drop:.1f} points below Keras "
                        f"(limit {config.max_track_accuracy_drop:g})")
    return FileCheck(path.name, fmt, quantization, path.stat().st_size,
                     runner.backend, agreement, max_diff, window, track, drop,
                     not problems, problems)


# ----------------------------------------------------------------------------- printing


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def format_table(report: dict) -> str:
    """The report as a plain-text table."""
    ev = report["evaluation"]
    train = ev.get("part", "test") != "test"
    acc = ("train window acc", "train track acc") if train else ("window acc", "track acc")
    rows = [("file", "size", "backend", "agree", "max dp", *acc, "ok"),
            ("keras (reference)", _size(report["keras"]["bytes"]), "keras", "-", "-",
             f"{ev['keras_window_accuracy']:.1%}", f"{ev['keras_track_accuracy']:.1%}", "")]
    for f in report["files"]:
        rows.append((f["file"], _size(f["bytes"]), f["backend"], f"{f['agreement']:.1%}",
                     f"{f['max_prob_diff']:.3f}", f"{f['window_accuracy']:.1%}",
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
