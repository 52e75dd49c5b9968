"""Hostile audio files: crafted headers, absurd sample rates, broken links and wild sample values.

Every hostile file is made here, in tmp_path or in memory. What they must not do: crash the
decoder with anything but an AudioError, make a small file cost gigabytes or seconds, or stop a
``predict`` batch. Memory is measured with tracemalloc (numpy reports its buffers to it) and the peak resident size
(VmHWM) in a fresh interpreter, so that caches and earlier tests do not blur the numbers.
"""
from __future__ import annotations

import io
import json
import logging
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edge_genre.cli import main
from edge_genre.edge import audio
from edge_genre.edge import resample as rs
from edge_genre.errors import AudioError

from tests.conftest import REPO, gtzan_file
from tests.edge.modelfiles import fp32_tflite  # noqa: F401 (fixture)

MB = 1 << 20


# ----------------------------------------------------------------------------- file makers


def wav_bytes(payload: bytes, rate: int, channels: int = 1, bits: int = 16, tag: int = 1,
              data_size: int | None = None) -> bytes:
    """A RIFF/WAVE file with any header values, true or not."""
    block = max(1, channels * bits // 8) & 0xFFFF
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    size = len(payload) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size)
    return b"RIFF" + struct.pack("<I", (len(body) + len(payload)) & 0xFFFFFFFF) + body + payload


def au_bytes(payload: bytes, rate: int, channels: int = 1, encoding: int = 3) -> bytes:
    return b".snd" + struct.pack(">IIIII", 24, len(payload), encoding, rate, channels) + payload


def pcm16(n: int, seed: int = 0) -> bytes:
    y = np.random.default_rng(seed).uniform(-0.3, 0.3, n)
    return (y * 32767).astype("<i2").tobytes()


def run_python(code: str, timeout: float = 120) -> dict:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


MEASURE = """
import json, sys, time, tracemalloc
import numpy as np
from edge_genre.edge import audio
from edge_genre.errors import AudioError
path, rate = sys.argv[1] if len(sys.argv) > 1 else {path!r}, 22050
tracemalloc.start()
t0 = time.perf_counter()
try:
    y = audio.load(path, rate)
    result = {{"ok": True, "samples": int(len(y))}}
except AudioError as exc:
    result = {{"ok": False, "error": str(exc)}}
result["seconds"] = time.perf_counter() - t0
result["peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
try:  # this address space's peak RSS (ru_maxrss would include the parent's, kept across exec)
    with open("/proc/self/status") as f:
        hwm = next(line for line in f if line.startswith("VmHWM:"))
    result["maxrss_mb"] = int(hwm.split()[1]) / 1024
except (OSError, StopIteration):
    result["maxrss_mb"] = 0.0  # not Linux: tracemalloc's peak is the measure
print(json.dumps(result))
"""


# ----------------------------------------------------------------------------- 1. sample rates


def test_megahertz_wav_is_refused_with_the_accepted_range_cheaply(tmp_path):
    """A 2 KB WAV claiming 999983 Hz (a prime) once built a 2.6 GB filter table."""
    path = tmp_path / "mhz.wav"
    path.write_bytes(wav_bytes(pcm16(1000), 999_983))
    assert path.stat().st_size < 2100
    r = run_python(MEASURE.format(path=str(path)))
    assert not r["ok"]
    assert "999983 Hz" in r["error"] and "1 kHz to 384 kHz" in r["error"]
    assert r["peak_mb"] < 50 and r["maxrss_mb"] < 200
    assert r["seconds"] < 2


def test_prime_rate_inside_the_range_resamples_in_little_memory(tmp_path):
    """383987 Hz (a prime) is a legal rate: its exact ratio to 22050 Hz is 22050/383987, whose
    table would hold 22050 x 590 taps; the approximated one stays small."""
    path = tmp_path / "prime.wav"
    path.write_bytes(wav_bytes(pcm16(40_000), 383_987))
    r = run_python(MEASURE.format(path=str(path)))
    assert r["ok"], r
    assert abs(r["samples"] - 40_000 * 22050 / 383_987) <= 2
    assert r["peak_mb"] < 32 and r["maxrss_mb"] < 200
    assert r["seconds"] < 3


@pytest.mark.parametrize("in_rate, out_rate", [(383_987, 22050), (1009, 22050), (383_987, 16000),
                                               (12_347, 22050), (200_003, 44100)])
def test_resampler_factors_and_table_are_bounded(in_rate, out_rate):
    r = rs.Resampler(in_rate, out_rate)
    assert max(r.up, r.down) <= rs.MAX_FACTOR
    assert 0 < r.rate_error < 1e-4  # the documented bound: below 0.01 %
    assert r._taps.nbytes < 8 * MB
    y = np.random.default_rng(0).standard_normal(3000)
    out = rs.resample(y, in_rate, out_rate)
    assert len(out) == -(-len(y) * r.up // r.down)
    assert abs(len(out) - len(y) * out_rate / in_rate) <= 1 + len(y) * out_rate / in_rate * 1e-4


@pytest.mark.parametrize("in_rate, out_rate", [(999_983, 22050), (1_000_003, 16000), (999, 22050),
                                               (22050, 500_000), (2**31, 22050)])
def test_resampler_refuses_rates_outside_the_range(in_rate, out_rate):
    with pytest.raises(ValueError, match="1 kHz to 384 kHz"):
        rs.Resampler(in_rate, out_rate)


def test_common_rates_stay_exact():
    common = (8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000,
              352800, 384000)
    for a in common:
        for b in common:
            r = rs.Resampler(a, b)
            assert r.rate_error == 0.0 and r.up * a == r.down * b, (a, b)


def test_approximation_error_stays_below_documented_bound():
    rng = np.random.default_rng(1)
    for _ in range(2000):
        a = int(rng.integers(rs.MIN_RATE, rs.MAX_RATE + 1))
        b = int(rng.choice([16000, 22050, 44100, 48000, int(rng.integers(1000, 384_001))]))
        up, down = rs.conversion_factors(a, b)
        assert max(up, down) <= rs.MAX_FACTOR
        assert abs(a * up / down / b - 1) < 1 / (rs.MAX_FACTOR - 1)


@pytest.mark.parametrize("block", [1, 333, 4096])
def test_streaming_equals_whole_for_an_approximated_ratio(block):
    y = np.random.default_rng(2).standard_normal(20_000)
    whole = rs.resample(y, 383_987, 22050)
    r = rs.Resampler(383_987, 22050)
    parts = [r.process(y[i:i + block]) for i in range(0, len(y), block)] + [r.flush()]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_filter_table_cache_is_bounded_in_bytes():
    for k in range(12):  # a dozen awkward rates: more than fits
        rs.Resampler(383_987 - 2 * k, 22050)
    assert 0 < rs.cache_bytes() <= rs.CACHE_BYTES


def test_predict_refuses_megahertz_wav_in_one_line_and_goes_on(fp32_tflite, tmp_path, capsys):
    bad = tmp_path / "mhz.wav"
    bad.write_bytes(wav_bytes(pcm16(1000), 1_000_003))
    good = gtzan_file("jazz.00002")
    code = main(["predict", "--model", str(fp32_tflite), str(bad), str(good)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{good}: " in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{bad}: error: ")
    assert "1000003 Hz" in lines[0] and "1 kHz to 384 kHz" in lines[0]


# ----------------------------------------------------------------------------- 2. crafted headers


CRAFTED = {
    "zero-bit PCM": (wav_bytes(pcm16(500), 22050, bits=0), "0-bit PCM"),
    "8-bit float": (wav_bytes(pcm16(500), 22050, bits=8, tag=3), "8-bit float"),
    "16-bit float": (wav_bytes(pcm16(500), 22050, bits=16, tag=3), "16-bit float"),
    "12-bit PCM": (wav_bytes(pcm16(500), 22050, bits=12), "12-bit PCM"),
    "64-bit PCM": (wav_bytes(pcm16(500), 22050, bits=64), "64-bit PCM"),
    "65535 channels": (wav_bytes(pcm16(500), 22050, channels=65535), "65535 channels"),
    "au 2^31 channels": (au_bytes(pcm16(500), 22050, channels=2**31), "2147483648 channels"),
    "au 0-bit encoding": (au_bytes(pcm16(500), 22050, encoding=0), "encoding 0"),
    "au zero rate": (au_bytes(pcm16(500), 0), "no sample rate"),
    "au 4 GHz": (au_bytes(pcm16(500), 2**32 - 1), "1 kHz to 384 kHz"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_header_is_one_clear_audio_error(case):
    data, message = CRAFTED[case]
    with pytest.raises(AudioError, match=message) as err:
        audio.decode(data, "crafted.wav")
    text = str(err.value)
    assert text.startswith("crafted.wav: ") and "\n" not in text


def test_predict_goes_on_past_crafted_headers(fp32_tflite, tmp_path, capsys):
    """0-bit and 8-bit-float WAVs used to end the batch with a ZeroDivisionError/TypeError."""
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "a_zero_bits.wav").write_bytes(CRAFTED["zero-bit PCM"][0])
    (folder / "b_float8.wav").write_bytes(CRAFTED["8-bit float"][0])
    good = gtzan_file("jazz.00002")
    (folder / "c_good.wav").write_bytes(good.read_bytes())
    code = main(["predict", "--model", str(fp32_tflite), str(folder)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{folder / 'c_good.wav'}: " in out
    lines = err.strip().splitlines()
    assert [line.split(": error: ")[0] for line in lines] == [
        str(folder / "a_zero_bits.wav"), str(folder / "b_float8.wav")]
    assert "Traceback" not in err


def test_huge_data_chunk_in_small_file_allocates_what_is_there():
    data = wav_bytes(pcm16(1000), 22050, data_size=0xFFFFFFF0)  # claims 4 GB, holds 2 KB
    import tracemalloc

    tracemalloc.start()
    try:
        a = audio.decode(data, "liar.wav")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert a.samples.shape == (1000, 1)
    assert peak < 64 * len(data)


def test_flac_claiming_billions_of_frames_allocates_little():
    """soundfile.read sizes its array by the header's frame count: 2^32 frames = 16 GB."""
    sf = pytest.importorskip("soundfile")
    import tracemalloc

    buf = io.BytesIO()
    sf.write(buf, 0.1 * np.random.default_rng(0).standard_normal(4000), 22050, format="FLAC")
    data = bytearray(buf.getvalue())
    assert data[:4] == b"fLaC"
    si = 8  # STREAMINFO body: total samples are the low 36 bits of bytes 13..17
    n = 2**32
    data[si + 13] = (data[si + 13] & 0xF0) | (n >> 32)
    data[si + 14:si + 18] = (n & 0xFFFFFFFF).to_bytes(4, "big")
    tracemalloc.start()
    try:
        try:
            audio.decode(bytes(data), "liar.flac")
        except AudioError as exc:
            assert str(exc).startswith("liar.flac: ")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * MB


# The header fields worth hitting, (offset, width): RIFF size, fmt size, tag, channels, rate,
# byte rate, block align, bits, data size; for .au: offset, size, encoding, rate, channels.
WAV_FIELDS = [(4, 4), (16, 4), (20, 2), (22, 2), (24, 4), (28, 4), (32, 2), (34, 2), (40, 4)]
AU_FIELDS = [(4, 4), (8, 4), (12, 4), (16, 4), (20, 4)]
EXTREMES = [0, 1, 2, 3, 6, 7, 8, 12, 24, 27, 32, 64, 0xFF, 0xFFFE, 0xFFFF, 0x7FFFFFFF,
            0x80000000, 0xFFFFFFFF, 999_983, 384_001]


def _mutate(data: bytes, fields, big_endian: bool, rng) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        op = int(rng.integers(0, 4))
        if op == 0:  # an extreme value in a header field
            off, width = fields[int(rng.integers(len(fields)))]
            value = EXTREMES[int(rng.integers(len(EXTREMES)))] & ((1 << 8 * width) - 1)
            b[off:off + width] = value.to_bytes(width, "big" if big_endian else "little")
        elif op == 1:  # random bytes anywhere in the first 64
            for _ in range(int(rng.integers(1, 4)) if b else 0):  # (a truncation may leave < 64)
                b[int(rng.integers(0, min(64, len(b))))] = int(rng.integers(0, 256))
        elif op == 2:  # a different fourcc / magic
            b[0:4] = [b"RIFF", b"RIFX", b".snd", b"fLaC", b"OggS", b"\0\0\0\0"][int(rng.integers(6))]
        else:  # truncate
            b = b[:int(rng.integers(0, len(b) + 1))]
    return bytes(b)


def test_header_fuzz_only_audio_error_escapes():
    """Seeded: a few hundred mutated/truncated headers of a real WAV and a real .au excerpt."""
    rng = np.random.default_rng(20240611)
    sources = [(gtzan_file("jazz.00002").read_bytes()[:6000], WAV_FIELDS, False, "fuzz.wav"),
               (gtzan_file("jazz.00003").read_bytes()[:6000], AU_FIELDS, True, "fuzz.au")]
    assert sources[1][0][:4] == b".snd"
    escaped, decoded = [], 0
    for i in range(400):
        src, fields, big, name = sources[i % 2]
        data = _mutate(src, fields, big, rng)
        try:
            a = audio.decode(data, name)
        except AudioError as exc:
            assert str(exc).startswith(f"{name}: ") and "\n" not in str(exc), str(exc)
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test
            escaped.append((i, type(exc).__name__, str(exc)[:80], data[:48].hex()))
            continue
        decoded += 1
        s = a.samples
        assert s.dtype == np.float32 and s.ndim == 2 and s.size > 0
        assert rs.MIN_RATE <= a.sample_rate <= rs.MAX_RATE
        assert np.all(np.isfinite(s)) and np.max(np.abs(s)) <= 1.0
        assert s.nbytes <= 4 * len(data)  # at most 4 bytes of float per byte of file
    assert not escaped, escaped[:10]
    assert decoded > 20  # the fuzz also exercised the success path


# ----------------------------------------------------------------------------- 3. smaller items


@pytest.mark.parametrize("args", [["--hop", "0"], ["--hop", "-2"], ["--hop", "nan"],
                                  ["--smoothing", "0"], ["--smoothing", "-3"],
                                  ["--seconds", "0"]])
def test_listen_rejects_bad_hop_and_smoothing_as_usage_error(args, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["listen", *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert f"argument {args[0]}:" in err.strip().splitlines()[-1]
    assert "Traceback" not in err


def test_listen_bad_hop_through_the_console_script():
    done = subprocess.run([sys.executable, "-m", "edge_genre", "listen", "--hop", "0"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "argument --hop: must be a positive number" in done.stderr.strip().splitlines()[-1]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_predict_reports_broken_symlinks_in_a_folder(fp32_tflite, tmp_path, capsys):
    folder = tmp_path / "music"
    folder.mkdir()
    (folder / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    (folder / "loop.wav").symlink_to(folder / "loop.wav")
    (folder / "ok.wav").symlink_to(gtzan_file("jazz.00002"))
    code = main(["predict", "--model", str(fp32_tflite), str(folder)])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"{folder / 'ok.wav'}: " in out
    lines = err.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{folder / 'dangling.wav'}: error: ") and "broken" in lines[0]
    assert lines[1].startswith(f"{folder / 'loop.wav'}: error: ") and "loop" in lines[1]


def test_broken_symlink_given_directly(tmp_path):
    link = tmp_path / "dangling.wav"
    link.symlink_to(tmp_path / "gone.wav")
    with pytest.raises(AudioError, match="broken symbolic link"):
        audio.read(link)


def test_soundfile_errors_name_the_file_not_a_bytesio(tmp_path):
    pytest.importorskip("soundfile")
    path = tmp_path / "song.mp3"
    path.write_bytes(b"\x00\x01 not an mp3 at all " * 40)
    with pytest.raises(AudioError) as err:
        audio.read(path)
    text = str(err.value)
    assert text.startswith(f"{path}: cannot decode audio")
    assert "BytesIO" not in text and "0x" not in text and "<" not in text
    with pytest.raises(AudioError) as err:
        audio.decode(b"junk" * 100, "upload.ogg")
    assert str(err.value).startswith("upload.ogg: ") and "BytesIO" not in str(err.value)


def _float_wav(values) -> bytes:
    return wav_bytes(np.asarray(values, dtype="<f4").tobytes(), 22050, bits=32, tag=3)


def test_wild_float_samples_are_clipped_with_one_warning(caplog):
    y = 0.5 * np.sin(2 * np.pi * 440 * np.arange(2000) / 22050)
    y[10], y[20], y[30], y[40], y[50] = 1e30, -1e30, np.inf, np.nan, 1.5
    with caplog.at_level(logging.WARNING, logger="edge_genre"):
        a = audio.decode(_float_wav(y), "wild.wav")
    s = a.samples[:, 0]
    assert np.all(np.isfinite(s)) and np.max(np.abs(s)) <= 1.0
    assert s[10] == 1.0 and s[20] == -1.0 and s[30] == 0.0 and s[40] == 0.0 and s[50] == 1.0
    np.testing.assert_allclose(s[100:200], y[100:200], atol=1e-7)  # the rest is untouched
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    msg = warnings[0].getMessage()
    assert msg.startswith("wild.wav: ") and "2 non-finite" in msg and "3 sample(s) outside" in msg


def test_well_behaved_float_wav_gives_no_warning(caplog):
    y = 0.5 * np.sin(2 * np.pi * 440 * np.arange(2000) / 22050)
    with caplog.at_level(logging.WARNING, logger="edge_genre"):
        audio.decode(_float_wav(y), "calm.wav")
    assert not caplog.records


def test_predict_warns_once_on_stderr_for_wild_samples(fp32_tflite, tmp_path, capsys):
    rng = np.random.default_rng(3)
    y = 0.3 * rng.standard_normal(22050 * 5)
    y[::1000] = 1e30
    path = tmp_path / "wild.wav"
    path.write_bytes(_float_wav(y))
    code = main(["predict", "--model", str(fp32_tflite), str(path)])
    out, err = capsys.readouterr()
    assert code == 0 and f"{path}: " in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "WARNING" in lines[0] and f"{path}: " in lines[0]
    assert "outside [-1, 1] clipped" in lines[0]


# ----------------------------------------------------------------------------- issue 24.4


@pytest.mark.parametrize("tag, law", [(6, "A"), (7, "mu")])
def test_g711_wav_with_a_16_bit_header_is_refused(tmp_path, tag, law):
    """G.711 samples are bytes; a WAV tagged A-law or mu-law that declares 16-bit samples is
    mislabelled (its bytes were 16-bit PCM read as codes: noise, which was classified)."""
    path = tmp_path / "mislabelled.wav"
    path.write_bytes(wav_bytes(pcm16(22050 * 6), 22050, bits=16, tag=tag))
    for opener in (audio.read, audio.open_stream):
        with pytest.raises(AudioError, match=f"{law}-law WAV declares 16-bit samples"):
            opener(path)
    good = tmp_path / "alaw.wav"  # the 8-bit form still decodes
    good.write_bytes(wav_bytes(bytes(range(256)) * 100, 8000, bits=8, tag=tag))
    assert audio.read(good).samples.shape == (25600, 1)


def test_a_wav_truncated_while_it_is_read_says_what_was_read(tmp_path, caplog):
    """The file shrinks between two blocks (another program rewriting it): the blocks read are
    classified, with one warning saying how much of the file that was."""
    src = audio.read(gtzan_file("jazz.00002"))
    path = tmp_path / "shrinking.wav"
    y = (src.samples[:, 0] * 32767).astype("<i2").tobytes()
    path.write_bytes(wav_bytes(y, src.sample_rate))
    with caplog.at_level(logging.WARNING, logger="edge_genre"):
        with audio.open_stream(path, block_frames=src.sample_rate) as stream:
            blocks = iter(stream)
            first = [next(blocks) for _ in range(10)]  # 10 s read
            os.truncate(path, 44 + 2 * 10 * src.sample_rate)  # and the rest is gone
            rest = list(blocks)
    read_s = sum(map(len, first + rest)) / src.sample_rate
    assert 10.0 <= read_s < 10.1  # what the reader had buffered before the cut is kept
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "ended while it was being read" in warnings[0]
    assert f"first {read_s:.1f} s of its {len(src.samples) / src.sample_rate:.1f} s" in warnings[0]


def damaged_mp3(path, seconds: float = 6.0):
    """A real MP3 (libsndfile's LAME encoder) with a byte overwritten every 397: libmpg123
    resyncs and complains on stderr from C for each damaged frame."""
    import soundfile

    rate = 22050
    y = audio.read(gtzan_file("jazz.00002")).samples[:int(seconds * rate), 0]
    try:
        soundfile.write(str(path), y, rate, format="MP3")
    except (soundfile.LibsndfileError, ValueError, TypeError) as exc:
        pytest.skip(f"this libsndfile cannot write MP3 ({exc})")
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    for i in range(2000, len(data), 397):
        data[i] = int(rng.integers(256))
    path.write_bytes(bytes(data))
    return path


def test_native_decoder_lines_stay_off_the_terminal(tmp_path):
    """libmpg123's "[src/libmpg123/...] error: ..." and "Note: Trying to resync..." lines went
    to the terminal between ours; now only our lines do, and -v shows the native ones."""
    mp3 = damaged_mp3(tmp_path / "damaged.mp3")
    cmd = [sys.executable, "-m", "edge_genre", "predict", str(mp3), str(tmp_path / "gone.wav")]
    quiet = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 1, quiet.stderr
    assert quiet.stderr.strip().splitlines() == [f"{tmp_path / 'gone.wav'}: error: no such file or folder"]
    verbose = subprocess.run(cmd[:3] + ["-v"] + cmd[3:], capture_output=True, text=True,
                             timeout=120)
    assert "DEBUG: native: [src/libmpg123/" in verbose.stderr


def test_tag_workers_warnings_still_reach_the_terminal(tmp_path):
    """tag's worker processes write their warnings (a clipped file) to the stderr they inherit,
    which is the pipe the native lines go to: ours must come through, once."""
    y = audio.read(gtzan_file("jazz.00002")).samples[:22050 * 6, 0].astype("<f4")
    y[100:110] = 1e30
    wild = tmp_path / "wild.wav"
    wild.write_bytes(wav_bytes(y.tobytes(), 22050, bits=32, tag=3))
    run = subprocess.run([sys.executable, "-m", "edge_genre", "tag", str(wild), "--workers", "1",
                          "-q", "--out", str(tmp_path / "t.csv")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.strip().splitlines()
    assert lines == [f"edge-genre: WARNING: {wild}: 10 sample(s) outside [-1, 1] clipped"], lines
