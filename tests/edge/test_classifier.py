"""The streaming Classifier on real GTZAN audio: push == classify, hops, silence, short tracks."""
from __future__ import annotations

import numpy as np
import pytest

from edge_genre.edge.audio import read, to_mono
from edge_genre.edge.classifier import NO_MUSIC, Classifier
from edge_genre.errors import AudioError

from tests.conftest import gtzan_file
from tests.edge.modelfiles import fp32_tflite  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def clf(fp32_tflite):
    return Classifier(fp32_tflite)


@pytest.fixture(scope="module")
def jazz():
    audio = read(gtzan_file("jazz.00002"))
    return to_mono(audio.samples), audio.sample_rate


@pytest.fixture(scope="module")
def student():
    """The shipped full-int8 student: a front-end at a 20 ms hop, int8 input and output."""
    from edge_genre.defaults import shipped_models

    return Classifier(shipped_models("student")[0])


@pytest.mark.parametrize("which", ["clf", "student"])
def test_push_in_blocks_equals_classify(which, request, jazz):
    clf = request.getfixturevalue(which)
    y, rate = jazz
    whole = clf.classify(y, rate)
    clf.reset()
    rng = np.random.default_rng(0)
    pushed, pos = [], 0
    while pos < len(y):
        n = int(rng.integers(100, 9000))
        pushed += clf.push(y[pos:pos + n], rate)
        pos += n
    # The streaming resampler holds back its last few outputs until more input comes, so the
    # stream may complete one window fewer than the whole track.
    assert len(whole.decisions) - 1 <= len(pushed) <= len(whole.decisions)
    assert len(pushed) >= 10
    for a, b in zip(pushed, whole.decisions):
        assert (a.index, a.start, a.end) == (b.index, b.start, b.end)
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-4)
        np.testing.assert_allclose(a.smoothed, b.smoothed, atol=1e-4)
        assert a.level_dbfs == pytest.approx(b.level_dbfs, abs=0.01)
        assert a.latency_ms > 0


def test_windows_every_hop_and_frames_reused(clf, jazz):
    y, rate = jazz
    clf.reset()
    decisions = clf.push(y, rate)
    starts = [d.start for d in decisions]
    np.testing.assert_allclose(np.diff(starts), clf.hop_seconds)
    assert decisions[0].end == pytest.approx(clf.window_seconds)
    stats = clf.stream_stats
    # With a 2 s hop in a 4 s window, about half of every later window's frames are reused.
    assert stats["frames_reused"] > 0.4 * stats["frames_computed"]


def test_push_at_microphone_rates_agrees_with_file_rate(clf, jazz):
    from edge_genre.edge.resample import resample

    y, rate = jazz
    clf.reset()
    ref = clf.push(y[:rate * 12], rate)
    for mic_rate in (44100, 48000):
        clf.reset()
        y_mic = resample(y[:rate * 12], rate, mic_rate)
        got = clf.push(y_mic, mic_rate)
        assert len(got) >= len(ref) - 1
        for a, b in zip(got, ref):
            assert a.label == b.label
            np.testing.assert_allclose(a.probs, b.probs, atol=0.05)


def test_smoothing_is_mean_of_last_windows(fp32_tflite, jazz):
    y, rate = jazz
    clf = Classifier(fp32_tflite, smoothing=3)
    decisions = clf.push(y, rate)
    for i in range(2, len(decisions)):
        expect = np.mean([d.probs for d in decisions[i - 2:i + 1]], axis=0)
        np.testing.assert_allclose(decisions[i].smoothed, expect, atol=1e-6)
    one = Classifier(fp32_tflite, smoothing=1).push(y, rate)
    np.testing.assert_allclose(one[3].smoothed, one[3].probs, atol=1e-6)


def test_silence_is_no_music(clf):
    clf.reset()
    decisions = clf.push(np.zeros(48000 * 9, np.float32), 48000)
    assert len(decisions) >= 3
    for d in decisions:
        assert d.silent and d.label == NO_MUSIC and d.smoothed_label == NO_MUSIC
        assert d.confidence == 0.0 and not np.any(d.probs)
    result = clf.classify(np.zeros(16000 * 10, np.float32), 16000)
    assert result.silent and result.label == NO_MUSIC


def test_quiet_noise_gated_music_not(clf, jazz):
    y, rate = jazz
    noise = (np.random.default_rng(1).standard_normal(rate * 6) * 10 ** (-70 / 20)).astype(np.float32)
    clf.reset()
    assert all(d.silent for d in clf.push(noise, rate))  # -70 dBFS < -60 dBFS gate
    music = clf.classify(y, rate)
    assert not any(d.silent for d in music.decisions)
    assert all(-40 < d.level_dbfs < 0 for d in music.decisions)


def test_music_after_silence_starts_afresh(fp32_tflite, jazz):
    y, rate = jazz
    clf = Classifier(fp32_tflite, smoothing=3)
    stream = np.concatenate([y[:rate * 8], np.zeros(rate * 8, np.float32), y[rate * 8:rate * 16]])
    decisions = clf.push(stream, rate)
    labels = ["silent" if d.silent else "music" for d in decisions]
    assert "silent" in labels and labels[0] == "music" and labels[-1] == "music"
    first_after = next(i for i in range(labels.index("silent"), len(labels)) if labels[i] == "music")
    d = decisions[first_after]
    np.testing.assert_allclose(d.smoothed, d.probs, atol=1e-6)  # history cleared by the silence


def test_track_result_is_mean_of_windows(clf, jazz):
    y, rate = jazz
    result = clf.classify(y, rate)
    np.testing.assert_allclose(result.probs, np.mean([d.probs for d in result.decisions], 0), atol=1e-6)
    assert result.label == result.ranking()[0][0]
    assert result.duration == pytest.approx(30.0, abs=0.1)
    d = result.to_dict(windows=True)
    assert d["label"] == result.label and len(d["window_decisions"]) == len(result.decisions)


def test_short_tracks_padded_or_refused(clf, jazz):
    y, rate = jazz
    min_s = clf.card.window.min_fill * clf.window_seconds
    ok = clf.classify(y[:int(rate * (min_s + 0.5))], rate)
    assert ok.padded and len(ok.decisions) == 1
    with pytest.raises(AudioError, match="too short"):
        clf.classify(y[:int(rate * (min_s - 0.5))], rate, name="short.wav")


def test_stereo_input_is_averaged(clf, jazz):
    y, rate = jazz
    mono = clf.classify(y[:rate * 8], rate)
    stereo = clf.classify(np.stack([y[:rate * 8], y[:rate * 8]], axis=1), rate)
    np.testing.assert_allclose(mono.probs, stereo.probs, atol=1e-6)


def test_default_model_when_none_given():
    from edge_genre.defaults import shipped_models

    if shipped_models():
        assert Classifier().runner.path in shipped_models()
    else:
        from edge_genre.errors import ModelError

        with pytest.raises(ModelError, match="pass --model"):
            Classifier()
