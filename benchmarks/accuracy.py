"""Accuracy beside speed: track accuracy of a model file on held-out tracks.

Which tracks are held out, in order of preference:

1. the test tracks of the training run the file came from (``--paper-run`` / a ``run.json``
   beside the model file, or ``split.test`` in the card's ``extra``);
2. otherwise the test part of the artist-grouped split that ``edge-genre train`` makes by
   default (``train.splits.track_split(seed=0, by_artist=True)``) of ``--data``.

A track's prediction is the mean of its windows' probabilities (as ``predict`` does), so the
figure is track accuracy; window ("chunk") accuracy is recorded beside it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_genre.edge.config import ModelCard
from edge_genre.errors import DataError
from edge_genre.train.data import Dataset, Track, discover
from edge_genre.train.features import Windows, load_windows, settings_key
from edge_genre.train.splits import track_split

DEFAULT_SPLIT = {"name": "artist", "seed": 0, "valid": 0.15, "test": 0.15}


@dataclass
class HeldOut:
    """Held-out tracks of a dataset and how they were chosen."""

    dataset: Dataset
    tracks: list[Track]
    description: str


def default_held_out(data_dir: str | Path, limit: int | None = None) -> HeldOut:
    ds = discover(data_dir)
    split = track_split(ds, valid=DEFAULT_SPLIT["valid"], test=DEFAULT_SPLIT["test"],
                        seed=DEFAULT_SPLIT["seed"], by_artist=True)
    tracks = split.test[:limit] if limit else split.test
    if not tracks:
        raise DataError(f"the default split of {data_dir} leaves no test tracks")
    return HeldOut(ds, tracks, f"test part of the default training split: {split.description}"
                   + (f" (first {limit})" if limit else ""))


def run_test_ids(model_path: str | Path, card: ModelCard, run_dir: str | Path | None = None
                 ) -> tuple[list[str], str] | None:
    """Test track ids recorded by the model's training run, if any can be found."""
    candidates = [Path(run_dir) / "run.json"] if run_dir else []
    candidates.append(Path(model_path).with_name("run.json"))
    for path in candidates:
        if path.is_file():
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue
            ids = (record.get("split") or {}).get("test")
            if ids:
                return [str(i) for i in ids], f"test tracks of the training run ({path})"
    split = card.extra.get("split") if isinstance(card.extra, dict) else None
    if isinstance(split, dict) and split.get("test"):
        return [str(i) for i in split["test"]], "test tracks recorded in the model card"
    return None


def held_out_for(model_path, card: ModelCard, default: HeldOut, run_dir=None) -> HeldOut:
    found = run_test_ids(model_path, card, run_dir)
    if found is None:
        return default
    ids, how = found
    by_id = {t.track_id: t for t in default.dataset.tracks}
    tracks = [by_id[i] for i in ids if i in by_id]
    if not tracks:
        return default
    return HeldOut(default.dataset, tracks, how)


class WindowCache:
    """Features of held-out tracks, computed once per front-end + window settings."""

    def __init__(self, cache_dir: str | Path | None = None):
        self.cache_dir = cache_dir
        self._memo: dict[tuple, Windows] = {}

    def windows(self, tracks: list[Track], card: ModelCard) -> Windows:
        key = (settings_key(card.frontend, card.window), tuple(t.track_id for t in tracks))
        if key not in self._memo:
            self._memo[key] = load_windows(tracks, card.frontend, card.window,
                                           cache_dir=self.cache_dir)
        return self._memo[key]


def evaluate(runner, held: HeldOut, cache: WindowCache, batch: int = 32) -> dict:
    """Track and window accuracy of a loaded Runner on ``held``'s tracks."""
    card = runner.card
    label_of = {name: i for i, name in enumerate(card.labels)}
    tracks = [t for t in held.tracks if t.genre in label_of]
    if not tracks:
        raise DataError("none of the held-out tracks has a genre the model knows")
    windows = cache.windows(tracks, card)
    if len(windows) == 0:
        raise DataError("no held-out windows could be read")
    x = windows.normalized(card.frontend)
    probs = np.concatenate([np.asarray(runner.predict(x[i:i + batch]), np.float32)
                            for i in range(0, len(x), batch)])
    truth = np.array([label_of[t.genre] for t in windows.tracks])
    window_truth = truth[windows.track]
    n = len(windows.tracks)
    track_probs = np.stack([probs[windows.track == i].mean(axis=0) for i in range(n)])
    return {
        "track_accuracy": float(np.mean(track_probs.argmax(1) == truth)),
        "window_accuracy": float(np.mean(probs.argmax(1) == window_truth)),
        "tracks": n, "windows": int(len(x)), "held_out": held.description,
    }


def held_out_audio(tracks: list[Track], sample_rate: int) -> list[np.ndarray]:
    from edge_genre.edge.audio import load

    return [load(t.path, sample_rate) for t in tracks]
