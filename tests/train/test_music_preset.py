"""The ``music`` preset: frozen musicnn (shipped weights) + a genre head, on real GTZAN audio.

The port itself is tested against the original network in test_musicnn.py; here: the preset's
contract, the cached per-window vectors (penultimate + tag probabilities), and that the one-file
model (normalised features in) equals the head on those cached vectors."""
from __future__ import annotations

import numpy as np
import pytest

from edge_genre.edge import audio
from edge_genre.edge import frontend as fe
from edge_genre.edge.windowing import cut_windows
from edge_genre.errors import ModelError
from edge_genre.train import musicnn as M
from edge_genre.train import transfer as T
from edge_genre.train.backbones import get_backbone
from edge_genre.train.data import discover

CFG = T.CONFIGS["music"]


@pytest.fixture(scope="module")
def small(gtzan_root):
    return discover(gtzan_root).subset(1)  # 10 tracks, one per genre


@pytest.fixture(scope="module")
def maps(small, tmp_path_factory):
    return T.backbone_maps(small.tracks, None, tmp_path_factory.mktemp("cache"),
                           backbone="musicnn")


def test_preset_contract():
    from edge_genre.train.presets import get_preset

    p = get_preset("music")
    assert p.name == "music" and p.fit is not None
    assert p.frontend == M.musicnn_frontend() == get_backbone("musicnn").frontend
    assert p.input_shape == (96, 251, 1) == T.input_shape("musicnn")
    assert CFG.backbone == "musicnn_robust" and CFG.depth == 1 and CFG.n_features == 250
    with pytest.raises(ModelError):
        T.TransferConfig(backbone="musicnn", depth=2)
    with pytest.raises(ModelError):
        T.TransferConfig(backbone="vggish")


def test_the_preset_hears_through_the_room_robust_weights():
    """``music`` sits on the shipped robust copy: same layout, other weights, maps cached beside
    the original's under a key naming the file."""
    from edge_genre.train.features import settings_key

    robust, plain = get_backbone("musicnn_robust"), get_backbone("musicnn")
    assert robust.frontend == plain.frontend and robust.cache_kind == plain.cache_kind
    key = settings_key(plain.frontend, plain.window)
    assert robust.maps_key(key, 1) != plain.maps_key(key, 1)
    a, b = robust.read_weights(), plain.read_weights()
    assert a.arrays.keys() == b.arrays.keys()
    assert any(not np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)


@pytest.mark.slow
def test_cached_vectors_are_penultimate_and_tag_probabilities(small, maps):
    assert maps.maps.shape[1:] == (1, 1, 250)
    assert len(maps.tracks) == len(small.tracks)
    tags = maps.maps[..., 200:].astype(np.float32)
    assert tags.min() >= 0 and tags.max() <= 1  # sigmoid outputs
    # musicnn hears a metal excerpt as metal-ish and a classical one as not: a sanity check that
    # the weights and the front-end are wired, not an accuracy claim.
    by_genre = {t.genre: i for i, t in enumerate(maps.tracks)}
    metal = tags[maps.track == by_genre["metal"]].reshape(-1, 50).mean(0)
    classical = tags[maps.track == by_genre["classical"]].reshape(-1, 50).mean(0)
    heavy = [M.MSD_TAGS.index(t) for t in ("metal", "heavy metal", "hard rock")]
    assert metal[heavy].sum() > classical[heavy].sum()


@pytest.mark.slow
def test_assembled_model_equals_head_on_cached_vectors(small, maps):
    feats = T.pool(maps.maps, CFG.pooling)
    head, info = T.fit_head(feats, maps.y, len(small.labels), CFG)
    assert info["train_window_accuracy"] > 0.9
    mean, std = -5.0, 3.0
    model = T.assemble(M.read_weights(), head, CFG.pooling, mean, std, backbone="musicnn")
    track = maps.tracks[0]
    cfg_fe = M.musicnn_frontend().with_normalization(mean, std)
    x = fe.features_batch(cut_windows(audio.load(track.path, 16000), cfg_fe, T.WINDOW), cfg_fe)
    assert x.shape[1:] == model.input_shape[1:] == (96, 251, 1)
    probs = model.predict(x, verbose=0)
    expected = head.predict(feats[maps.track == 0], verbose=0)
    # The cache holds the vectors in float16: agreement to about 1e-3 in probability.
    assert np.abs(probs - expected).max() < 0.01
