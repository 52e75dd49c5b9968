"""The edge runtime runs waveform-in files (``edge-genre export --mediapipe``): the same windows,
resampler, silence gate, smoothing and decisions as the spectrogram-in file of the same network,
with the log-mel front-end inside the graph instead of in numpy.

Real files (``waveform_files``: a small CNN on the shipped default's front-end, exported both
ways), real interpreters, real GTZAN excerpts (22.05 kHz .wav and .au).
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from edge_genre.edge import audio as audio_io
from edge_genre.edge.backends import load_model
from edge_genre.edge.classifier import NO_MUSIC, Classifier
from edge_genre.errors import ModelError

from tests.conftest import REPO, gtzan_file
from tests.edge.waveform_files import waveform_files  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

#: The parity bound of ``export.mediapipe_parity`` (``ExportConfig.mediapipe_max_prob_diff``):
#: the in-graph front-end is float32 against numpy's float64.
PROB_TOL = 1e-3
#: Two of the network's training excerpts and three it never saw; 22.05 kHz .wav and .au files.
EXCERPTS = ("blues.00000", "classical.00001", "jazz.00003", "rock.00023", "metal.00005")


@pytest.fixture(scope="module")
def wave(waveform_files):  # noqa: F811
    return Classifier(waveform_files.waveform)


@pytest.fixture(scope="module")
def spectro(waveform_files):  # noqa: F811
    return Classifier(waveform_files.spectrogram)


def assert_same_windows(got, ref, tol=PROB_TOL):
    """Two sequences of Decision: the same windows, gate and labels, probabilities within tol."""
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        assert (a.index, a.start, a.end, a.silent) == (b.index, b.start, b.end, b.silent)
        assert a.level_dbfs == pytest.approx(b.level_dbfs, abs=1e-6)
        assert a.label == b.label and a.smoothed_label == b.smoothed_label
        assert np.abs(a.probs - b.probs).max() <= tol
        assert np.abs(a.smoothed - b.smoothed).max() <= tol


# ----------------------------------------------------------------------------- loading


def test_the_runtime_loads_the_waveform_file(waveform_files):  # noqa: F811
    """Input (window_samples,) as the card says; batch fixed at 1, one window per invoke, the
    input never resized; the same probabilities as the interpreter run by hand, window by window."""
    from ai_edge_litert.interpreter import Interpreter

    runner = load_model(waveform_files.waveform)
    assert runner.waveform and runner.input_shape == (64000,)
    assert runner.card.extra["input"] == "waveform" and runner.io_dtypes == ("float32", "float32")
    assert not load_model(waveform_files.spectrogram).waveform
    y = audio_io.load(gtzan_file("jazz.00003"), 16000)
    windows = np.stack([y[i * 32000:i * 32000 + 64000] for i in range(5)])
    got = runner.predict(windows)
    assert list(runner._in["shape"]) == [1, 64000]  # not resized to 5
    by_hand = Interpreter(model_path=str(waveform_files.waveform))
    by_hand.allocate_tensors()
    i, o = by_hand.get_input_details()[0], by_hand.get_output_details()[0]
    expected = []
    for w in windows:
        by_hand.set_tensor(i["index"], w[None].astype(np.float32))
        by_hand.invoke()
        expected.append(by_hand.get_tensor(o["index"])[0])
    np.testing.assert_array_equal(got, np.array(expected))
    np.testing.assert_array_equal(runner.predict(windows[2]), got[2:3])
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="64000"):
        runner.predict(windows[:, :-1])


def test_unknown_input_or_a_card_that_disagrees_is_one_line(waveform_files, tmp_path):  # noqa: F811
    import dataclasses

    from edge_genre.edge.config import WindowConfig
    from edge_genre.edge.modelfile import read_card
    from edge_genre.export.metadata import embed_tflite

    data = waveform_files.waveform.read_bytes()
    card = read_card(waveform_files.waveform)
    three = WindowConfig(seconds=3.0, hop_seconds=1.5)
    cases = {
        "kind": (dataclasses.replace(card, extra={**card.extra, "input": "cqt"}), "'cqt'"),
        "card": (dataclasses.replace(card, window=three), "(64000,) but its window gives (48000,)"),
        "file": (dataclasses.replace(card, window=three, input_shape=(48000,)),
                 "does not match its card's window"),
    }
    for name, (bad, message) in cases.items():
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(embed_tflite(data, bad))
        with pytest.raises(ModelError) as err:
            load_model(path)
        assert message in str(err.value) and "\n" not in str(err.value), name


# ----------------------------------------------------------------------------- whole tracks


@pytest.mark.parametrize("track_id", EXCERPTS)
def test_classify_file_equals_the_spectrogram_file(wave, spectro, track_id):
    """classify_file (blocks -> Resampler 22.05 -> 16 kHz -> windows -> runner, 8 at a time)
    gives the spectrogram-in file's windows, levels, labels and probabilities."""
    path = gtzan_file(track_id)
    got, ref = wave.classify_file(path), spectro.classify_file(path)
    assert len(got.decisions) == 14 and got.silent_windows == 0
    assert got.label == ref.label
    assert np.abs(got.probs - ref.probs).max() <= PROB_TOL
    assert_same_windows(got.decisions, ref.decisions)
    assert got.decisions.latency_ms > 0
    print(f"\n{path.name}: {got.label} {got.confidence:.3f}, max window prob diff "
          f"{max(np.abs(a.probs - b.probs).max() for a, b in zip(got.decisions, ref.decisions)):.1e}")


def test_the_file_types_and_labels_are_real(wave):
    """The excerpts cover a .wav and a .au at 22.05 kHz, and the model is not a constant."""
    paths = [gtzan_file(t) for t in EXCERPTS]
    assert {p.suffix for p in paths} == {".wav", ".au"}
    assert {audio_io.read(p).sample_rate for p in paths} == {22050}
    labels = {wave.classify_file(p).label for p in paths}
    assert len(labels) >= 3, labels


def test_classify_and_classify_blocks_equal_classify_file(wave, spectro):
    path = gtzan_file("rock.00023")
    clip = audio_io.read(path)
    y = audio_io.to_mono(clip.samples)
    ref = wave.classify_file(path)
    whole = wave.classify(y, clip.sample_rate)
    blocks = wave.classify_blocks((y[i:i + 3000] for i in range(0, len(y), 3000)),
                                  clip.sample_rate)
    for got in (whole, blocks):
        np.testing.assert_array_equal(got.probs, ref.probs)
        assert_same_windows(got.decisions, ref.decisions, tol=0.0)
    # At a microphone's 44.1 kHz as well: still the spectrogram file's answer.
    from edge_genre.edge.resample import resample

    y44 = resample(y, clip.sample_rate, 44100)
    got, other = wave.classify(y44, 44100), spectro.classify(y44, 44100)
    assert got.label == other.label and np.abs(got.probs - other.probs).max() <= PROB_TOL
    assert_same_windows(got.decisions, other.decisions)


def test_silence_gate_and_short_tracks_as_the_spectrogram_file(wave, spectro):
    """Silent windows are "no music" and never run; a short track is zero-padded to a window."""
    clip = audio_io.read(gtzan_file("jazz.00003"))
    rate = clip.sample_rate
    y = audio_io.to_mono(clip.samples)
    quiet = np.concatenate([np.zeros(7 * rate, np.float32), y[:12 * rate]])
    got, ref = wave.classify(quiet, rate), spectro.classify(quiet, rate)
    assert [d.silent for d in got.decisions][:3] == [True, True, False]
    assert got.decisions[0].label == NO_MUSIC and not got.decisions[0].probs.any()
    assert_same_windows(got.decisions, ref.decisions)
    assert got.label == ref.label and np.abs(got.probs - ref.probs).max() <= PROB_TOL
    short_got, short_ref = wave.classify(y[:3 * rate], rate), spectro.classify(y[:3 * rate], rate)
    assert short_got.padded and short_ref.padded and len(short_got.decisions) == 1
    assert short_got.label == short_ref.label
    assert np.abs(short_got.probs - short_ref.probs).max() <= PROB_TOL


# ----------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("track_id", ["blues.00000", "jazz.00003"])
def test_push_in_100ms_blocks_equals_classify_file(wave, track_id):
    """What listen does: 100 ms blocks at the file's 22.05 kHz, resampled as they come, one
    decision per completed window: classify_file's windows, one by one."""
    path = gtzan_file(track_id)
    ref = wave.classify_file(path)
    clip = audio_io.read(path)
    y, rate = audio_io.to_mono(clip.samples), clip.sample_rate
    wave.reset()
    block = rate // 10
    pushed = []
    for i in range(0, len(y), block):
        pushed += wave.push(y[i:i + block], rate)
    # The streaming resampler holds back its last outputs until more input comes: the stream
    # may complete one window fewer than the whole track.
    assert len(ref.decisions) - 1 <= len(pushed) <= len(ref.decisions)
    assert_same_windows(pushed, ref.decisions[:len(pushed)], tol=1e-5)
    assert all(d.latency_ms > 0 for d in pushed)
    assert wave.stream_stats == {"frames_computed": 0, "frames_reused": 0}  # in the graph


def test_push_at_the_model_rate_and_after_reset(wave):
    """At 16 kHz (no resampler) in 100 ms blocks; reset starts the stream over at time 0."""
    y = audio_io.load(gtzan_file("metal.00005"), 16000)[:16000 * 10]
    ref = wave.classify(y, 16000)
    for _ in range(2):
        wave.reset()
        pushed = [d for i in range(0, len(y), 1600) for d in wave.push(y[i:i + 1600], 16000)]
        assert len(pushed) == len(ref.decisions) == 4
        assert_same_windows(pushed, ref.decisions, tol=1e-6)


# ----------------------------------------------------------------------------- the CLI


def test_predict_json_with_a_waveform_file(waveform_files, spectro, capsys):  # noqa: F811
    from edge_genre.cli import main

    paths = [gtzan_file("jazz.00003"), gtzan_file("blues.00000")]
    code = main(["predict", "--model", str(waveform_files.waveform), *map(str, paths), "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(out) == 2
    for line, path in zip(out, paths):
        record = json.loads(line)
        ref = spectro.classify_file(path)
        assert record["file"] == str(path) and record["model"] == "tiny-mediapipe.tflite"
        assert record["label"] == ref.label and record["windows"] == 14
        assert abs(record["confidence"] - ref.confidence) <= PROB_TOL + 1e-4
        assert sum(record["probs"].values()) == pytest.approx(1.0, abs=2e-3)


def test_runtime_with_a_waveform_file_imports_no_tensorflow_or_librosa(waveform_files):  # noqa: F811
    """Loading, streaming and predict with a waveform-in file leave TF, Keras and librosa
    unloaded."""
    path, audio = str(waveform_files.waveform), str(gtzan_file("jazz.00003"))
    code = f"""
import sys
import numpy as np
from edge_genre.edge.classifier import Classifier
from edge_genre.cli import main
clf = Classifier({path!r})
assert clf.waveform
n = len(clf.push(np.zeros(80000, np.float32) + 0.01, 16000))
rc = main(["predict", "--model", {path!r}, {audio!r}])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "librosa", "tf_keras"))
print("WINDOWS", n, "HEAVY", heavy)
sys.exit(rc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "WINDOWS 1 HEAVY []" in done.stdout
