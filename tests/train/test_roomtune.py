"""Room tuning (``train/roomtune.py``) and the ``room`` preset, on real excerpts and the real
YAMNet and room-robust musicnn weights."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import YAMNET_TFLITE
from edge_genre.errors import ModelError
from edge_genre.train import roomtune as RT
from edge_genre.train import transfer as T
from edge_genre.train import yamnet as Y
from edge_genre.train.data import discover

#: One room copy and one epoch keep the tests to seconds.
SMALL = RT.RoomTuneConfig(copies=1, epochs=1, batch=16)


@pytest.fixture(scope="module")
def weights(yamnet_weights):
    return yamnet_weights


@pytest.fixture(scope="module")
def tracks(gtzan_root):
    ds = discover(gtzan_root)
    return [ds.subset(1).tracks[i] for i in (0, 1, 6)]  # blues, classical, metal


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def data(tracks, weights, cache):
    return RT.tune_data(tracks, weights, cache, SMALL)


@pytest.mark.slow
def test_every_version_of_a_window_has_the_clean_windows_target(data, tracks):
    n_clean = int(np.sum(data.version == 0))
    assert n_clean == 3 * 14 and len(data.x) == 2 * n_clean  # 30 s: 14 windows, clean + 1 copy
    assert data.x.shape[1:] == (25, 4, 512) and data.target.shape == (len(data.x), 250)
    clean, room = data.version == 0, data.version == 1
    # Same window, same target, whatever the room; the targets are standardised on clean rows.
    assert np.array_equal(data.target[clean], data.target[room])
    assert np.allclose(data.target[clean].mean(0), 0, atol=1e-4)
    # The room copy is another input.
    assert np.abs(data.x[clean].astype(np.float32) - data.x[room].astype(np.float32)).mean() > 0.01
    assert set(data.track_ids) == {t.track_id for t in tracks}


@pytest.mark.slow
def test_no_epochs_is_the_pretrained_body(data, weights):
    """Tuning for 0 epochs changes nothing: the top's pooled output is the whole body's."""
    tuned, history = RT.tune_top(data, weights, replace(SMALL, epochs=0), 10, progress=False)
    assert history == []
    for a, b in zip(tuned.layers, weights.layers):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    top = RT.top_features(data.x[:4], tuned, SMALL)
    from edge_genre.train.transfer import pool

    rest = Y.build_backbone(weights, None, until=14, start=12, input_channels=512)
    ref = pool(rest.predict(data.x[:4].astype(np.float32), verbose=0), "mean")
    assert top.shape == (4, 1024) and np.allclose(top, ref, atol=1e-4)


@pytest.mark.slow
def test_tuning_changes_only_the_top_layers(data, weights):
    tuned, history = RT.tune_top(data, weights, SMALL, 10, progress=False)
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    for i, (a, b) in enumerate(zip(tuned.layers, weights.layers)):
        same = all(np.array_equal(a[k], b[k]) for k in a)
        assert same == (i < SMALL.cut), i


def test_config_is_checked():
    with pytest.raises(ModelError):
        T.TransferConfig(backbone="musicnn", tune=RT.RoomTuneConfig())
    with pytest.raises(ModelError):
        T.TransferConfig(room_copies=3, tune=RT.RoomTuneConfig(copies=2))
    assert T.CONFIGS["room"].tune is not None and T.CONFIGS["room"].to_dict()["tune"]["cut"] == 12


@pytest.mark.slow
def test_room_preset_trains_the_assembled_model(tracks, cache, tmp_path):
    """``fit_preset`` with tuning: the assembled model (full YAMNet with the tuned top) gives
    the head's probabilities on the tuned features of the same windows."""
    from edge_genre.train.features import load_windows, normalization_stats
    from edge_genre.train.presets import get_preset

    preset = get_preset("room")
    w = load_windows(tracks, preset.frontend, preset.window, cache_dir=cache)
    cfg = T.TransferConfig(room_copies=1, tune=SMALL)
    model, history = T.fit_preset(preset, w, None, cfg=cfg, cache_dir=cache, n_labels=10,
                                  progress=False)
    assert len(history[0]["tuning"]) == 1
    mean, std = normalization_stats(w.x)
    p = model.predict((w.x[:3] - mean) / std, verbose=0)
    assert p.shape == (3, 10) and np.allclose(p.sum(1), 1, atol=1e-5)
    # The same model took the tuned layers: its body's layer 14 is not YAMNet's.
    body = model.get_layer("yamnet")
    pw = body.get_layer("layer14_pointwise").get_weights()[0]
    assert not np.array_equal(pw, Y.read_tflite_weights(YAMNET_TFLITE).layers[13]["pw_kernel"])
