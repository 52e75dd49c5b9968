"""Splits by track, never by window: every window of a track lands on one side.

Where artists are known (GTZAN with Sturm's index) a split is also by artist, because a model
trained on one Bob Marley song and tested on another is scored on recognising Bob Marley.
Everything is stratified by genre as far as the groups allow and reproducible from a seed.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_genre.errors import DataError
from edge_genre.train.data import Dataset, Track

SPLIT_FILES = {"train": "train_filtered.txt", "valid": "valid_filtered.txt",
               "test": "test_filtered.txt"}


@dataclass
class Split:
    """Tracks for training, validation (checkpoint choice) and test, and how they were made."""

    name: str
    train: list[Track]
    valid: list[Track]
    test: list[Track]
    description: str = ""

    def summary(self) -> dict:
        return {"name": self.name, "description": self.description,
                "train": [t.track_id for t in self.train],
                "valid": [t.track_id for t in self.valid],
                "test": [t.track_id for t in self.test]}


@dataclass
class Fold:
    """One fold of cross-validation: test tracks, and the rest split into train and valid."""

    index: int
    train: list[Track]
    valid: list[Track]
    test: list[Track]


def _grouped_partition(tracks: list[Track], n_splits: int, seed: int, grouped: bool
                       ) -> list[list[int]]:
    """Indices of ``n_splits`` parts, stratified by genre, whole groups in one part."""
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.array([t.label for t in tracks])
    groups = np.array([t.group if grouped else f"track:{t.track_id}" for t in tracks])
    n_splits = max(2, min(n_splits, len(set(groups))))
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Artist-concentrated genres (14 of 15 GTZAN reggae clips are Bob Marley) cannot be
        # stratified perfectly; sklearn warns, the split is still the best the groups allow.
        warnings.simplefilter("ignore", UserWarning)
        try:
            parts = [test for _, test in splitter.split(np.zeros(len(y)), y, groups)]
        except ValueError:  # too few members of a class to stratify: keep the groups whole
            parts = _group_partition_unstratified(groups, n_splits, seed)
    return [sorted(np.asarray(p).tolist()) for p in parts]


def _group_partition_unstratified(groups: np.ndarray, n_splits: int, seed: int) -> list[list[int]]:
    """Whole groups dealt in random order to the currently smallest part (sizes balanced)."""
    rng = np.random.default_rng(seed)
    names = sorted(set(groups.tolist()))
    rng.shuffle(names)
    parts: list[list[int]] = [[] for _ in range(n_splits)]
    for name in names:
        smallest = min(range(n_splits), key=lambda i: len(parts[i]))
        parts[smallest].extend(np.flatnonzero(groups == name).tolist())
    return parts


def _take(tracks: list[Track], idx) -> list[Track]:
    return [tracks[i] for i in idx]


def _carve(tracks: list[Track], fraction: float, seed: int, grouped: bool
           ) -> tuple[list[Track], list[Track]]:
    """Split off about ``fraction`` of the tracks (whole groups) -> (rest, carved)."""
    if fraction <= 0 or len(tracks) < 4:
        return tracks, []
    parts = _grouped_partition(tracks, max(2, int(round(1 / fraction))), seed, grouped)
    carved = set(parts[0])
    return ([t for i, t in enumerate(tracks) if i not in carved],
            [t for i, t in enumerate(tracks) if i in carved])


def track_split(ds: Dataset, valid: float = 0.15, test: float = 0.15, seed: int = 0,
                by_artist: bool = True) -> Split:
    """A stratified train/valid/test split by track (and by artist when known)."""
    grouped = by_artist and any(t.artist for t in ds.tracks)
    rest, test_tracks = _carve(ds.tracks, test, seed, grouped)
    train, valid_tracks = _carve(rest, valid / max(1e-9, 1 - test), seed + 1, grouped)
    how = "artist-grouped" if grouped else "by track"
    split = Split("random", train, valid_tracks, test_tracks,
                  f"stratified {how} split, seed {seed}, valid {valid:.0%}, test {test:.0%}")
    assert_disjoint(split.train, split.valid, split.test, by_artist=grouped)
    return split


def final_split(ds: Dataset, valid: float = 0.15, seed: int = 0, by_artist: bool = True) -> Split:
    """Every track trains (the model to ship); ``valid`` of them (whole groups) only choose the
    checkpoint. No held-out tracks: quote cross-validated figures for such a model."""
    grouped = by_artist and any(t.artist for t in ds.tracks)
    train, valid_tracks = _carve(ds.tracks, valid, seed, grouped)
    split = Split("final", train, valid_tracks, [],
                  f"all tracks, no test part (valid {valid:.0%} for checkpoint choice, seed {seed})")
    assert_disjoint(split.train, split.valid, by_artist=grouped)
    return split


def fault_filtered_split(ds: Dataset, splits_dir: str | Path) -> Split:
    """Kereliuk, Sturm & Larsen's fault-filtered, artist-conflict-free GTZAN split.

    Only tracks present in ``ds`` are used; tracks in no list (faults) are left out.
    """
    splits_dir = Path(splits_dir)
    by_id = {t.track_id: t for t in ds.tracks}
    parts = {}
    for part, fname in SPLIT_FILES.items():
        path = splits_dir / fname
        if not path.is_file():
            raise DataError(f"fault-filtered split list {path} not found")
        ids = [Path(line.strip()).stem for line in path.read_text().splitlines() if line.strip()]
        parts[part] = [by_id[i] for i in ids if i in by_id]
    if not parts["train"] or not parts["test"]:
        raise DataError(f"the fault-filtered split leaves {len(parts['train'])} training and "
                        f"{len(parts['test'])} test tracks of this dataset; use --split random")
    split = Split("fault-filtered", parts["train"], parts["valid"], parts["test"],
                  "fault-filtered artist-conflict-free GTZAN split (Kereliuk, Sturm & Larsen "
                  f"2015), {len(ds.tracks)} tracks present")
    assert_disjoint(split.train, split.valid, split.test, by_artist=False)
    return split


def cv_folds(ds: Dataset, k: int = 5, seed: int = 0, by_artist: bool = True,
             valid: float = 0.15) -> list[Fold]:
    """K folds by track, grouped by artist when known; each fold's training tracks also give up
    about ``valid`` of themselves (whole groups) for checkpoint selection."""
    grouped = by_artist and any(t.artist for t in ds.tracks)
    folds = []
    for i, test_idx in enumerate(_grouped_partition(ds.tracks, k, seed, grouped)):
        held = set(test_idx)
        rest = [t for j, t in enumerate(ds.tracks) if j not in held]
        train, valid_tracks = _carve(rest, valid, seed + 100 + i, grouped)
        fold = Fold(i, train, valid_tracks, _take(ds.tracks, test_idx))
        assert_disjoint(fold.train, fold.valid, fold.test, by_artist=grouped)
        folds.append(fold)
    return folds


def assert_disjoint(*parts: list[Track], by_artist: bool = False) -> None:
    """Raise if a track (or, with ``by_artist``, an artist) appears in two parts."""
    seen: dict[str, int] = {}
    for i, part in enumerate(parts):
        for t in part:
            keys = [f"track:{t.track_id}"] + ([t.group] if by_artist else [])
            for key in keys:
                if seen.setdefault(key, i) != i:
                    raise AssertionError(f"{key} is on two sides of a split")


def describe_grouping(ds: Dataset) -> str:
    n_artists = len({t.artist for t in ds.tracks if t.artist})
    if not n_artists:
        return "grouped by track (no artist index)"
    return f"grouped by artist ({n_artists} artists, index {ds.artist_index})"


#: The splits ``make_split`` makes by name (the CLI's --split choices).
SPLITS = ("artist", "track", "fault-filtered", "final")


def make_split(ds: Dataset, name: str = "artist", seed: int = 0) -> Split:
    """The split called ``name`` (one of ``SPLITS``): ``artist`` (grouped by artist where an index
    is known), ``track`` (by track only), ``final`` (every track trains, a validation part
    picks the checkpoint) or ``fault-filtered`` (the published GTZAN lists, found beside the
    artist index)."""
    if name == "artist":
        return track_split(ds, seed=seed, by_artist=True)
    if name == "track":
        return track_split(ds, seed=seed, by_artist=False)
    if name == "final":
        return final_split(ds, seed=seed)
    if name == "fault-filtered":
        if ds.artist_index is None:
            raise DataError("--split fault-filtered needs the GTZAN split lists "
                            "(gtzan-splits/*_filtered.txt beside the dataset)")
        return fault_filtered_split(ds, ds.artist_index.parent)
    raise DataError(f"unknown split {name!r} (choose from {', '.join(SPLITS)})")
