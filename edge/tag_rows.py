"""One row of the tag output: its columns, and the model and the track it describes.

A row: path, size, mtime, genre, confidence, one ``prob_<label>`` per label, model, model
version, duration (seconds of audio), error. ``Track`` is a file as the walk found it (its size
and mtime are the resume key), ``ModelInfo`` the model every worker loads and every row names.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelInfo:
    """What a run's rows say about the model, and what workers need to load it."""

    path: str  # the model file the parent resolved (workers load exactly this file)
    backend: str
    name: str  # file name, e.g. default-int8w.tflite
    version: str  # the card's model_version
    labels: tuple[str, ...]

    @classmethod
    def load(cls, model, backend: str, threads: int | None) -> ModelInfo:
        """Resolve and load the model once in the parent: a bad model is one line (exit 2)
        before any worker starts."""
        from edge_genre.edge.backends import as_runner

        runner = as_runner(model, backend=backend, threads=threads or 1)
        return cls(str(runner.path), runner.backend, runner.path.name,
                   str(runner.card.model_version), tuple(runner.card.labels))


def prob_column(label: str) -> str:
    return f"prob_{label}"


def columns(labels: Iterable[str]) -> list[str]:
    """The output's columns: path, size, mtime, genre, confidence, one probability per label,
    model, model_version, duration, error."""
    return (["path", "size", "mtime", "genre", "confidence"]
            + [prob_column(x) for x in labels]
            + ["model", "model_version", "duration", "error"])


@dataclass(frozen=True)
class Track:
    """A file of the library as the walk found it: absolute path, size and mtime (None when it
    cannot be stat'ed: a broken link, no permission; the reader then says why)."""

    path: str
    size: int | None
    mtime: float | None

    @classmethod
    def stat(cls, path: str) -> Track:
        path = os.path.abspath(path)
        try:
            st = os.stat(path)
        except OSError:
            return cls(path, None, None)
        return cls(path, int(st.st_size), float(st.st_mtime))


def make_row(track: Track, fields: dict, info: ModelInfo) -> dict:
    row = {"path": track.path, "size": track.size, "mtime": track.mtime,
           "genre": fields["genre"], "confidence": fields["confidence"]}
    probabilities = fields["probabilities"]  # {label: p} (track.track_fields), None on an error
    for label in info.labels:
        row[prob_column(label)] = None if probabilities is None else float(probabilities[label])
    row.update(model=info.name, model_version=info.version, duration=fields["duration"],
               error=fields["error"])
    return row

