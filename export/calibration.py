"""Real audio windows for export: the representative (calibration) set and the held-out set.

Both come from the run's own split (``run.json``): calibration draws from the TRAINING tracks,
the agreement check uses the TEST tracks, so a file is never checked on what calibrated it.
A run with no test tracks (trained on every track) is checked on a fixed random subset of its
training windows instead (``training_check_set``), labelled as such.
Windows are computed by ``edge_genre.train.features`` (the edge front-end, cached) and
normalised with the card's mean / std, exactly as the runtime feeds the model.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_genre.edge.config import ModelCard
from edge_genre.errors import DataError
from edge_genre.train.data import Track, discover
from edge_genre.train.features import LabelledWindows, load_windows

log = logging.getLogger("edge_genre")


@dataclass
class ExportWindows:
    """What export feeds a model file: a representative (calibration) draw or a check set of
    normalised model inputs, with their labels, owning tracks and where they came from."""

    x: np.ndarray  # (n, H, W, 1) float32, normalised
    y: np.ndarray  # (n,) label index
    track: np.ndarray  # (n,) index into track_ids
    track_ids: list[str]
    source: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)


def find_tracks(data_dir: Path, track_ids: list[str], card: ModelCard) -> list[Track]:
    """The tracks of ``data_dir`` named by ``track_ids``, labelled in the card's label order."""
    ds = discover(data_dir, artist_index=None)
    by_id = {t.track_id: t for t in ds.tracks}
    label_of = {name: i for i, name in enumerate(card.labels)}
    found, missing = [], []
    for tid in track_ids:
        t = by_id.get(tid)
        if t is None:
            missing.append(tid)
        elif t.genre not in label_of:
            raise DataError(f"{t.path}: genre {t.genre!r} is not one of the model's labels")
        else:
            found.append(Track(t.path, t.genre, label_of[t.genre], t.track_id, t.artist))
    if missing:
        log.warning("%d of %d tracks of the run are not in %s (e.g. %s)", len(missing),
                    len(track_ids), data_dir, ", ".join(missing[:3]))
    return found


def load_set(tracks: list[Track], card: ModelCard, cache_dir: str | Path | None,
             what: str) -> tuple[LabelledWindows, np.ndarray]:
    """Windows of ``tracks`` and their normalised inputs; DataError when none can be read."""
    if not tracks:
        raise DataError(f"the {what} set is empty: none of its tracks were found (check --data)")
    windows = load_windows(tracks, card.frontend, card.window, cache_dir=cache_dir)
    if len(windows) == 0:
        raise DataError(f"the {what} set is empty: none of its {len(tracks)} tracks could be read "
                        f"({windows.skipped[0][1] if windows.skipped else 'no windows'})")
    return windows, windows.normalized(card.frontend)


def held_out_set(track_ids: list[str], data_dir: Path, card: ModelCard,
                 cache_dir: str | Path | None = None) -> ExportWindows:
    """Every window of the run's held-out (test) tracks."""
    windows, x = load_set(find_tracks(data_dir, track_ids, card), card, cache_dir, "held-out")
    return ExportWindows(x, windows.y, windows.track, [t.track_id for t in windows.tracks],
                         {"part": "test", "data_dir": str(data_dir), "tracks": len(windows.tracks),
                          "windows": len(windows),
                          "skipped": [str(p) for p, _ in windows.skipped]})


def calibration_set(track_ids: list[str], data_dir: Path, card: ModelCard, n_windows: int,
                    seed: int = 0, cache_dir: str | Path | None = None) -> ExportWindows:
    """Up to ``n_windows`` training windows drawn at random (``seed``) over all training tracks,
    so every genre's activation ranges are seen."""
    windows, x = load_set(find_tracks(data_dir, track_ids, card), card, cache_dir,
                          "representative (calibration)")
    if not np.all(np.isfinite(x)):
        raise DataError("the representative set holds non-finite features")
    return _draw(windows, x, n_windows, seed, {"part": "train", "data_dir": str(data_dir)})


def _draw(windows: LabelledWindows, x: np.ndarray, n_windows: int, seed: int,
          source: dict) -> ExportWindows:
    """Up to ``n_windows`` of ``windows`` drawn at random (``seed``); track indices renumbered
    over the tracks drawn, so a track's accuracy is the mean of its drawn windows."""
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.permutation(len(windows))[:n_windows])
    used, owner = np.unique(windows.track[pick], return_inverse=True)
    return ExportWindows(x[pick], windows.y[pick], owner.astype(int),
                         [windows.tracks[i].track_id for i in used],
                         {**source, "tracks": int(len(used)), "windows": int(len(pick)),
                          "available_windows": len(windows), "seed": seed,
                          "skipped": [str(p) for p, _ in windows.skipped]})


#: How reports and tables name a check on training windows.
TRAINING_CHECK_NOTE = ("training tracks (no held-out tracks in this run): "
                       "agreement only is meaningful")


def training_check_set(track_ids: list[str], data_dir: Path, card: ModelCard, n_windows: int,
                       seed: int = 1, cache_dir: str | Path | None = None) -> ExportWindows:
    """Up to ``n_windows`` training windows (``seed``) for the agreement check of a run without
    held-out tracks. Track indices are renumbered over the tracks drawn, so track accuracy is
    over those tracks (each the mean of its drawn windows)."""
    windows, x = load_set(find_tracks(data_dir, track_ids, card), card, cache_dir,
                          "training check")
    return _draw(windows, x, n_windows, seed,
                 {"part": "train", "note": TRAINING_CHECK_NOTE, "data_dir": str(data_dir)})
