"""Bad files skipped by name and the on-disk feature cache (the window rule itself is tested in
tests/edge/test_windowing.py)."""
from __future__ import annotations

import dataclasses
import shutil
import wave

import numpy as np
import pytest

from edge_genre.edge import frontend as fe
from edge_genre.edge.config import FrontendConfig, WindowConfig
from edge_genre.train.data import discover
from edge_genre.train.features import load_windows, normalization_stats
from tests.conftest import gtzan_file

FRONTEND = FrontendConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=320,
                          n_mels=64, fmin=50, fmax=8000, center=False)
WINDOW = WindowConfig(seconds=4.0, hop_seconds=2.0)


def _write(path, y, rate=22050):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes((np.clip(y, -1, 1) * 32767).astype("<i2").tobytes())


def test_bad_files_are_reported_by_name_and_skipped(tmp_path, caplog):
    for g in ("rock", "jazz"):
        (tmp_path / g).mkdir()
        shutil.copy(gtzan_file(f"{g}.00002"), tmp_path / g)
    _write(tmp_path / "rock" / "silent.wav", np.zeros(22050 * 5))
    _write(tmp_path / "rock" / "short.wav", np.ones(22050) * 0.1)
    (tmp_path / "jazz" / "corrupt.wav").write_bytes(b"RIFF1234WAVEfmt garbage")
    (tmp_path / "jazz" / "empty.wav").write_bytes(b"")
    ds = discover(tmp_path)
    with caplog.at_level("WARNING", logger="edge_genre"):
        w = load_windows(ds.tracks, FRONTEND, WINDOW, cache_dir=tmp_path / "cache")
    assert sorted(t.track_id for t in w.tracks) == ["jazz.00002", "rock.00002"]
    reasons = {p.name: r for p, r in w.skipped}
    assert set(reasons) == {"silent.wav", "short.wav", "corrupt.wav", "empty.wav"}
    assert "silent" in reasons["silent.wav"] and "shorter" in reasons["short.wav"]
    assert "empty" in reasons["empty.wav"]
    for name in reasons:  # reported once, by name
        assert sum(name in r.getMessage() for r in caplog.records) == 1
    assert len(w) == 28 and w.x.shape[1:] == (64, 199, 1)
    assert set(np.unique(w.track)) == {0, 1}


def test_cache_reads_instead_of_recomputing(tmp_path):
    track = discover(gtzan_file("blues.00000").parents[1]).tracks[0]
    cache = tmp_path / "cache"
    first = load_windows([track], FRONTEND, WINDOW, cache_dir=cache)
    files = sorted(cache.rglob("*.npy"))
    assert files  # audio and features stored
    # Poison the cached features: a second load must return them, proving it read the cache.
    feat = next(f for f in files if "features" in f.parts)
    np.save(feat, np.zeros_like(np.load(feat)))
    second = load_windows([track], FRONTEND, WINDOW, cache_dir=cache)
    assert not second.x.any() and first.x.any()
    # Another front-end setting is another key: never a stale read.
    other = dataclasses.replace(FRONTEND, n_mels=40)
    third = load_windows([track], other, WINDOW, cache_dir=cache)
    assert third.x.shape[1] == 40 and third.x.any()
    # Normalisation is not part of the key: it is applied on load.
    normed = dataclasses.replace(FRONTEND, mean=-40.0, std=10.0)
    assert load_windows([track], normed, WINDOW, cache_dir=cache).x.shape == first.x.shape


def test_a_cache_that_cannot_be_written_is_turned_off_with_one_warning(tmp_path, caplog):
    """``--cache-dir`` at a path blocked by a file (which stops root too, as a read-only mount
    or a full disk would): the features come out the same, uncached, with one warning and no
    traceback; a cache whose writes start failing later is turned off the same way."""
    from edge_genre.train import features as F

    track = discover(gtzan_file("blues.00000").parents[1]).tracks[0]
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    with caplog.at_level("WARNING", logger="edge_genre"):
        a = load_windows([track], FRONTEND, WINDOW, cache_dir=blocked / "cache")
        b = load_windows([track], FRONTEND, WINDOW, cache_dir=blocked / "cache")
    np.testing.assert_array_equal(a.x, load_windows([track], FRONTEND, WINDOW).x)
    np.testing.assert_array_equal(a.x, b.x)
    assert sum("feature cache off" in r.getMessage() for r in caplog.records) == 1
    assert blocked.read_text() == "not a folder"

    later = F.FeatureCache(tmp_path / "later")
    (tmp_path / "later" / "features").write_text("in the way")  # the kind's folder is a file
    later.put("features", track.path, "k", np.ones(3))
    assert later.folder is None and later.get("features", track.path, "k") is None


def test_features_equal_the_runtime_front_end(tmp_path):
    track = discover(gtzan_file("disco.00000").parents[1]).tracks[0]
    w = load_windows([track], FRONTEND, WINDOW, cache_dir=None)
    from edge_genre.edge import audio
    y = audio.load(track.path, 16000)
    np.testing.assert_array_equal(w.x[3], fe.features(y[3 * 32000:3 * 32000 + 64000], FRONTEND))
    mean, std = normalization_stats(w.x)
    assert -80 < mean < 0 < std
    cfg = dataclasses.replace(FRONTEND, mean=mean, std=std)
    z = w.normalized(cfg)
    assert abs(float(z.mean())) < 1e-3 and float(z.std()) == pytest.approx(1, abs=1e-3)
