"""Scores of window probabilities: a track's genre is the mean of its windows' probabilities
(``edge.windowing.track_probabilities``, the runtime's definition); window and track accuracy, per
genre, confusion matrices, and window probabilities predicted in batches. Plain numpy, the one
scorer of ``fit``, ``transfer`` and ``distill`` (checkpoint selection), ``evaluate`` (reports,
cross-validation), ``export.check`` and the bench."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edge_genre.edge import windowing


def predict_batches(predict: Callable[[np.ndarray], Any], x: np.ndarray, batch: int,
                    n_labels: int = 0) -> np.ndarray:
    """``predict`` (windows -> probabilities: a Keras call, a Runner's ``predict``) over ``x``
    ``batch`` windows at a time, as one float32 array; (0, n_labels) for no windows. Batches
    bound the memory a large set would take in one call."""
    if len(x) == 0:
        return np.zeros((0, n_labels), np.float32)
    return np.concatenate([np.asarray(predict(x[i:i + batch]), np.float32)
                           for i in range(0, len(x), batch)])


def window_accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of windows whose top-1 label is their true label (0.0 for no windows)."""
    labels = np.asarray(labels)
    return float(np.mean(probs.argmax(1) == labels)) if len(labels) else 0.0


def track_probabilities(probs: np.ndarray, owners: np.ndarray, labels: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Each track's mean window probabilities and its true label: (n_tracks, n_labels) probs and
    (n_tracks,) labels, tracks in ascending order of their owner index (that of
    ``windowing.track_probabilities``)."""
    ids, tp = windowing.track_probabilities(probs, owners)
    return tp, track_labels(ids, owners, labels)


def track_accuracy(probs: np.ndarray, owners: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of tracks whose mean window probabilities (``track_probabilities``) pick their
    true label."""
    tp, tl = track_probabilities(probs, owners, labels)
    return float(np.mean(tp.argmax(1) == tl)) if len(tl) else 0.0


def track_labels(ids: np.ndarray, owners: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The true label of each track in ``ids``: that of its first window."""
    owners, labels = np.asarray(owners), np.asarray(labels)
    return np.array([labels[owners == o][0] for o in ids], dtype=int)


def confusion_matrix(true: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    cm = np.zeros((n, n), dtype=int)
    for t, p in zip(true, pred):
        cm[int(t), int(p)] += 1
    return cm


@dataclass
class Report:
    """Scores of one model on one set of tracks. ``confusion`` is track-level (rows: true)."""

    split: str
    labels: tuple[str, ...]
    n_tracks: int
    n_windows: int
    window_accuracy: float
    track_accuracy: float
    per_genre: dict[str, float | None]
    confusion: list[list[int]]
    window_confusion: list[list[int]] = field(default_factory=list)
    tracks: list[dict] = field(default_factory=list)  # id, true, predicted, confidence

    def to_dict(self) -> dict:
        return {"split": self.split, "labels": list(self.labels), "n_tracks": self.n_tracks,
                "n_windows": self.n_windows, "window_accuracy": self.window_accuracy,
                "track_accuracy": self.track_accuracy, "per_genre_track_accuracy": self.per_genre,
                "track_confusion": self.confusion, "window_confusion": self.window_confusion,
                "tracks": self.tracks}

    def text(self) -> str:
        lines = [f"split: {self.split}",
                 f"tracks {self.n_tracks}, windows {self.n_windows}",
                 f"window accuracy {self.window_accuracy:.1%}   track accuracy "
                 f"{self.track_accuracy:.1%} (mean of window probabilities)",
                 "per-genre track accuracy:"]
        for g, a in self.per_genre.items():
            lines.append(f"  {g:<10} {'-' if a is None else f'{a:.0%}'}")
        w = max(len(g) for g in self.labels)
        short = [g[:4] for g in self.labels]
        lines.append("track confusion (rows true, columns predicted):")
        lines.append(" " * (w + 2) + " ".join(f"{s:>4}" for s in short))
        for g, row in zip(self.labels, self.confusion):
            lines.append(f"  {g:<{w}}" + " ".join(f"{v:>4}" for v in row))
        return "\n".join(lines)


def score(probs: np.ndarray, windows, labels, split: str) -> Report:
    """A Report from window probabilities and the ``features.LabelledWindows`` they came from."""
    labels = tuple(labels)
    n = len(labels)
    y = np.asarray(windows.y)
    window_pred = probs.argmax(1)
    order, tp = windowing.track_probabilities(probs, windows.track)
    tl = track_labels(order, windows.track, y)
    track_pred = tp.argmax(1)
    per = {}
    for i, g in enumerate(labels):
        mask = tl == i
        per[g] = float(np.mean(track_pred[mask] == i)) if mask.any() else None
    tracks = [{"id": windows.tracks[o].track_id, "true": labels[int(tl[j])],
               "predicted": labels[int(track_pred[j])], "confidence": float(tp[j].max())}
              for j, o in enumerate(order)]
    return Report(split=split, labels=labels, n_tracks=len(tl), n_windows=len(y),
                  window_accuracy=window_accuracy(probs, y),
                  track_accuracy=float(np.mean(track_pred == tl)) if len(tl) else 0.0,
                  per_genre=per, confusion=confusion_matrix(tl, track_pred, n).tolist(),
                  window_confusion=confusion_matrix(y, window_pred, n).tolist(), tracks=tracks)
