"""The simulated room microphone on real GTZAN audio: physical rooms, what each stage of the
capture does, measured, and the fixed test rooms."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.conftest import gtzan_file
from edge_genre.edge import audio
from edge_genre.errors import DataError
from edge_genre.train import roomsim as R
from edge_genre.train.rooms import Room, RoomBank, RoomRanges, direct_to_reverberant_db

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


def _rt60(h, sr=SR):
    """Schroeder backward integration, -5 to -25 dB extrapolated to -60 dB (T20)."""
    edc = np.cumsum(np.asarray(h, np.float64)[::-1] ** 2)[::-1]
    db = 10 * np.log10(edc / edc[0])
    i5, i25 = np.argmax(db <= -5), np.argmax(db <= -25)
    return 3 * (i25 - i5) / sr


def test_same_length_float32_and_in_range(song):
    for condition in ("near", "far"):
        out = R.simulate(song, SR, condition)
        assert out.shape == song.shape and out.dtype == np.float32
        assert np.abs(out).max() <= 1.0 and np.isfinite(out).all()
    assert R.simulate(np.zeros(0, np.float32), SR).shape == (0,)


@pytest.mark.parametrize("rt60", [0.3, 0.7, 1.2])
def test_a_room_reverberates_as_long_as_its_rt60(rt60):
    h = Room((6.0, 4.5, 2.7), rt60, (1.0, 1.0, 1.2), (4.5, 3.0, 1.0)).impulse_response(SR)
    assert _rt60(h) == pytest.approx(rt60, rel=0.2)


def test_far_from_the_speaker_the_room_drowns_the_direct_sound():
    """Past the critical distance (0.64 m in the far room) the reverberant field is louder
    than the direct sound, and it grows with the distance: physics, not a set ratio."""
    near, far = (R.room_response(c.room, SR) for c in (R.NEAR, R.FAR))
    assert R.FAR.room.distance_m > 4 * R.FAR.room.critical_distance_m
    assert direct_to_reverberant_db(far, SR) < -8
    assert direct_to_reverberant_db(far, SR) < direct_to_reverberant_db(near, SR) - 3
    close = dataclasses.replace(R.NEAR.room, mic_m=(1.3, 2.1, 1.0))  # 0.3 m
    assert direct_to_reverberant_db(close.impulse_response(SR), SR) > 0


def test_the_same_room_gives_the_same_response():
    room = R.FAR.room
    np.testing.assert_array_equal(room.impulse_response(SR), room.impulse_response(SR))


def test_the_test_room_is_the_same_for_every_run_and_differs_per_copy(song):
    a = R.RoomCopy("far", 1).apply(song, SR, "jazz.00002")
    b = R.RoomCopy("far", 1).apply(song, SR, "jazz.00002")
    c = R.RoomCopy("far", 2).apply(song, SR, "jazz.00002")
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)  # another noise draw
    keys = {R.RoomCopy(n, i).key() for n in ("near", "far") for i in (0, 1)}
    assert len(keys) == 4


def test_level_follows_the_gain(song):
    # near: -12 dB at the microphone (+ noise 25 dB below it, about +0.01 dB).
    assert 20 * np.log10(_rms(R.simulate(song, SR, "near")) / _rms(song)) == pytest.approx(
        -12.0, abs=0.5)
    assert 20 * np.log10(_rms(R.simulate(song, SR, "far")) / _rms(song)) == pytest.approx(
        -24.0, abs=0.7)


def test_band_limits_take_the_bass_and_the_top(song):
    anechoic = np.zeros(64, np.float32)
    anechoic[0] = 1.0
    cap = R.Capture(speaker_highpass_hz=150.0, mic_lowpass_hz=6000.0, gain_db=0.0,
                    noise="pink", snr_db=90.0)
    out = R.capture(song, SR, anechoic, cap, np.random.default_rng(0))
    ratio = lambda lo, hi: _band_energy(out, lo, hi) / _band_energy(song, lo, hi)  # noqa: E731
    assert ratio(20, 60) < 0.2 * ratio(500, 2000)  # 150 Hz high-pass, 2nd order
    assert ratio(7500, 8000) < 0.5 * ratio(500, 2000)  # 6 kHz low-pass


@pytest.mark.parametrize("kind,slope", [("pink", -10.0), ("brown", -20.0)])
def test_noise_falls_as_its_colour_says(kind, slope):
    x = R.noise(kind, 10 * SR, np.random.default_rng(0), SR)
    assert _rms(x) == pytest.approx(1.0, rel=1e-3)
    per_decade = 10 * np.log10(_band_energy(x, 1000, 1100) / 100 / (_band_energy(x, 100, 110) / 10))
    assert per_decade == pytest.approx(slope, abs=2.5)


def test_babble_is_speech_band_and_comes_and_goes():
    x = R.noise("babble", 10 * SR, np.random.default_rng(0), SR)
    assert _band_energy(x, 100, 4000) > 0.95 * _band_energy(x, 0, SR / 2)
    frames = np.sqrt(np.mean(x[: 10 * SR].reshape(100, -1) ** 2, axis=1))  # 100 ms frames
    assert frames.max() > 2 * frames.min()  # syllables, not a steady hiss


def test_augmentation_rooms_span_near_to_far_field():
    bank = R.ROOM_AUGMENT.bank
    rooms = bank.rooms()  # geometry only: cheap
    assert rooms == bank.rooms()  # seeded
    for room in rooms:
        assert all(0 < room.speaker_m[i] < room.dims_m[i] for i in range(3))
        assert all(0 < room.mic_m[i] < room.dims_m[i] for i in range(3))
        assert 10 * 0.9 <= room.volume_m3 <= 300 * 1.1 and 0.05 <= room.distance_m <= 8.0
    ratios = [room.distance_m / room.critical_distance_m for room in rooms]
    assert min(ratios) < 1 < 4 < max(ratios)  # some direct-dominated, some far-field


def test_the_bank_is_cached_and_the_augmenter_draws_from_it(song, tmp_path):
    bank = RoomBank(RoomRanges(), size=3, seed=5)
    first = bank.impulse_responses(SR, tmp_path)
    assert len(list((tmp_path / "rooms").glob("*.npz"))) == 1
    from edge_genre.train import rooms
    rooms._MEMORY.clear()
    again = bank.impulse_responses(SR, tmp_path)  # read back from disk
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    # A bank this process already holds is still written to another cache folder it is given
    # (where a job in another process reads it).
    bank.impulse_responses(SR, tmp_path / "other")
    assert len(list((tmp_path / "other" / "rooms").glob("*.npz"))) == 1
    augment = R.RoomAugment(bank=bank)
    f = R.augmenter(SR, tmp_path, augment)
    a, b = f(song, np.random.default_rng(1)), f(song, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert a.shape == song.shape and not np.allclose(a, f(song, np.random.default_rng(2)))


def test_a_cache_folder_that_cannot_be_written_costs_only_the_cache(tmp_path, caplog):
    """A cache that cannot be written (here a file where the folder should be, which stops root
    too; a read-only mount does the same): the bank is computed, used, and not written."""
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    bank = RoomBank(RoomRanges(), size=2, seed=7)
    with caplog.at_level("WARNING", logger="edge_genre"):
        responses = bank.impulse_responses(SR, blocked)
    assert len(responses) == 2 and "not cached" in caplog.text
    assert blocked.read_text() == "not a folder"


def test_unknown_rooms_are_refused_by_name():
    with pytest.raises(DataError, match="near, far"):
        R.parse_conditions("near,attic")
    assert R.parse_conditions(" far , near,far") == ("far", "near")
    with pytest.raises(DataError):
        R.RoomCopy("attic")


def test_a_test_room_describes_itself():
    d = R.FAR.to_dict()
    assert d["room"]["distance_m"] == pytest.approx(4.85, abs=0.01)
    assert d["direct_to_reverberant_db"] < -8
    assert d["capture"]["noise"] == "brown"


def test_ranges_with_no_room_for_a_microphone_are_refused_not_looped_on():
    """A room too small for the margins: a clear error instead of an endless search."""
    cramped = RoomRanges(volume_m3=(10.0, 10.0), aspect=(1.0, 1.0), height_m=(2.3, 2.3),
                         source_height_m=(1.15, 1.15), wall_margin_m=1.03)
    with pytest.raises(DataError, match="no place for a microphone"):
        cramped.draw(np.random.default_rng(0))
