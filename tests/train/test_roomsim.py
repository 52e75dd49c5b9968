"""The simulated room microphone on real GTZAN audio: what each stage does, measured."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.conftest import gtzan_file
from edge_genre.edge import audio
from edge_genre.train import roomsim as R

SR = 16000


@pytest.fixture(scope="module")
def song():
    return audio.load(gtzan_file("jazz.00002"), SR)[: 10 * SR]


def _rms(x):
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def _band_energy(x, lo, hi):
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return float(spec[(f >= lo) & (f < hi)].sum())


def test_same_length_float32_and_in_range(song):
    out = R.simulate(song, SR)
    assert out.shape == song.shape and out.dtype == np.float32
    assert np.abs(out).max() <= 1.0 and np.isfinite(out).all()
    assert R.simulate(np.zeros(0, np.float32), SR).shape == (0,)


def test_the_test_room_is_the_same_for_every_run_and_differs_per_copy(song):
    a = R.RoomCopy(R.ROOM_AUGMENT, 1).apply(song, SR, "jazz.00002")
    b = R.RoomCopy(R.ROOM_AUGMENT, 1).apply(song, SR, "jazz.00002")
    c = R.RoomCopy(R.ROOM_AUGMENT, 2).apply(song, SR, "jazz.00002")
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert R.RoomCopy().key() != R.RoomCopy(R.ROOM_AUGMENT, 1).key()


def test_level_follows_the_gain(song):
    out = R.simulate(song, SR, R.ROOM_TEST)
    # ROOM_TEST: -12 dB at the microphone (+ noise 20 dB below it, about +0.04 dB).
    assert 20 * np.log10(_rms(out) / _rms(song)) == pytest.approx(-12.0, abs=0.5)


def test_band_limits_take_the_bass_and_the_top(song):
    flat = dataclasses.replace(R.ROOM_TEST, drr_db=(60.0, 60.0), snr_db=(90.0, 90.0),
                               gain_db=(0.0, 0.0))
    out = R.simulate(song, SR, flat)
    ratio = lambda lo, hi: _band_energy(out, lo, hi) / _band_energy(song, lo, hi)  # noqa: E731
    assert ratio(20, 60) < 0.2 * ratio(500, 2000)  # 150 Hz high-pass, 2nd order
    assert ratio(7500, 8000) < 0.5 * ratio(500, 2000)  # 6 kHz low-pass


def test_reverberation_lengthens_a_click():
    click = np.zeros(SR, np.float32)
    click[100] = 0.5
    cfg = dataclasses.replace(R.ROOM_TEST, snr_db=(120.0, 120.0))
    out = R.simulate(click, SR, cfg)
    tail = out[100 + int(0.1 * SR):100 + int(0.4 * SR)]
    assert _rms(tail) > 1e-4  # energy 100-400 ms after the click: the room's tail
    ir = R.impulse_response(SR, 0.5, 3.0, np.random.default_rng(0))
    early, late = np.sum(ir[1:SR // 10] ** 2), np.sum(ir[SR // 10 * 3:SR // 10 * 4] ** 2)
    assert late < early / 10  # decays: -60 dB at rt60 = 0.5 s


def test_noise_sets_the_snr(song):
    silent_music = np.zeros_like(song)
    assert np.abs(R.simulate(silent_music, SR)).max() == 0  # no signal, no noise level to set
    cfg = dataclasses.replace(R.ROOM_TEST, snr_db=(0.0, 0.0))
    loud_noise = R.simulate(song, SR, cfg)
    clean = R.simulate(song, SR, dataclasses.replace(R.ROOM_TEST, snr_db=(200.0, 200.0)))
    noise = loud_noise - clean
    assert 20 * np.log10(_rms(noise) / _rms(clean)) == pytest.approx(0.0, abs=1.0)
