"""The one window rule and the one track mean (``edge.windowing``), and the Classifier keeping to
them: its windows are ``cut_windows``'s, its track probabilities ``track_mean``'s."""
from __future__ import annotations

import numpy as np
import pytest

from edge_genre.edge.backends import Runner
from edge_genre.edge.classifier import Classifier
from edge_genre.edge.config import FrontendConfig, ModelCard, WindowConfig
from edge_genre.edge.windowing import (cut_windows, padding, track_mean, track_probabilities,
                                       window_span, window_starts)
from edge_genre.errors import AudioError

FRONTEND = FrontendConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=320,
                          n_mels=64, fmin=50, fmax=8000, center=False)
WINDOW = WindowConfig(seconds=4.0, hop_seconds=2.0)

# A tiny waveform-in model for the Classifier: 1 s windows, a hop of 0.5 s that rounds to 31
# STFT hops of 16 samples (496 samples), min_fill 0.5 (500 samples).
TINY_FRONTEND = FrontendConfig(sample_rate=1000, n_fft=64, hop_length=16, n_mels=8)
TINY_WINDOW = WindowConfig(seconds=1.0, hop_seconds=0.5, min_fill=0.5)


def test_window_rule():
    size = WINDOW.window_samples(FRONTEND)
    hop = WINDOW.hop_samples(FRONTEND)
    assert size == 64000 and hop == 32000
    assert window_starts(30 * 16000, FRONTEND, WINDOW) == list(range(0, 26 * 16000 + 1, hop))
    assert len(window_starts(30 * 16000, FRONTEND, WINDOW)) == 14  # 30 s -> 14 windows
    assert window_starts(size - 1, FRONTEND, WINDOW) == [0]  # padded: holds >= half a window
    assert window_starts(size // 2 - 1, FRONTEND, WINDOW) == []  # too short: refused
    short = np.ones(size // 2, np.float32)
    w = cut_windows(short, FRONTEND, WINDOW)
    assert w.shape == (1, size) and w[0, :size // 2].all() and not w[0, size // 2:].any()


@pytest.mark.parametrize("n, starts, pad", [
    (0, [], None), (499, [], None),  # under min_fill of a window: no window
    (500, [0], 500), (999, [0], 1),  # min_fill or more: zero-padded to one window
    (1000, [0], 0), (1495, [0], 0),  # one whole window; the partial second one is dropped
    (1496, [0, 496], 0), (2487, [0, 496, 992], 0),  # every (rounded) hop
    (2488, [0, 496, 992, 1488], 0),
])
def test_starts_at_the_ends_of_the_rule(n, starts, pad):
    assert TINY_WINDOW.hop_samples(TINY_FRONTEND) == 496  # 0.5 s rounded to whole STFT hops
    assert window_starts(n, TINY_FRONTEND, TINY_WINDOW) == starts
    assert padding(n, TINY_FRONTEND, TINY_WINDOW) == pad


def test_cut_windows_follows_the_starts():
    y = np.arange(2488, dtype=np.float32)
    w = cut_windows(y, TINY_FRONTEND, TINY_WINDOW)
    assert w.shape == (4, 1000) and w.dtype == np.float32
    for row, s in zip(w, window_starts(len(y), TINY_FRONTEND, TINY_WINDOW)):
        np.testing.assert_array_equal(row, y[s:s + 1000])
    assert window_span(3, TINY_FRONTEND, TINY_WINDOW) == (1488, 2488)  # the last one above
    assert cut_windows(y[:499], TINY_FRONTEND, TINY_WINDOW).shape == (0, 1000)
    padded = cut_windows(y[1:601], TINY_FRONTEND, TINY_WINDOW)  # 600 samples, all non-zero
    assert padded.shape == (1, 1000) and padded[0, :600].all() and not padded[0, 600:].any()


def test_min_fill_boundary():
    window = WindowConfig(seconds=1.0, hop_seconds=0.5, min_fill=0.75)
    assert window_starts(749, TINY_FRONTEND, window) == []
    assert window_starts(750, TINY_FRONTEND, window) == [0]


def test_track_mean():
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.7, 0.3]], np.float32)
    mean = track_mean(probs)
    assert mean.dtype == np.float32 and mean.shape == (2,)
    np.testing.assert_allclose(mean, [0.5, 0.5], atol=1e-7)
    none = track_mean(np.zeros((0, 3), np.float32))  # no window heard: no genre
    assert none.shape == (3,) and not none.any()
    with pytest.raises(ValueError):
        track_mean(np.zeros(3))


def test_track_probabilities_groups_by_owner():
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6]])
    owners = np.array([7, 3, 7, 3, 7])  # windows of a track need not be contiguous
    ids, tp = track_probabilities(probs, owners)
    assert ids.tolist() == [3, 7] and tp.shape == (2, 2)
    np.testing.assert_allclose(tp[0], [0.1, 0.9])
    np.testing.assert_allclose(tp[1], [(1.0 + 0.5 + 0.4) / 3, (0.0 + 0.5 + 0.6) / 3])
    ids, tp = track_probabilities(np.zeros((0, 2)), np.zeros(0, int))
    assert len(ids) == 0 and tp.shape == (0, 2)
    with pytest.raises(ValueError):
        track_probabilities(probs, owners[:3])


# ----------------------------------------------------------------------------- the Classifier


class RecordingRunner(Runner):
    """A waveform-in 'model' that records the windows it is given; its probabilities are a
    function of the window (so a wrong window shows)."""

    backend = "test"

    def __init__(self):
        card = ModelCard(labels=("a", "b"), frontend=TINY_FRONTEND, window=TINY_WINDOW,
                         extra={"input": "waveform"})
        super().__init__("recording.tflite", card, None)
        self.seen: list[np.ndarray] = []

    def _run(self, x: np.ndarray) -> np.ndarray:
        self.seen += list(x)
        p = 1.0 / (1.0 + np.exp(-x.mean(axis=1) * 10))
        return np.stack([p, 1 - p], axis=1).astype(np.float32)


def _signal(n: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("n", [500, 999, 1000, 1495, 1496, 2487, 2488, 5000])
def test_classify_cuts_the_windows_of_the_rule(n):
    runner = RecordingRunner()
    clf = Classifier(runner, max_batch=3)
    y = _signal(n)
    result = clf.classify(y, TINY_FRONTEND.sample_rate)
    expect = cut_windows(y, TINY_FRONTEND, TINY_WINDOW)
    np.testing.assert_array_equal(np.stack(runner.seen), expect)
    starts = window_starts(n, TINY_FRONTEND, TINY_WINDOW)
    assert [d.start for d in result.decisions] == [s / 1000 for s in starts]
    assert result.padded == (n < 1000)
    np.testing.assert_array_equal(result.probs, track_mean(runner.predict(expect)))


def test_classify_refuses_what_the_rule_refuses():
    with pytest.raises(AudioError, match="too short"):
        Classifier(RecordingRunner()).classify(_signal(499), TINY_FRONTEND.sample_rate)


def test_classifier_hop_override_keeps_the_rule():
    clf = Classifier(RecordingRunner(), hop_seconds=0.25)  # 15.6 STFT hops -> 16 -> 256 samples
    assert clf.hop_samples == clf.window_config.hop_samples(TINY_FRONTEND) == 256
    y = _signal(2000)
    result = clf.classify(y, TINY_FRONTEND.sample_rate)
    assert [round(d.start * 1000) for d in result.decisions] == window_starts(
        len(y), TINY_FRONTEND, clf.window_config) == [0, 256, 512, 768]


def test_classify_leaves_the_stream_alone():
    """A whole-track classification between two pushes does not change what the stream gives."""
    y = _signal(4000, seed=1)
    plain = Classifier(RecordingRunner())
    expect = plain.push(y[:1700]) + plain.push(y[1700:])
    clf = Classifier(RecordingRunner())
    got = clf.push(y[:1700])
    clf.classify(_signal(3000, seed=2), TINY_FRONTEND.sample_rate)
    got += clf.push(y[1700:])
    assert [(d.index, d.start) for d in got] == [(d.index, d.start) for d in expect]
    for a, b in zip(got, expect):
        np.testing.assert_array_equal(a.probs, b.probs)
        np.testing.assert_array_equal(a.smoothed, b.smoothed)
