"""Augmentation keeps shapes, labels stay distributions, and 'off' means off."""
from __future__ import annotations

import numpy as np

from edge_genre.train.augment import (NO_AUGMENTATION, AugmentConfig, augment_batch,
                                      freq_shift, mixup, time_roll)


def _batch(n=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 64, 199, 1)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    return x, y


def test_disabled_is_identity():
    x, y = _batch()
    xa, ya = augment_batch(x, y, np.random.default_rng(1), NO_AUGMENTATION)
    assert xa is x and ya is y


def test_full_augmentation_shapes_and_labels():
    x, y = _batch()
    xa, ya = augment_batch(x, y, np.random.default_rng(1), AugmentConfig())
    assert xa.shape == x.shape and xa.dtype == np.float32
    assert np.allclose(ya.sum(axis=1), 1.0) and (ya >= 0).all()
    assert not np.allclose(xa, x)
    assert np.array_equal(x, _batch()[0])  # the caller's batch is not modified


def test_time_roll_keeps_columns_and_freq_shift_moves_rows():
    x, _ = _batch(4)
    rolled = time_roll(x, np.random.default_rng(0), prob=1.0)
    for a, b in zip(x, rolled):
        assert np.allclose(np.sort(a.sum(axis=0), axis=None), np.sort(b.sum(axis=0), axis=None))
    shifted = freq_shift(x, np.random.default_rng(3), max_bins=2, prob=1.0)
    for a, b in zip(x, shifted):
        assert any(np.array_equal(b[k:], a[:-k]) or np.array_equal(b[:-k], a[k:])
                   for k in (1, 2)) or np.array_equal(a, b)


def test_mixup_labels_follow_the_mix():
    x, y = _batch(32)
    xm, ym = mixup(x, y, np.random.default_rng(0), alpha=0.4, prob=1.0)
    assert np.allclose(ym.sum(axis=1), 1.0)
    assert (ym.max(axis=1) >= 0.5 - 1e-6).all()  # each window keeps most of its own label
