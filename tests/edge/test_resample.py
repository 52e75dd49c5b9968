"""The streaming resampler: in blocks == whole, lengths, tones, and agreement with soxr/librosa."""
from __future__ import annotations

import numpy as np
import pytest

from edge_genre.edge.resample import Resampler, resample
from tests.conftest import gtzan_file
from edge_genre.edge import audio


@pytest.mark.parametrize("rates", [(48000, 16000), (44100, 22050), (48000, 22050),
                                   (22050, 16000), (16000, 48000), (16000, 16000)])
def test_length_and_tone(rates):
    src, dst = rates
    t = np.arange(src) / src
    y = 0.5 * np.sin(2 * np.pi * 440 * t)
    out = resample(y, src, dst)
    assert len(out) == int(np.ceil(src * dst / src))
    ref = 0.5 * np.sin(2 * np.pi * 440 * np.arange(len(out)) / dst)
    inner = slice(200, -200)  # the two ends see the zeros before and after
    assert np.max(np.abs(out[inner] - ref[inner])) < 2e-3


@pytest.mark.parametrize("block", [1, 17, 512, 4800, 100_000])
def test_streaming_equals_whole(block):
    y = audio.load(gtzan_file("classical.00001"), 22050)[:3 * 22050]
    whole = resample(y, 22050, 16000)
    r = Resampler(22050, 16000)
    parts = [r.process(y[i:i + block]) for i in range(0, len(y), block)] + [r.flush()]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("rates", [(44100, 16000), (48000, 16000), (8000, 16000),
                                   (16000, 16000), (383987, 16000)])
def test_inputs_for_is_the_least_input_that_gives_n_outputs(rates):
    """What Classifier.push holds input back by: one sample less delays the n-th output."""
    rng = np.random.default_rng(0)
    for n_out in [1, 2, 7, 64000, 64001] + list(rng.integers(1, 70000, 20)):
        r = Resampler(*rates)
        need = r.inputs_for(int(n_out))
        got = len(r.process(np.zeros(need - 1)))
        assert got < n_out
        assert got + len(r.process(np.zeros(1))) >= n_out
    assert Resampler(*rates).inputs_for(0) == 0


def test_rejects_nonsense_rates():
    with pytest.raises(ValueError):
        Resampler(0, 16000)


def test_close_to_soxr_on_music():
    soxr = pytest.importorskip("soxr")
    y = audio.load(gtzan_file("jazz.00002"), 22050)[:5 * 22050]
    ours = resample(y, 22050, 16000)
    ref = soxr.resample(y, 22050, 16000, quality="VHQ")
    n = min(len(ours), len(ref))
    inner = slice(500, n - 500)
    err = np.sqrt(np.mean((ours[inner] - ref[inner]) ** 2)) / np.sqrt(np.mean(ref[inner] ** 2))
    assert err < 0.01  # -40 dB relative error
