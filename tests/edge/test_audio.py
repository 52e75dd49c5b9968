"""Audio reading: our numpy WAV/AU parsers against soundfile on real GTZAN files, and every kind
of bad file a user can hand us."""
from __future__ import annotations

import struct
import wave

import numpy as np
import pytest

from edge_genre.edge import audio
from edge_genre.errors import AudioError
from tests.conftest import GTZAN_MINI, gtzan_file

sf = pytest.importorskip("soundfile")


@pytest.mark.parametrize("track_id", ["blues.00000", "jazz.00002", "metal.00001", "reggae.00003"])
def test_gtzan_wav_matches_soundfile(track_id):
    path = gtzan_file(track_id)
    ours = audio.read(path)
    ref, rate = sf.read(path, dtype="float32", always_2d=True)
    assert ours.sample_rate == rate == 22050
    np.testing.assert_allclose(ours.samples, ref, atol=1e-6)


def test_gtzan_au_files_decode_like_soundfile():
    au = sorted(GTZAN_MINI.glob("*/*.au"))
    assert au, "the mini set holds some original .au files"
    for path in au:
        ours = audio.read(path)
        ref, rate = sf.read(path, dtype="float32", always_2d=True)
        assert ours.sample_rate == rate
        np.testing.assert_allclose(ours.samples, ref, atol=1e-6)


def _write_wav(path, samples: np.ndarray, rate: int, width: int = 2):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[1] if samples.ndim == 2 else 1)
        w.setsampwidth(width)
        w.setframerate(rate)
        scale = {1: 127, 2: 32767, 4: 2**31 - 1}[width]
        ints = np.round(np.clip(samples, -1, 1) * scale)
        if width == 1:
            w.writeframes((ints + 128).astype(np.uint8).tobytes())
        else:
            w.writeframes(ints.astype({2: "<i2", 4: "<i4"}[width]).tobytes())


@pytest.mark.parametrize("width", [1, 2, 4])
def test_pcm_widths_and_stereo_to_mono(tmp_path, width):
    t = np.arange(4410) / 44100
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "stereo.wav"
    _write_wav(path, np.stack([left, right], axis=1), 44100, width)
    a = audio.read(path)
    assert a.samples.shape == (4410, 2) and a.sample_rate == 44100
    mono = audio.to_mono(a.samples)
    np.testing.assert_allclose(mono, (left + right) / 2, atol=2 / 127 if width == 1 else 1e-4)


def test_float_wav_via_soundfile_and_resample(tmp_path):
    y = 0.3 * np.sin(2 * np.pi * 1000 * np.arange(48000) / 48000).astype(np.float32)
    path = tmp_path / "float.wav"
    sf.write(path, y, 48000, subtype="FLOAT")
    out = audio.load(path, 16000)
    assert out.dtype == np.float32 and len(out) == 16000
    # A 1 kHz tone survives 48k -> 16k with its amplitude.
    assert np.sqrt(np.mean(out[1000:-1000] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.02)


def test_flac_through_soundfile(tmp_path):
    y = 0.2 * np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    path = tmp_path / "noise.flac"
    sf.write(path, y, 22050)
    np.testing.assert_allclose(audio.load(path, 22050), y, atol=1e-4)


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"RIFF\x00\x00\x00\x00WAVEjunk", "cannot decode"),
    (b"this is not audio at all" * 10, "cannot decode"),
])
def test_bad_files_raise_one_clear_audio_error(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as err:
        audio.read(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_gtzan_file_is_refused_or_shortened(tmp_path):
    data = gtzan_file("rock.00000").read_bytes()
    path = tmp_path / "truncated.wav"
    path.write_bytes(data[:30])  # header cut in half
    with pytest.raises(AudioError):
        audio.read(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        audio.read(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="directory"):
        audio.read(tmp_path)


def test_header_only_wav_has_no_samples(tmp_path):
    path = tmp_path / "zero.wav"
    _write_wav(path, np.zeros((0, 1)), 22050)
    with pytest.raises(AudioError, match="no audio samples"):
        audio.read(path)


def test_silence_and_level():
    assert audio.is_silent(np.zeros(1000, np.float32))
    assert audio.rms_dbfs(np.zeros(10)) == float("-inf")
    y = audio.load(gtzan_file("pop.00000"), 22050)
    assert not audio.is_silent(y)
    assert -40 < audio.rms_dbfs(y) < 0
    full_scale_sine = np.sin(2 * np.pi * np.arange(22050) * 100 / 22050)
    assert audio.rms_dbfs(full_scale_sine) == pytest.approx(-3.01, abs=0.01)
