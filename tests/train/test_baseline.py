"""The MFCC + SVM baseline runs on the same artist-grouped folds as the networks."""
from __future__ import annotations

import pytest

from edge_genre.train.baseline import cross_validate
from edge_genre.train.data import discover


@pytest.mark.slow
def test_baseline_cross_validation_on_real_excerpts(gtzan_root, tmp_path):
    ds = discover(gtzan_root).subset(6)  # 60 tracks: seconds, not minutes
    result = cross_validate(ds, k=3, seed=0, cache_dir=tmp_path)
    assert len(result["track_accuracy_per_fold"]) == 3
    assert 0.1 <= result["track_accuracy_mean"] <= 1.0  # above chance (0.1) on average
    again = cross_validate(ds, k=3, seed=0, cache_dir=tmp_path)  # cached and deterministic
    assert again == result
