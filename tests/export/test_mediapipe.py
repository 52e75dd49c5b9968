"""``edge-genre export RUN --mediapipe``: a waveform-in TFLite file with the log-mel front-end in
its graph and the standard TFLite metadata, checked against the spectrogram-in Keras model fed by
the numpy front-end, and run by a real client, MediaPipe Tasks' Python ``AudioClassifier``, on
real GTZAN excerpts at 22.05 and 44.1 kHz.

The model is the shipped default's architecture, trained as it is trained: the ``transfer``
preset (YAMNet's body on its 16 kHz, 64-mel log front-end, 4 s windows, and a logistic-regression
genre head), fitted here on 2 excerpts per genre (``train_run``, about 40 s) with 1 per genre held
out. MediaPipe classifies the 20 training excerpts (the shipped default, too, was fitted on every
excerpt it is tested on here) and the 10 held-out ones.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_genre.edge.backends import is_waveform, load_model
from edge_genre.edge.config import FrontendConfig, ModelCard, WindowConfig
from edge_genre.export.config import ExportConfig
from tests.conftest import GTZAN_MINI, YAMNET_TFLITE

pytestmark = pytest.mark.slow

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae",
          "rock")
#: Normalisation of the front-end checks (any values do).
MEAN, STD = -3.0, 2.5
#: Track agreement MediaPipe must reach with what ``edge-genre predict`` does.
MIN_TRACK_AGREEMENT = 0.95
#: The fp32 file's parity bound (probability difference from Keras + the numpy front-end).
FP32_MAX_PROB_DIFF = ExportConfig().mediapipe_max_prob_diff


def excerpts(per_genre: int, skip: int = 0) -> list[Path]:
    """The first ``per_genre`` excerpts of each genre (after ``skip``), sorted by name."""
    out = []
    for genre in GENRES:
        files = sorted(p for p in (GTZAN_MINI / genre).iterdir() if p.suffix in (".wav", ".au"))
        out += files[skip:skip + per_genre]
    return out


def mediapipe_audio():
    """MediaPipe's audio task API, or a skip where mediapipe has no wheel (32-bit ARM)."""
    try:
        from mediapipe.tasks.python import audio
        from mediapipe.tasks.python.components.containers.audio_data import AudioData
        from mediapipe.tasks.python.core.base_options import BaseOptions
    except ImportError as exc:  # pragma: no cover - x86-64 and aarch64 have wheels
        pytest.skip(f"mediapipe is not installable here ({exc}); pip install 'edge-genre[mobile]'")
    return audio, AudioData, BaseOptions


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def transfer_run(tmp_path_factory, gtzan_root):
    """A ``transfer``-preset run directory, written by ``edge-genre train``'s ``train_run``:
    trained on the first 2 excerpts of each genre, the 3rd held out (the export's parity set).
    The head is fitted on the recordings only (no room copies), to keep the fixture short."""
    import dataclasses
    import functools

    from edge_genre.train import transfer as T
    from edge_genre.train.data import discover
    from edge_genre.train.fit import train_run
    from edge_genre.train.presets import get_preset
    from edge_genre.train.splits import Split

    if not YAMNET_TFLITE.is_file():
        pytest.fail(f"YAMNet TFLite file not found at {YAMNET_TFLITE}")
    ds = discover(gtzan_root).subset(3)
    assert ds.labels == GENRES
    by_genre: dict[str, list] = {}
    for t in ds.tracks:
        by_genre.setdefault(t.genre, []).append(t)
    train = [t for g in GENRES for t in by_genre[g][:2]]
    test = [t for g in GENRES for t in by_genre[g][2:3]]
    run = tmp_path_factory.mktemp("transfer-run")
    preset = dataclasses.replace(get_preset("transfer"),
                                 fit=functools.partial(T.fit_preset, cfg=T.TransferConfig()))
    train_run(preset, ds, Split("fixture", train, [], test), out_dir=run, progress=False,
              cache_dir=tmp_path_factory.mktemp("transfer-cache"))
    return run


def run_tracks(run: Path, part: str) -> list[Path]:
    """Audio files of one part of a run's split."""
    from edge_genre.train.run_dir import read_run

    return [next((GTZAN_MINI / tid.split(".")[0]).glob(tid + ".*"))
            for tid in read_run(run).split_ids(part)]


@pytest.fixture(scope="module")
def exported(transfer_run, tmp_path_factory):
    """``edge-genre export RUN --out DIR --formats mediapipe --int8-weights``: both files and the
    report (--allow-degraded: the int8-weights bound is judged by the tests)."""
    from edge_genre.cli import main

    out = tmp_path_factory.mktemp("mediapipe-export")
    code = main(["export", str(transfer_run), "--out", str(out), "--formats", "mediapipe",
                 "--int8-weights", "--allow-degraded"])
    assert code == 0
    report = json.loads((out / "mediapipe_report.json").read_text())
    return out, report


@pytest.fixture(scope="module")
def keras_model(transfer_run):
    from edge_genre.export.source import load_keras
    from edge_genre.train.run_dir import read_run

    return load_keras(read_run(transfer_run))


@pytest.fixture(scope="module")
def spectrogram_file(keras_model, tmp_path_factory):
    """The same run as an ordinary spectrogram-in fp32 file: what ``edge-genre predict`` runs."""
    import dataclasses

    from edge_genre.export import metadata, tflite

    model, card = keras_model
    path = tmp_path_factory.mktemp("spectrogram") / "transfer-fp32.tflite"
    metadata.write_tflite(path, tflite.to_tflite(model),
                          dataclasses.replace(card, package_version="test"))
    return path


# ----------------------------------------------------------------------------- the front-end

#: Front-ends of every kind a card can hold: the transfer preset's (log, 400-sample window in
#: a 512 FFT, magnitude, HTK mel without norm, no centring), librosa's defaults as the export
#: tests' tiny runs use them (dB with ref = max and top_db, centred, power, Slaney mel), the
#: music preset's (log with offset, centred), a resized image (the paper preset resizes), and a
#: non-power-of-two FFT (two constant DFT matmuls instead of RFFT2D).
def _transfer_frontend() -> FrontendConfig:
    from edge_genre.train.yamnet import yamnet_frontend

    return yamnet_frontend().with_normalization(MEAN, STD)


FRONTENDS = {
    "transfer": (_transfer_frontend, "auto"),
    "transfer-matmul": (_transfer_frontend, "matmul"),
    "db-centred": (lambda: FrontendConfig(sample_rate=16000, n_fft=1024, hop_length=512,
                                          n_mels=40, mean=-30.0, std=15.0), "auto"),
    "music": (lambda: FrontendConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96,
                                     scale="log", log_offset=1e-4, top_db=None), "auto"),
    "resized-db": (lambda: FrontendConfig(sample_rate=22050, n_fft=2048, hop_length=512,
                                          n_mels=128, resize=(64, 48)), "auto"),
    "odd-fft": (lambda: FrontendConfig(sample_rate=16000, n_fft=600, win_length=480,
                                       hop_length=200, n_mels=48, ref=1.0, top_db=None), "auto"),
}


@pytest.mark.parametrize("name", list(FRONTENDS))
def test_in_graph_frontend_matches_numpy(name):
    """The TFLite front-end gives ``edge.frontend.features`` on real windows: on the grid, across
    a window boundary, the last window and a zero-padded tail."""
    from ai_edge_litert.interpreter import Interpreter

    from edge_genre.edge import audio as audio_io
    from edge_genre.edge.frontend import features_batch
    from edge_genre.export import mediapipe_frontend

    make, dft = FRONTENDS[name]
    cfg = make()
    n = WindowConfig().window_samples(cfg)
    plan = mediapipe_frontend.FrontendPlan.of(cfg, n, dft)
    assert plan.dft == ("matmul" if dft == "matmul" or name == "odd-fft" else "rfft")
    it = Interpreter(model_content=mediapipe_frontend.frontend_tflite(cfg, n, dft))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert list(inp["shape"]) == [1, n]
    assert tuple(out["shape"][1:]) == cfg.feature_shape(n)
    y = audio_io.load(GTZAN_MINI / "jazz" / "jazz.00002.wav", cfg.sample_rate)
    tail = n // 3
    windows = np.stack([y[:n], y[n // 2 + 7:n // 2 + 7 + n], y[len(y) - n:],
                        np.pad(y[len(y) - tail:], (0, n - tail))]).astype(np.float32)
    ref = features_batch(windows, cfg)
    got = []
    for w in windows:
        it.set_tensor(inp["index"], w[None])
        it.invoke()
        got.append(it.get_tensor(out["index"])[0])
    diff = np.abs(np.array(got) - ref)
    # Normalised log-mel units (the features' spread is about 1): float32 against float64.
    assert diff.max() < 2e-3, f"{name}: max |diff| {diff.max():.2e}"
    if dft != "matmul" and name != "odd-fft":
        ops = {d["op_name"] for d in it._get_ops_details()}
        assert "RFFT2D" in ops


# ----------------------------------------------------------------------------- the export


def test_cli_writes_the_file_and_the_parity_report(exported):
    out, report = exported
    assert (out / "transfer-mediapipe.tflite").is_file()
    assert (out / "transfer-mediapipe-int8w.tflite").is_file()
    assert report["input"] == {"shape": [1, 64000], "sample_rate": 16000, "channels": 1,
                               "dtype": "float32"}
    assert report["frontend_in_graph"]["dft"] == "rfft"
    assert report["tracks"] == 10 and report["windows"] == 60
    assert report["window_kinds"] == {"grid": 30, "boundary": 10, "end": 10, "padded": 10}
    fp32 = report["files"][0]
    assert fp32["file"] == "transfer-mediapipe.tflite" and fp32["passed"], fp32


@pytest.mark.parametrize("argv, standard", [(["--mediapipe"], ["tflite", "onnx"]),
                                             (["--formats", "tflite,mediapipe"], ["tflite"]),
                                             (["--formats", "mediapipe"], None)])
def test_cli_flag_dispatch(monkeypatch, tmp_path, capsys, argv, standard):
    """--mediapipe adds the MediaPipe file to the ordinary export (after it); '--formats
    mediapipe' writes only it. (The converters are stubbed: the real run is ``exported``.)"""
    from edge_genre.cli import main
    from edge_genre.export import check, mediapipe, pipeline

    calls = []

    def fake_export(run_dir, out_dir, **kw):
        calls.append(("standard", list(kw["formats"])))
        return {"passed": True, "cv": None}

    def fake_mediapipe(run_dir, out_dir, **kw):
        calls.append(("mediapipe", kw["int8_weights"]))
        return {"passed": True, "files": [], "windows": 0, "tracks": 0, "source": "stub"}

    monkeypatch.setattr(pipeline, "export_model", fake_export)
    monkeypatch.setattr(check, "format_table", lambda report: "table")
    monkeypatch.setattr(mediapipe, "export_mediapipe", fake_mediapipe)
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "out"), "--int8-weights",
                 *argv]) == 0
    assert calls == ([("standard", standard)] if standard else []) + [("mediapipe", True)]
    assert "mediapipe_report.json" in capsys.readouterr().out


def test_fp32_parity_with_keras_and_numpy_frontend(exported):
    """Every window, including those across a window boundary, the last and the padded one:
    the same top-1 and probabilities within 1e-3 of Keras fed by the numpy front-end."""

    _, report = exported
    fp32 = report["files"][0]
    assert fp32["agreement"] == 1.0
    assert fp32["max_prob_diff"] <= FP32_MAX_PROB_DIFF
    for kind in ("grid", "boundary", "end", "padded"):
        assert fp32["by_kind"][kind]["agreement"] == 1.0
        assert fp32["by_kind"][kind]["max_prob_diff"] <= FP32_MAX_PROB_DIFF
    print(f"\nfp32 parity: {fp32['windows']} windows, agreement {fp32['agreement']:.1%}, "
          f"max prob diff {fp32['max_prob_diff']:.1e}")


def test_parity_function_on_other_excerpts(exported, keras_model):
    """The report function itself, on excerpts the export did not use."""
    from edge_genre.export import mediapipe_parity

    out, _ = exported
    model, card = keras_model
    windows = mediapipe_parity.parity_windows(excerpts(1, skip=5)[::3], card, per_track=2, seed=3)
    assert set(windows.kind) == {"grid", "boundary", "end", "padded"}
    result = mediapipe_parity.parity(out / "transfer-mediapipe.tflite", model, card, windows)
    assert result["passed"], result
    assert result["agreement"] == 1.0 and result["max_prob_diff"] < FP32_MAX_PROB_DIFF


def test_int8_weights_quantise_the_network_only(exported, keras_model, tmp_path):
    """In the -int8w file the front-end's constants stay float32 and the network's big weights
    are int8; its probabilities are those of the spectrogram-in int8-weights file of the same
    network (the front-end adds nothing to the quantisation error)."""
    from ai_edge_litert.interpreter import Interpreter

    from edge_genre.edge.frontend import features_batch
    from edge_genre.export import mediapipe_parity, tflite

    out, report = exported
    path = out / "transfer-mediapipe-int8w.tflite"
    fp32_size = (out / "transfer-mediapipe.tflite").stat().st_size
    assert path.stat().st_size < fp32_size / 3
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    ops = it._get_ops_details()
    tensors = {d["index"]: d for d in it.get_tensor_details()}
    mel_fc = next(op for op in ops if op["op_name"] == "FULLY_CONNECTED")  # the mel matrix
    assert all(tensors[i]["dtype"] == np.float32 for i in mel_fc["inputs"] if i >= 0)
    assert any(op["op_name"] == "RFFT2D" for op in ops)
    assert any(d["dtype"] == np.int8 for d in tensors.values())

    model, card = keras_model
    windows = mediapipe_parity.parity_windows(excerpts(1, skip=5)[:4], card, per_track=2)
    net = tmp_path / "net-int8w.tflite"
    net.write_bytes(tflite.to_tflite(model, weights_only=True))
    lite = Interpreter(model_path=str(net))
    lite.allocate_tensors()
    li, lo = lite.get_input_details()[0], lite.get_output_details()[0]
    x = features_batch(windows.audio, card.frontend)
    spectro = []
    for v in x:
        lite.set_tensor(li["index"], v[None])
        lite.invoke()
        spectro.append(lite.get_tensor(lo["index"])[0])
    spectro = np.array(spectro)
    wave = load_model(path).predict(windows.audio)
    keras_probs = mediapipe_parity.reference_probs(model, card, windows.audio)
    err_wave, err_spectro = np.abs(wave - keras_probs), np.abs(spectro - keras_probs)
    print(f"\nvs Keras on {len(wave)} windows: waveform-in int8w max {err_wave.max():.4f} mean "
          f"{err_wave.mean():.5f}; spectrogram-in int8w max {err_spectro.max():.4f} mean "
          f"{err_spectro.mean():.5f}; the two int8w files differ by up to "
          f"{np.abs(wave - spectro).max():.4f}")
    # Hybrid kernels quantise activations per call, so the float front-end's 1e-5 differences
    # give a different draw of the same quantisation noise, not more of it.
    assert err_wave.mean() <= 2 * err_spectro.mean() + 1e-3
    assert err_wave.max() <= 2 * err_spectro.max() + 0.02
    int8w = report["files"][1]
    assert int8w["quantization"] == "int8-weights" and int8w["bounds"]["min_agreement"] == 0.95
    print(f"\nint8w vs Keras: agreement {int8w['agreement']:.1%}, max prob diff "
          f"{int8w['max_prob_diff']:.3f} (passed: {int8w['passed']})")


def test_run_without_held_out_tracks_is_checked_on_training_tracks(tmp_path, gtzan_root):
    """A run trained on every track (the shipped default's ``--split final``) has no test
    tracks: the parity check takes its training tracks, one per genre first. Also the dB /
    centred front-end of the export tests' tiny runs, end to end (an untrained small CNN)."""
    import keras

    from edge_genre.export import mediapipe
    from edge_genre.train.run_dir import RunRecord, RunSplit, write_run
    from tests.export.runs import FRONTEND, WINDOW, tiny_model

    frontend = FRONTEND.with_normalization(-30.0, 15.0)
    shape = frontend.feature_shape(WINDOW.window_samples(frontend))
    keras.utils.set_random_seed(0)
    run = tmp_path / "run"
    card = ModelCard(labels=GENRES, frontend=frontend, window=WINDOW, preset="tiny",
                     model_version="test", input_shape=shape)
    train = tuple(p.stem for p in excerpts(2))
    write_run(run, tiny_model(shape, len(GENRES)), card,
              RunRecord.new("tiny", data={"root": str(gtzan_root)}, split=RunSplit(train=train)))
    report = mediapipe.export_mediapipe(run, tmp_path / "out", parity_tracks=3, progress=lambda m: None)
    assert report["source"].startswith("train tracks") and report["tracks"] == 3
    assert [t.split(".")[0] for t in report["source"].split(": ")[1].split(", ")] == [
        "blues", "classical", "country"]
    (fp32,) = report["files"]
    assert fp32["file"] == "tiny-mediapipe.tflite" and fp32["passed"]
    assert fp32["agreement"] == 1.0 and fp32["max_prob_diff"] < 1e-4


# ----------------------------------------------------------------------------- metadata


def test_standard_metadata_and_card_are_both_in_the_file(exported, transfer_run):
    from edge_genre.edge.modelfile import METADATA_KEY, read_card, tflite_metadata
    from edge_genre.export import mediapipe_metadata

    out, _ = exported
    path = out / "transfer-mediapipe.tflite"
    data = path.read_bytes()
    entries = tflite_metadata(data)
    assert {mediapipe_metadata.TFLITE_METADATA, METADATA_KEY} <= set(entries)
    # Our card: waveform in, its front-end and labels as trained.
    card = read_card(path)
    assert is_waveform(card) and card.input_shape == (64000,)
    trained = ModelCard.from_json((transfer_run / "model_card.json").read_text())
    assert card.labels == GENRES and card.frontend == trained.frontend
    assert card.quantization == "fp32" and card.preset == "transfer"
    assert card.extra["mediapipe"]["input"]["sample_rate"] == 16000
    # The label file, zipped after the flatbuffer.
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read("labels.txt").decode().split() == list(GENRES)
    assert mediapipe_metadata.associated_files(path) == {"labels.txt": ("\n".join(GENRES) + "\n").encode()}
    # The standard metadata, read with MediaPipe's own generated schema.
    mediapipe_audio()
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    meta = fb.ModelMetadataT.InitFromObj(
        fb.ModelMetadata.GetRootAsModelMetadata(entries[mediapipe_metadata.TFLITE_METADATA], 0))
    assert entries[mediapipe_metadata.TFLITE_METADATA][4:8] == b"M001"
    assert meta.name.decode().startswith("edge-genre transfer") and meta.version
    assert meta.description and meta.minParserVersion.decode() == "1.3.0"
    (sub,) = meta.subgraphMetadata
    (inp,), (outp,) = sub.inputTensorMetadata, sub.outputTensorMetadata
    assert inp.content.contentPropertiesType == fb.ContentProperties.AudioProperties
    assert (inp.content.contentProperties.sampleRate,
            inp.content.contentProperties.channels) == (16000, 1)
    (labels,) = outp.associatedFiles
    assert labels.name.decode() == "labels.txt"
    assert labels.type == fb.AssociatedFileType.TENSOR_AXIS_LABELS


def test_the_runtime_runs_the_waveform_files_like_the_spectrogram_file(exported,
                                                                       spectrogram_file,
                                                                       transfer_run):
    """``edge-genre predict --model transfer-mediapipe.tflite`` works: the edge runtime takes the
    waveform-in files (raw 16 kHz windows, one per invoke, front-end in the graph) and on the
    run's held-out tracks the fp32 file gives what the spectrogram-in file of the same run gives
    (same windows, same labels, probabilities within FP32_MAX_PROB_DIFF); the int8-weights file
    runs the same windows."""
    from edge_genre.edge.classifier import Classifier

    out, _ = exported
    wave = Classifier(out / "transfer-mediapipe.tflite")
    int8w = Classifier(out / "transfer-mediapipe-int8w.tflite")
    ref = Classifier(spectrogram_file)
    assert wave.waveform and int8w.waveform and not ref.waveform
    assert wave.runner.input_shape == int8w.runner.input_shape == (64000,)
    rows = []
    for path in run_tracks(transfer_run, "test")[:4]:
        got, want, q = (c.classify_file(path) for c in (wave, ref, int8w))
        assert got.label == want.label
        assert np.abs(got.probs - want.probs).max() <= FP32_MAX_PROB_DIFF
        assert len(got.decisions) == len(want.decisions) == len(q.decisions) == 14
        for a, b in zip(got.decisions, want.decisions):
            assert (a.start, a.silent, a.label) == (b.start, b.silent, b.label)
            assert np.abs(a.probs - b.probs).max() <= FP32_MAX_PROB_DIFF
        assert q.probs.sum() == pytest.approx(1.0, abs=1e-3)
        rows.append((path.stem, want.label, got.label, q.label,
                     float(np.abs(got.probs - want.probs).max()),
                     float(np.abs(q.probs - want.probs).max())))
    for r in rows:
        print(f"\n{r[0]}: spectrogram-in {r[1]}, waveform-in {r[2]} (diff {r[4]:.1e}), "
              f"int8w {r[3]} (diff {r[5]:.3f})", end="")


def test_the_plain_shipped_file_is_refused_by_mediapipe():
    """The issue's starting point: a spectrogram-in file without standard metadata."""
    from edge_genre.defaults import MODELS_DIR

    audio, _, BaseOptions = mediapipe_audio()
    plain = Path(MODELS_DIR) / "default-fp32.tflite"
    if not plain.is_file():
        pytest.skip(f"no shipped {plain}")
    options = audio.AudioClassifierOptions(base_options=BaseOptions(model_asset_path=str(plain)))
    with pytest.raises(Exception, match="(?i)metadata"):
        audio.AudioClassifier.create_from_options(options)


# ----------------------------------------------------------------------------- a real client


# MediaPipe's per-window scores of a clip, averaged: (mean probs, windows)
from edge_genre.benchmarks.mediapipe_agreement import track_scores as _mediapipe_track  # noqa: E402


def test_mediapipe_audio_classifier_agrees_with_predict(exported, spectrogram_file, transfer_run):
    """MediaPipe's Python AudioClassifier loads the file unchanged and classifies 30 real
    excerpts (the run's 20 training and 10 held-out ones) at 22.05 kHz and, resampled, at
    44.1 kHz; its genre per track (the mean of its per-window scores: 4 s windows back to back,
    the last zero-padded, resampled by MediaPipe) is what ``edge-genre predict`` says (the
    spectrogram-in file, the numpy front-end, 4 s windows every 2 s) for at least 95 % of them
    at each rate."""
    from edge_genre.edge import audio as audio_io
    from edge_genre.edge.classifier import Classifier
    from edge_genre.edge.resample import resample

    audio, AudioData, BaseOptions = mediapipe_audio()
    out, _ = exported
    options = audio.AudioClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(out / "transfer-mediapipe.tflite")),
        max_results=-1)
    predict = Classifier(spectrogram_file)
    rows = []
    with audio.AudioClassifier.create_from_options(options) as classifier:
        for part in ("train", "test"):
            for path in run_tracks(transfer_run, part):
                clip = audio_io.read(path)
                assert clip.sample_rate == 22050
                y22 = audio_io.to_mono(clip.samples)
                for rate, y in ((22050, y22), (44100, resample(y22, 22050, 44100))):
                    mp_probs, n_windows = _mediapipe_track(classifier, AudioData, y, rate,
                                                           len(GENRES))
                    ref = predict.classify(y, rate)
                    rows.append((path.stem, part, rate, GENRES[int(mp_probs.argmax())],
                                 ref.label, float(np.abs(mp_probs - ref.probs).max()), n_windows))
    assert len(rows) == 60 and all(r[6] == 8 for r in rows)  # 30 s: 7 windows + the padded tail
    for rate in (22050, 44100):
        mine = [r for r in rows if r[2] == rate]
        agree = {part: np.mean([r[3] == r[4] for r in mine if r[1] == part])
                 for part in ("train", "test")}
        total = np.mean([r[3] == r[4] for r in mine])
        print(f"\nMediaPipe vs predict at {rate} Hz: {total:.0%} of {len(mine)} tracks agree "
              f"(training {agree['train']:.0%} of 20, held-out {agree['test']:.0%} of 10); "
              f"track probability difference max {max(r[5] for r in mine):.3f}, mean "
              f"{np.mean([r[5] for r in mine]):.3f}")
        for r in mine:
            if r[3] != r[4]:
                print(f"  {r[0]}: MediaPipe {r[3]}, predict {r[4]}")
        assert total >= MIN_TRACK_AGREEMENT, f"{rate} Hz: {total:.0%} of tracks agree"
        assert agree["train"] >= MIN_TRACK_AGREEMENT
