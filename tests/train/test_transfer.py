"""The ``transfer`` preset on real GTZAN audio and the real YAMNet weights: backbone-map cache,
head fitting, the assembled one-file model, the model-dir contract and the Preset contract."""
from __future__ import annotations

import numpy as np
import pytest

from edge_genre.edge import audio
from edge_genre.edge import frontend as fe
from edge_genre.edge.config import ModelCard
from edge_genre.edge.windowing import cut_windows
from edge_genre.train import transfer as T
from edge_genre.train import yamnet as Y
from edge_genre.train.data import discover


@pytest.fixture(scope="module")
def weights(yamnet_weights):
    return yamnet_weights


@pytest.fixture(scope="module")
def small(gtzan_root):
    return discover(gtzan_root).subset(2)  # 20 tracks, 2 per genre


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def maps(small, weights, cache):
    return T.backbone_maps(small.tracks, weights, cache)


def test_preset_contract():
    from edge_genre.train.presets import get_preset

    p = get_preset("transfer")
    assert p.name == "transfer" and p.fit is not None
    assert p.input_shape == (64, 397, 1) == T.input_shape()
    assert p.frontend == Y.yamnet_frontend()
    assert p.window.seconds == 4.0 and p.window.hop_seconds == 2.0


def test_the_default_and_the_student_hear_through_their_taught_copies(weights):
    """``transfer`` sits on the shipped YAMNet taught by musicnn (``yamnet-musicnn.npz``, from the
    self-distilled ``yamnet-robust.npz``): the same layout as the TFLite file's weights, every
    layer changed, and its maps cached beside YAMNet's under a key naming the file. The student
    sits on its first 6 layers taught by musicnn (``student-musicnn.npz``, from its
    self-distilled ``student-robust.npz``), the rest of each file YAMNet's own."""
    from edge_genre.train.backbones import get_backbone
    from edge_genre.train.features import settings_key

    assert T.CONFIGS["transfer"].backbone == "yamnet_musicnn"
    assert T.CONFIGS["student"].backbone == "student_musicnn"
    plain = get_backbone("yamnet")
    key = settings_key(plain.frontend, plain.window)
    copies = {}
    for name in ("yamnet_robust", "yamnet_musicnn"):
        body = get_backbone(name)
        assert body.frontend == plain.frontend and body.cache_kind == "yamnet"
        assert body.maps_key(key, 14) != plain.maps_key(key, 14)
        copies[name] = body.read_weights()
        for a, b in zip(copies[name].layers, weights.layers):
            assert a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)
            assert any(not np.allclose(a[k], b[k]) for k in a)
    assert get_backbone("yamnet_robust").maps_key(key, 14) != \
        get_backbone("yamnet_musicnn").maps_key(key, 14)
    assert get_backbone("yamnet_robust_20ms").cache_kind == "yamnet_20ms"
    keys = set()
    for name in ("student_robust", "student_musicnn"):
        student = get_backbone(name)
        assert student.cache_kind == "yamnet_20ms" and student.frontend.hop_length == 320
        keys.add(student.maps_key(key, 6))
        own = student.read_weights()
        for i, (a, b) in enumerate(zip(own.layers, weights.layers)):
            # float16 in the file: YAMNet's own layers come back within its rounding
            same = all(np.allclose(a[k], b[k], rtol=1e-3, atol=1e-4) for k in a)
            assert same == (i >= 6), f"{name}, layer {i + 1}"
    assert len(keys | {get_backbone("yamnet_20ms").maps_key(key, 6)}) == 3


def test_config_is_checked():
    from edge_genre.errors import ModelError

    with pytest.raises(ModelError):
        T.TransferConfig(pooling="median")
    with pytest.raises(ModelError):
        T.TransferConfig(c=0)
    with pytest.raises(ModelError):
        T.TransferConfig(depth=15)
    with pytest.raises(ModelError):
        T.TransferConfig(scaling="none")
    with pytest.raises(ModelError):
        T.TransferConfig(room_copies=-1)


@pytest.mark.slow
def test_backbone_maps_are_cached(small, weights, cache, maps):
    assert maps.maps.shape[1:] == (13, 2, 1024) and maps.maps.dtype == np.float16
    assert len(maps.tracks) == len(small.tracks) == len(np.unique(maps.track))
    again = T.backbone_maps(small.tracks[:3], None, cache)  # no weights needed: all cached
    n = int(np.sum(np.isin(maps.track, [0, 1, 2])))
    np.testing.assert_array_equal(again.maps, maps.maps[:n])


@pytest.fixture(scope="module")
def maps6(small, weights, cache):
    """The student's maps: YAMNet's first 6 layers."""
    return T.backbone_maps(small.tracks, weights, cache, depth=6)


@pytest.mark.slow
@pytest.mark.parametrize("pooling, depth, scaling", [(p, 14, "global") for p in T.POOLINGS]
                         + [("mean", 6, "feature")])
def test_assembled_model_equals_head_on_cached_maps(small, weights, maps, maps6, pooling, depth,
                                                    scaling):
    """The one-file model (normalised features in) == the head on the cached pooled maps."""
    cfg = T.TransferConfig(pooling=pooling, depth=depth, scaling=scaling)
    m = maps if depth == 14 else maps6
    assert m.maps.shape[-1] == cfg.channels
    feats = T.pool(m.maps, pooling)
    assert feats.shape[1] == cfg.n_features
    head, info = T.fit_head(feats, m.y, len(small.labels), cfg)
    assert info["train_window_accuracy"] > 0.9
    mean, std = -1.5, 2.0
    model = T.assemble(weights, head, pooling, mean, std, depth)
    track = m.tracks[0]
    y = audio.load(track.path, 16000)
    cfg_fe = T.FRONTEND.with_normalization(mean, std)
    x = fe.features_batch(cut_windows(y, cfg_fe, T.WINDOW), cfg_fe)
    assert x.shape[1:] == model.input_shape[1:]
    probs = model.predict(x, verbose=0)
    expected = head.predict(feats[m.track == 0], verbose=0)
    # The cache holds the maps in float16: agreement to about 1e-3 in probability.
    assert np.abs(probs - expected).max() < 0.01


@pytest.mark.slow
def test_student_maps_are_cached_apart(small, cache, maps, maps6):
    assert maps6.maps.shape[1:] == (50, 8, 256)
    assert len(maps6.maps) == len(maps.maps)
    # Both depths now come from the cache (no weights given), each with its own shape.
    assert T.backbone_maps(small.tracks[:1], None, cache).maps.shape[-1] == 1024
    assert T.backbone_maps(small.tracks[:1], None, cache, depth=6).maps.shape[-1] == 256


@pytest.mark.slow
def test_coarse_hop_body_halves_the_frames(small, weights, cache, maps6):
    """``yamnet_20ms`` (the student's body) hears the same log-mel every 20 ms: half the frames in
    every map, its own cache entry, and the same first frame as YAMNet's 10 ms hop."""
    coarse = T.backbone_maps(small.tracks[:1], weights, cache, depth=6, backbone="yamnet_20ms")
    assert coarse.maps.shape[1:] == (25, 8, 256) and maps6.maps.shape[1:] == (50, 8, 256)
    assert len(coarse.maps) == int(np.sum(maps6.track == 0))  # the same windows
    cached = T.backbone_maps(small.tracks[:1], None, cache, depth=6, backbone="yamnet_20ms")
    assert cached.maps.shape[1] == 25  # read back from its own entry, not the 10 ms one
    fine, twenty = T.input_shape("yamnet"), T.input_shape("yamnet_20ms")
    assert twenty == (64, 199, 1) and fine == (64, 397, 1)
    y = audio.load(small.tracks[0].path, 16000)
    f10 = fe.features_batch(cut_windows(y, T.FRONTEND, T.WINDOW)[:1], T.FRONTEND)
    b20 = T.get_backbone("yamnet_20ms").frontend
    f20 = fe.features_batch(cut_windows(y, b20, T.WINDOW)[:1], b20)
    np.testing.assert_allclose(f20[0, :, :, 0], f10[0, :, ::2, 0][:, :199], atol=1e-4)


@pytest.mark.slow
def test_room_copies_join_the_head_training_data(small, weights, cache, maps6):
    """Each room copy adds every training window again, as a room microphone hears it."""
    tracks = small.tracks[:4]
    plain = T.TransferConfig(depth=6, scaling="feature")
    feats = T.pool(maps6.maps, plain.pooling)
    x0, y0 = T.head_training_data(maps6, feats, tracks, plain, weights, cache)
    x1, y1 = T.head_training_data(maps6, feats, tracks, T.TransferConfig(
        depth=6, scaling="feature", room_copies=1), weights, cache)
    n = len(x0)
    assert len(x1) == 2 * n and np.array_equal(y1[:n], y0) and np.array_equal(y1[n:], y0)
    np.testing.assert_array_equal(x1[:n], x0)
    assert not np.allclose(x1[n:], x0, atol=1e-2)  # the room changed the features


def plain_transfer():
    """The ``transfer`` preset with its head fitted on the recordings only (no room copies):
    the CLI's path, kept short."""
    import dataclasses
    import functools

    from edge_genre.train.presets import get_preset

    return dataclasses.replace(get_preset("transfer"),
                               fit=functools.partial(T.fit_preset, cfg=T.TransferConfig()))


@pytest.mark.slow
def test_cross_validate_runs_on_artist_folds(small, cache, maps):
    """``edge-genre evaluate --cv`` on a transfer preset: its Preset.fit on each fold, scored
    on the fold's test tracks, best_epoch by the same rule as ``train_run``."""
    from edge_genre.train.evaluate import cross_validate

    r = cross_validate(plain_transfer(), small, k=2, seed=0, cache_dir=cache, progress=False)
    assert len(r["track_accuracy_per_fold"]) == 2
    assert all(0.0 <= a <= 1.0 for a in r["track_accuracy_per_fold"])
    tested = [i for f in r["per_fold"] for i in f["test_ids"]]
    assert sorted(tested) == sorted(t.track_id for t in small.tracks)
    assert [(f["best_epoch"], f["epochs_run"]) for f in r["per_fold"]] == [(1, 1), (1, 1)]
    # 10 genres, 2 tracks each, YAMNet features: far above chance (0.1) even here.
    assert r["track_accuracy_mean"] > 0.3


@pytest.mark.slow
def test_train_run_writes_the_run_directory(small, cache, maps, tmp_path):
    """``train_run`` with a given split: the run directory reads back with the split it was
    given, and the model in it is the one scored."""
    from edge_genre.train.fit import train_run
    from edge_genre.train.run_dir import load_model, read_run
    from edge_genre.train.splits import Split

    train_tracks, test_tracks = small.tracks[::2], small.tracks[1::2]
    result = train_run(plain_transfer(), small, Split("given", train_tracks, [], test_tracks),
                       out_dir=tmp_path, cache_dir=cache, progress=False)
    run = read_run(tmp_path)
    card = run.card
    assert card.preset == "transfer" and card.labels == small.labels
    assert card.input_shape == (64, 397, 1) and card.frontend.std > 0
    assert run.record.test["track_accuracy"] == result.test.track_accuracy
    assert run.record.best_epoch == 1 and run.record.train_seconds > 0
    assert set(run.split_ids("test")) == {t.track_id for t in test_tracks}
    assert run.record.split.name == "given" and run.split_ids("valid", required=False) == []
    model = load_model(run)
    x = np.zeros((2,) + card.input_shape, np.float32)
    p = model.predict(x, verbose=0)
    assert p.shape == (2, len(small.labels)) and np.allclose(p.sum(1), 1, atol=1e-5)


@pytest.mark.slow
def test_fit_train_run_uses_the_preset_fit(small, tmp_path):
    """``edge-genre train --preset transfer`` goes through fit.train_run and Preset.fit."""
    from edge_genre.train.fit import train_run

    ds = small.subset(1)  # 10 tracks: the backbone runs on their windows once
    result = train_run("transfer", ds, split="artist", out_dir=tmp_path, progress=False)
    card = ModelCard.from_json((tmp_path / "model_card.json").read_text())
    assert card.preset == "transfer" and card.input_shape == (64, 397, 1)
    assert result.model.output_shape == (None, len(ds.labels))
