"""Whole tracks stream: files read block by block, windows batched, memory flat in the length.

``classify_file`` must give what it gave when it read the whole file and sent every window to
the interpreter at once (``reference_classify`` below is that code path, kept here as the
yardstick): same windows, same levels, same probabilities, on real GTZAN excerpts (.wav and
.au, and one shorter than a window). The block reader must agree with ``decode`` on every file,
good or hostile. And ``edge-genre predict`` on a 30-minute file must peak at the same resident
size as on a 5-minute one.
"""
from __future__ import annotations

import logging
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edge_genre.edge import audio
from edge_genre.edge.audio import open_stream, read, to_mono
from edge_genre.edge.classifier import Classifier, Decision, TrackResult, WindowLog, _Smoother
from edge_genre.edge.frontend import StreamingFrontend
from edge_genre.edge.resample import resample
from edge_genre.errors import AudioError

from tests.conftest import GTZAN_MINI, REPO, gtzan_file
from tests.edge.modelfiles import fp32_tflite  # noqa: F401 (fixture)
from tests.edge.test_hostile_audio import wav_bytes

MB = 1 << 20


@pytest.fixture(scope="module")
def clf(fp32_tflite):
    return Classifier(fp32_tflite)


class CountingRunner:
    """A Runner that records the batch sizes it is given."""

    def __init__(self, runner):
        self.runner, self.batches = runner, []

    def predict(self, x):
        self.batches.append(len(x))
        return self.runner.predict(x)

    def __getattr__(self, name):
        return getattr(self.runner, name)


def reference_classify(clf: Classifier, path) -> dict:
    """``classify_file`` as it was before streaming: the whole file decoded, resampled, cut into
    windows, every heard window's features in one interpreter call, probabilities averaged."""
    a = read(path)
    y = to_mono(a.samples)
    duration = len(y) / a.sample_rate
    y = resample(y, a.sample_rate, clf.sample_rate)
    n, hop = clf.window_samples, clf.hop_samples
    padded = len(y) < n
    if padded:
        if len(y) < clf.card.window.min_fill * n:
            raise AudioError("too short")
        y = np.pad(y, (0, n - len(y)))
    starts = range(0, len(y) - n + 1, hop)
    levels = [audio.rms_dbfs(y[s:s + n]) for s in starts]
    silent = [not lv >= clf.config.silence_dbfs for lv in levels]
    heard = [i for i, s in enumerate(silent) if not s]
    probs = np.zeros((len(starts), len(clf.labels)), dtype=np.float32)
    if heard:
        x = np.stack(StreamingFrontend(clf.frontend, n, hop).push(y[:starts[-1] + n]))[heard]
        probs[heard] = clf.runner.predict(x)
    smoother = _Smoother(clf.config.smoothing)
    decisions = [Decision(index=i, start=i * hop / clf.sample_rate,
                          end=i * hop / clf.sample_rate + n / clf.sample_rate, labels=clf.labels,
                          probs=probs[i], smoothed=smoother.update(probs[i], silent[i]),
                          level_dbfs=float(levels[i]), silent=silent[i], latency_ms=0.0)
                 for i in range(len(starts))]
    result = TrackResult(labels=clf.labels, decisions=decisions, duration=duration, padded=padded)
    return without_latency(result.to_dict(windows=True))


def without_latency(d: dict) -> dict:
    for w in d.get("window_decisions", []):
        w.pop("latency_ms")
    return d


# ----------------------------------------------------------------------------- same results


@pytest.mark.parametrize("track_id", ["jazz.00002", "metal.00001", "classical.00002",
                                      "jazz.00003", "blues.00089"])  # the last two are .au
def test_classify_file_equals_whole_file_classification(clf, track_id):
    path = gtzan_file(track_id)
    streamed = Classifier(clf.runner)
    streamed.runner = counting = CountingRunner(clf.runner)  # as serve wraps its runners
    result = streamed.classify_file(path)
    assert isinstance(result, TrackResult) and isinstance(result.decisions, WindowLog)
    expected = reference_classify(clf, path)
    got = without_latency(result.to_dict(windows=True))
    assert got["windows"] == expected["windows"] == 14
    assert [w["level_dbfs"] for w in got["window_decisions"]] == \
        [w["level_dbfs"] for w in expected["window_decisions"]]
    np.testing.assert_allclose(list(got["probs"].values()), list(expected["probs"].values()),
                               rtol=0, atol=1e-6)
    for a, b in zip(result.decisions, reference_decisions(clf, path)):
        np.testing.assert_allclose(a.probs, b.probs, rtol=0, atol=1e-6)
        np.testing.assert_allclose(a.smoothed, b.smoothed, rtol=0, atol=1e-6)
        assert (a.start, a.end, a.silent) == (b.start, b.end, b.silent)
    assert got == expected  # rounded JSON: identical
    assert max(counting.batches) <= 8 and sum(counting.batches) == 14


def reference_decisions(clf, path):
    """The per-window Decisions of the old path (through ``classify`` of the old code's
    arrays: one batch), for the float comparisons."""
    big = Classifier(clf.runner, max_batch=10_000)
    a = read(path)
    return list(big.classify(a.samples, a.sample_rate).decisions)


def test_file_shorter_than_a_window_is_padded_as_before(clf, tmp_path):
    a = read(gtzan_file("jazz.00003"))  # an .au excerpt, cut to 3 s and written as .au
    cut = a.samples[:3 * a.sample_rate, 0]
    pcm = (np.clip(cut, -1, 1) * 32767).astype(">i2").tobytes()
    path = tmp_path / "short.au"
    path.write_bytes(b".snd" + struct.pack(">IIIII", 24, len(pcm), 3, a.sample_rate, 1) + pcm)
    result = clf.classify_file(path)
    assert result.padded and len(result.decisions) == 1
    assert without_latency(result.to_dict(windows=True)) == reference_classify(clf, path)
    tiny = tmp_path / "tiny.wav"
    half = (np.clip(cut[:a.sample_rate // 2], -1, 1) * 32767).astype("<i2").tobytes()
    tiny.write_bytes(wav_bytes(half, a.sample_rate))
    with pytest.raises(AudioError, match=r"too short \(0\.50 s") as err:
        clf.classify_file(tiny)
    assert str(err.value).startswith(f"{tiny}: ")


def test_classify_of_arrays_batches_and_matches(clf):
    a = read(gtzan_file("rock.00023"))
    counting = CountingRunner(clf.runner)
    for batch in (1, 3, 8):
        c = Classifier(clf.runner, max_batch=batch)
        c.runner = counting
        counting.batches.clear()
        r = c.classify(a.samples, a.sample_rate)
        assert max(counting.batches) <= batch
        np.testing.assert_allclose(r.probs, clf.classify_file(gtzan_file("rock.00023")).probs,
                                   rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="max_batch"):
        Classifier(clf.runner, max_batch=0)


def test_window_log_smooths_like_the_stream(clf):
    """Music, silence, music: the log's smoothed probabilities are _Smoother's."""
    a = read(gtzan_file("jazz.00002"))
    y = to_mono(a.samples)
    r = a.sample_rate
    track = np.concatenate([y[:12 * r], np.zeros(9 * r, np.float32), y[12 * r:]])
    result = clf.classify(track, r)
    assert 0 < result.silent_windows < len(result.decisions)
    smoother = _Smoother(clf.config.smoothing)
    for d in result.decisions:
        np.testing.assert_array_equal(d.smoothed, smoother.update(d.probs, d.silent))
    assert result.decisions[-1].index == len(result.decisions) - 1
    assert [d.index for d in result.decisions[2:5]] == [2, 3, 4]
    assert result.decisions[-1].start == result.decisions[len(result.decisions) - 1].start
    heard = [d.probs for d in result.decisions if not d.silent]
    np.testing.assert_allclose(result.probs, np.mean(heard, axis=0), rtol=0, atol=1e-7)


# ----------------------------------------------------------------------------- the block reader


def _sf_write(path, samples, rate, **kw):
    sf = pytest.importorskip("soundfile")
    sf.write(path, samples, rate, **kw)


@pytest.mark.parametrize("block", [1, 1000, 65536])
def test_open_stream_blocks_are_the_decoded_file(block):
    for path in [gtzan_file("jazz.00002"), *sorted(GTZAN_MINI.glob("*/*.au"))[:2]]:
        whole = read(path)
        with open_stream(path, block_frames=block if block > 1 else 7) as s:
            assert s.sample_rate == whole.sample_rate and s.channels == whole.samples.shape[1]
            parts = list(s)
        assert all(p.dtype == np.float32 and p.ndim == 1 for p in parts)
        assert max(len(p) for p in parts) <= max(block, 7)
        np.testing.assert_array_equal(np.concatenate(parts), to_mono(whole.samples))
        assert s.frames == len(whole.samples)


@pytest.mark.parametrize("kind", ["stereo16", "pcm24", "float64", "flac", "ogg"])
def test_open_stream_other_encodings(tmp_path, kind):
    rng = np.random.default_rng(0)
    y = (0.4 * rng.standard_normal((30_000, 2))).clip(-1, 1)
    path = tmp_path / f"x.{'flac' if kind == 'flac' else 'ogg' if kind == 'ogg' else 'wav'}"
    subtype = {"stereo16": "PCM_16", "pcm24": "PCM_24", "float64": "DOUBLE", "flac": "PCM_16",
               "ogg": "VORBIS"}[kind]
    _sf_write(path, y, 44100, subtype=subtype)
    whole = read(path)
    with open_stream(path, block_frames=4096) as s:
        got = np.concatenate(list(s))
    np.testing.assert_array_equal(got, to_mono(whole.samples))


def test_open_stream_cleans_wild_samples_with_one_warning(tmp_path, caplog):
    y = 0.5 * np.sin(np.arange(50_000) / 10.0)
    y[100], y[30_000], y[49_999] = np.nan, 1e30, -np.inf
    path = tmp_path / "wild.wav"
    path.write_bytes(wav_bytes(y.astype("<f4").tobytes(), 22050, bits=32, tag=3))
    with caplog.at_level(logging.WARNING, logger="edge_genre"):
        with open_stream(path, block_frames=1000) as s:
            got = np.concatenate(list(s))
    assert np.all(np.isfinite(got)) and np.max(np.abs(got)) <= 1.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 non-finite" in warnings[0] and "1 sample(s) outside" in warnings[0]


def _outcome(fn):
    try:
        return ("ok", fn())
    except AudioError as exc:
        return ("refused", str(exc))


def test_open_stream_agrees_with_decode_on_hostile_files(tmp_path):
    """The decoder fuzz's cases (benchmarks/fuzz_decoder.py) through both readers, in this
    process: the same refusals (same message) and the same samples."""
    from edge_genre.benchmarks.fuzz_decoder import load_sources, make_case

    sources = load_sources(GTZAN_MINI)
    kinds = set()
    for i in range(300):
        name, data, ops = make_case(sources, 11, i)
        path = tmp_path / name
        path.write_bytes(data)

        def streamed():
            with open_stream(path, block_frames=333) as s:
                parts = list(s)
            return s.sample_rate, np.concatenate(parts)

        def decoded():
            a = audio.decode(data, str(path))
            return a.sample_rate, to_mono(a.samples)

        a, b = _outcome(streamed), _outcome(decoded)
        kinds.add(a[0])
        assert a[0] == b[0], (i, ops, a, b)
        if a[0] == "refused":
            assert a[1] == b[1]
        else:
            assert a[1][0] == b[1][0]
            np.testing.assert_array_equal(a[1][1], b[1][1])
        path.unlink()
    assert kinds == {"ok", "refused"}


def test_open_stream_file_errors(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        open_stream(tmp_path / "gone.wav")
    with pytest.raises(AudioError, match="is a directory"):
        open_stream(tmp_path)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="the file is empty"):
        open_stream(tmp_path / "empty.wav")
    (tmp_path / "header.wav").write_bytes(wav_bytes(b"", 22050))
    with pytest.raises(AudioError, match="holds no audio samples"):
        open_stream(tmp_path / "header.wav")
    (tmp_path / "junk.mp3").write_bytes(b"\x00\x01 not an mp3 " * 40)
    with pytest.raises(AudioError) as err:
        with open_stream(tmp_path / "junk.mp3") as s:
            list(s)
    assert str(err.value).startswith(f"{tmp_path / 'junk.mp3'}: cannot decode audio")
    assert "BufferedReader" not in str(err.value) and "<" not in str(err.value)


# ----------------------------------------------------------------------------- memory


def write_long_wav(path, minutes: float) -> None:
    """A 16-bit mono WAV of ``minutes`` of a real excerpt tiled, written a block at a time."""
    a = read(gtzan_file("jazz.00002"))
    pcm = (np.clip(a.samples[:, 0], -1, 1) * 32767).astype("<i2").tobytes()
    rate = a.sample_rate
    total = int(minutes * 60 * rate) * 2
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + total) + b"WAVEfmt "
                + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate, 2, 16)
                + b"data" + struct.pack("<I", total))
        left = total
        while left:
            f.write(pcm[:left])
            left -= min(left, len(pcm))


PEAK = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(json.dumps({"rc": done.returncode, "out": done.stdout, "err": done.stderr[-2000:],
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def predict_peak(model, path) -> dict:
    """``edge-genre predict --json`` on ``path`` in a child of a fresh interpreter: its peak RSS
    (RUSAGE_CHILDREN of that interpreter holds only this child)."""
    import json

    cmd = [sys.executable, "-c", textwrap.dedent(PEAK), sys.executable, "-m", "edge_genre",
           "predict", "--json", "--model", str(model), str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["rc"] == 0, r["err"]
    r["result"] = json.loads(r["out"].strip().splitlines()[-1])
    return r


@pytest.mark.slow
def test_predict_memory_is_flat_in_the_track_length(fp32_tflite, tmp_path):
    """Before streaming: 5 min peaked at 850 MB, 30 min at 4.8 GB (every window in one batch)."""
    short, long = tmp_path / "5min.wav", tmp_path / "30min.wav"
    write_long_wav(short, 5)
    write_long_wav(long, 30)
    assert long.stat().st_size > 75 * MB
    a, b = predict_peak(fp32_tflite, short), predict_peak(fp32_tflite, long)
    assert a["result"]["windows"] == 149 and b["result"]["windows"] == 899
    assert a["result"]["label"] == b["result"]["label"] == "jazz"
    assert b["maxrss_mb"] < 400, b["maxrss_mb"]
    assert abs(b["maxrss_mb"] - a["maxrss_mb"]) < 50, (a["maxrss_mb"], b["maxrss_mb"])
