"""The distilled student on real GTZAN audio and the real YAMNet teacher: windows of both
front-ends align per track, and the student trains one epoch with the right output shapes."""
import numpy as np
import pytest

from edge_genre.train import distill as D
from edge_genre.train import yamnet as Y
from edge_genre.train.data import discover
from edge_genre.train.presets import SCRATCH

from tests.conftest import YAMNET_TFLITE


@pytest.mark.slow
def test_student_trains_one_epoch_with_aligned_windows(gtzan_root, tmp_path):
    ds = discover(gtzan_root)
    tracks = ds.subset(1).tracks[:4]
    a = D.load_aligned(tracks, tmp_path, Y.read_tflite_weights(YAMNET_TFLITE))
    assert not a.dropped and len(a.windows.tracks) == 4
    assert a.teacher.shape == (len(a.windows), 1024)
    for i in range(4):  # same count per track in both front-ends (30 s excerpts, 4 s hop 2 s)
        assert np.sum(a.windows.track == i) >= 13
    train, valid = D.subset(a, tracks[:3]), D.subset(a, tracks[3:])
    assert len(train.windows) + len(valid.windows) == len(a.windows)
    o = D.fit_student(train, valid, len(ds.labels), D.DistillConfig(lam=1.0, dims=8, epochs=1),
                      progress=False)
    assert len(o.history) == 1 and o.best_epoch == 1
    x = train.windows.x[:5]
    genre, emb = o.student(x, training=False)
    assert tuple(genre.shape) == (5, len(ds.labels)) and tuple(emb.shape) == (5, 8)
    probs = np.asarray(o.model(x, training=False))
    assert o.model.input_shape[1:] == SCRATCH.input_shape
    assert probs.shape == (5, len(ds.labels))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, np.asarray(genre), atol=1e-6)  # shared body and head
