"""Splits by track and by artist: no test track, and for GTZAN no test artist, reaches training."""
from __future__ import annotations

import pytest

from edge_genre.train.data import discover
from edge_genre.train.splits import (assert_disjoint, cv_folds, fault_filtered_split,
                                     track_split)
from tests.conftest import GTZAN_SPLITS


@pytest.fixture(scope="module")
def ds(gtzan_root):
    return discover(gtzan_root)


def _ids(tracks):
    return {t.track_id for t in tracks}


def test_track_split_is_artist_disjoint_and_reproducible(ds):
    a, b = track_split(ds, seed=3), track_split(ds, seed=3)
    assert a.summary() == b.summary()
    assert track_split(ds, seed=4).summary() != a.summary()
    assert _ids(a.train) | _ids(a.valid) | _ids(a.test) == _ids(ds.tracks)
    artists = [{t.artist for t in part} for part in (a.train, a.valid, a.test)]
    assert not (artists[0] & artists[2]) and not (artists[0] & artists[1])
    assert not (artists[1] & artists[2])
    assert "artist-grouped" in a.description


def test_cv_folds_cover_every_track_once_by_artist(ds):
    folds = cv_folds(ds, k=5, seed=0)
    assert len(folds) == 5
    tests = [_ids(f.test) for f in folds]
    assert sum(len(t) for t in tests) == len(ds) and set().union(*tests) == _ids(ds.tracks)
    for f in folds:
        assert_disjoint(f.train, f.valid, f.test, by_artist=True)
        assert not {t.artist for t in f.test} & {t.artist for t in f.train + f.valid}
        assert len({t.genre for t in f.test}) >= 5  # stratified as far as artists allow


def test_assert_disjoint_catches_a_leak(ds):
    with pytest.raises(AssertionError, match="two sides"):
        assert_disjoint(ds.tracks[:10], ds.tracks[5:15])
    a, b = ds.tracks[0], next(t for t in ds.tracks[1:] if t.artist == ds.tracks[0].artist)
    assert_disjoint([a], [b])  # different tracks, same artist: fine by track
    with pytest.raises(AssertionError):
        assert_disjoint([a], [b], by_artist=True)


def test_fault_filtered_split_uses_the_published_lists(ds):
    split = fault_filtered_split(ds, GTZAN_SPLITS)
    listed = set()
    for name in ("train_filtered.txt", "valid_filtered.txt", "test_filtered.txt"):
        listed |= {line.strip().split("/")[-1].rsplit(".", 1)[0]
                   for line in (GTZAN_SPLITS / name).read_text().splitlines() if line.strip()}
    got = _ids(split.train) | _ids(split.valid) | _ids(split.test)
    assert got <= listed and got <= _ids(ds.tracks) and split.test
    assert_disjoint(split.train, split.valid, split.test)


def test_no_artist_index_groups_by_track(gtzan_root):
    ds = discover(gtzan_root, artist_index=None)
    split = track_split(ds, seed=0)
    assert "by track" in split.description
    assert_disjoint(split.train, split.valid, split.test)


def test_tiny_dataset_still_grouped_when_stratification_is_impossible(ds):
    small = ds.subset(2)  # 20 tracks, 2 per genre: too few to stratify 5 ways
    for fold in cv_folds(small, k=5, seed=1):  # cv_folds asserts artist disjointness itself
        assert not {t.artist for t in fold.test} & {t.artist for t in fold.train + fold.valid}


def test_final_split_trains_on_every_track_and_holds_none_out(ds):
    from edge_genre.train.splits import final_split

    split = final_split(ds, seed=0)
    assert not split.test and split.valid
    assert _ids(split.train) | _ids(split.valid) == _ids(ds.tracks)
    assert not {t.artist for t in split.train} & {t.artist for t in split.valid}
