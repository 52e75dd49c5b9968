"""Export a briefly trained model to all four files and check them with the interpreters that run
them (ai-edge-litert, onnxruntime; tflite-runtime where installable), on real GTZAN windows."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge_genre.edge.config import ModelCard
from edge_genre.edge.modelfile import METADATA_KEY, read_card, tflite_metadata
from edge_genre.errors import BackendError, DataError, ModelError
from tests.export.runs import exported, feature_cache, held_out, tiny_run  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

FILES = ("tiny-fp32.tflite", "tiny-int8.tflite", "tiny-int8w.tflite",
         "tiny-fp32.onnx", "tiny-int8.onnx", "tiny-int8w.onnx")
QUANTIZATION_OF = {"fp32": "fp32", "int8": "int8", "int8w": "int8-weights"}


def keras_probs(run_dir, x):
    import keras

    model = keras.models.load_model(run_dir / "model.keras", compile=False)
    return np.asarray(model.predict(x, verbose=0))


def lite_predict(path, x, interpreter=None):
    """Run a .tflite file in ai-edge-litert (or the given Interpreter class) directly (int8 I/O
    quantised with the file's own scale / zero-point), one window at a time as a Pi would."""
    if interpreter is None:
        from ai_edge_litert.interpreter import Interpreter as interpreter

    it = interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    probs = []
    for w in x:
        v = w[None]
        if inp["dtype"] == np.int8:
            s, z = inp["quantization"]
            v = np.clip(np.round(v / s + z), -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], v)
        it.invoke()
        o = it.get_tensor(out["index"])
        if out["dtype"] == np.int8:
            s, z = out["quantization"]
            o = (o.astype(np.float32) - z) * s
        probs.append(o[0])
    return np.array(probs), inp["dtype"], out["dtype"]


def ort_predict(path, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0], session


def test_writes_all_files_and_report(exported):
    out, report = exported
    for name in FILES:
        assert (out / name).stat().st_size > 0
    on_disk = json.loads((out / "export_report.json").read_text())
    assert [f["file"] for f in on_disk["files"]] == list(FILES)
    assert on_disk["calibration"]["windows"] == 100
    assert on_disk["calibration"]["part"] == "train"
    assert on_disk["evaluation"]["part"] == "test" and on_disk["evaluation"]["windows"] > 50
    sizes = {f["file"]: f["bytes"] for f in report["files"]}
    assert sizes["tiny-int8.tflite"] < sizes["tiny-fp32.tflite"]
    assert sizes["tiny-int8w.tflite"] < sizes["tiny-fp32.tflite"]
    assert sizes["tiny-int8w.onnx"] < sizes["tiny-fp32.onnx"]
    assert on_disk["evaluation"].get("note") is None
    assert 0 <= on_disk["evaluation"]["keras_window_accuracy"] <= 1
    assert all(0 <= f["window_accuracy"] <= 1 for f in on_disk["files"])
    for f in report["files"]:  # fp32 files are the Keras model
        if f["quantization"] == "fp32":
            assert f["agreement"] == 1.0 and f["max_prob_diff"] < 1e-4


def test_metadata_reads_back(exported, tiny_run):
    import onnx

    out, _ = exported
    trained = ModelCard.from_json((tiny_run / "model_card.json").read_text())
    for name in FILES:
        q = QUANTIZATION_OF[name.split("-")[1].split(".")[0]]
        if name.endswith(".tflite"):
            card = read_card(out / name)
            entries = tflite_metadata((out / name).read_bytes())
            assert "min_runtime_version" in entries  # the converter's entry is kept
        else:
            props = {p.key: p.value for p in onnx.load(str(out / name)).metadata_props}
            card = ModelCard.from_json(props[METADATA_KEY])
        assert card.quantization == q
        assert card.labels == trained.labels and card.frontend == trained.frontend
        assert card.window == trained.window and card.input_shape == trained.input_shape
        assert card.preset == "tiny"


def test_tflite_files_match_keras_in_litert(exported, tiny_run, held_out):
    out, _ = exported
    x = held_out.x[::3]
    ref = keras_probs(tiny_run, x)
    fp32, in_t, out_t = lite_predict(out / "tiny-fp32.tflite", x)
    assert in_t == np.float32 and out_t == np.float32
    assert np.abs(fp32 - ref).max() < 1e-4
    int8, in_t, out_t = lite_predict(out / "tiny-int8.tflite", x)
    assert in_t == np.int8 and out_t == np.int8  # full integer, int8 I/O
    assert np.mean(int8.argmax(1) == ref.argmax(1)) >= 0.85


def test_int8_tflite_is_full_integer(exported):
    from ai_edge_litert.interpreter import Interpreter

    out, _ = exported
    it = Interpreter(model_path=str(out / "tiny-int8.tflite"))
    float_tensors = [t["name"] for t in it.get_tensor_details() if t["dtype"] == np.float32]
    assert float_tensors == []


def test_onnx_files_match_keras_in_onnxruntime(exported, tiny_run, held_out):
    out, _ = exported
    x = held_out.x
    ref = keras_probs(tiny_run, x)
    fp32, _ = ort_predict(out / "tiny-fp32.onnx", x)
    assert np.abs(fp32 - ref).max() < 1e-4
    int8, session = ort_predict(out / "tiny-int8.onnx", x)
    assert np.mean(int8.argmax(1) == ref.argmax(1)) >= 0.85
    import onnx
    ops = {n.op_type for n in onnx.load(str(out / "tiny-int8.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_int8_weights_files_float_io_int8_weights(exported, tiny_run, held_out):
    """Weights-only int8: float I/O and activations, int8 weight tensors, close to Keras, and
    inside the report's bounds."""
    import onnx
    from ai_edge_litert.interpreter import Interpreter

    out, report = exported
    x = held_out.x[::3]
    ref = keras_probs(tiny_run, x)
    probs, in_t, out_t = lite_predict(out / "tiny-int8w.tflite", x)
    assert in_t == np.float32 and out_t == np.float32
    assert np.mean(probs.argmax(1) == ref.argmax(1)) >= 0.9
    it = Interpreter(model_path=str(out / "tiny-int8w.tflite"))
    assert any(t["dtype"] == np.int8 for t in it.get_tensor_details())
    probs, session = ort_predict(out / "tiny-int8w.onnx", x)
    assert session.get_inputs()[0].type == "tensor(float)"
    assert np.mean(probs.argmax(1) == ref.argmax(1)) >= 0.9
    ops = {n.op_type for n in onnx.load(str(out / "tiny-int8w.onnx")).graph.node}
    assert "DequantizeLinear" in ops and "QuantizeLinear" not in ops  # float compute
    for f in report["files"]:
        if f["quantization"] == "int8-weights":
            assert f["passed"], f["problems"]


def test_tflite_runtime_runs_the_files(exported, held_out):
    tflite_runtime = pytest.importorskip(
        "tflite_runtime.interpreter",
        reason="tflite-runtime has no wheel for Python 3.11 / numpy 2 here")
    out, _ = exported
    x = held_out.x[:6]
    for name in ("tiny-fp32.tflite", "tiny-int8.tflite"):
        probs, in_t, _ = lite_predict(out / name, x, tflite_runtime.Interpreter)
        litert, litert_in, _ = lite_predict(out / name, x)
        assert probs.shape == (len(x), 10) and in_t == litert_in
        # The same file in the Pi's runtime gives ai-edge-litert's answers.
        np.testing.assert_allclose(probs, litert, atol=1e-5)


def test_backends_runner_agrees_with_report(exported, held_out):
    from edge_genre.edge import backends

    out, report = exported
    for f in report["files"]:
        runner = backends.load_model(out / f["file"], backend=f["backend"])
        assert runner.card.quantization == f["quantization"]
        assert runner.predict(held_out.x[:4]).shape == (4, len(runner.card.labels))


def test_run_without_test_tracks_checks_training_windows(tiny_run, tmp_path, feature_cache,
                                                         capsys):
    """A run trained on every track is not refused: the check runs on its training windows and
    says so; --int8-weights through the CLI."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    record = json.loads((run / "run.json").read_text())
    record["split"]["test"] = []
    (run / "run.json").write_text(json.dumps(record))
    out = tmp_path / "o"
    assert cli([run, "--out", out, "--formats", "tflite", "--int8-weights",
                "--cache-dir", feature_cache]) == 0
    table = capsys.readouterr().out
    assert "no held-out tracks in this run): agreement only is meaningful" in table
    assert "tiny-int8w.tflite" in table and "train track acc" in table
    assert "train window acc" in table and "chunk" not in table
    report = json.loads((out / "export_report.json").read_text())
    ev = report["evaluation"]
    assert ev["part"] == "train" and "agreement only is meaningful" in ev["note"]
    assert 0 < ev["windows"] <= 400 and ev["tracks"] > 1
    assert [f["file"] for f in report["files"]] == ["tiny-fp32.tflite", "tiny-int8w.tflite"]
    assert read_card(out / "tiny-int8w.tflite").quantization == "int8-weights"
    assert report["files"][0]["agreement"] == 1.0


# ----------------------------------------------------------------------------- bad input


def cli(argv):
    from edge_genre.cli import main
    return main(["export", *map(str, argv)])


def test_not_a_model_dir(tmp_path, capsys):
    assert cli([tmp_path, "--out", tmp_path / "o"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no model.keras" in err[0]


def test_input_shape_must_match_frontend(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    card = json.loads((run / "model_card.json").read_text())
    card["frontend"]["n_mels"] = 64
    card["input_shape"] = []
    (run / "model_card.json").write_text(json.dumps(card))
    assert cli([run, "--out", tmp_path / "o", "--formats", "tflite"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1 and "does not match its front-end" in err[0]


def test_empty_representative_set(tiny_run, tmp_path, feature_cache):
    from edge_genre.export import export_model

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    record = json.loads((run / "run.json").read_text())
    record["split"]["train"] = ["blues.09999"]  # not in the data folder
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match="representative .* set is empty"):
        export_model(run, tmp_path / "o", int8=True, formats=("tflite",), cache_dir=feature_cache)


def test_missing_converter(tiny_run, tmp_path, monkeypatch):
    import sys

    from edge_genre.export import export_model

    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as if not installed
    with pytest.raises(BackendError, match=r"needs tf2onnx.*pip install 'edge-genre\[export\]'"):
        export_model(tiny_run, tmp_path / "o", formats=("onnx",))


def test_degraded_export_fails_loudly(tiny_run, tmp_path, feature_cache, capsys):
    from edge_genre.export import ExportConfig, export_model

    strict = ExportConfig(calibration_windows=20, min_agreement=1.01)  # nothing can pass
    with pytest.raises(ModelError, match="export degraded the model"):
        export_model(tiny_run, tmp_path / "o", int8=True, formats=("tflite",),
                     cache_dir=feature_cache, config=strict)
    report = json.loads((tmp_path / "o" / "export_report.json").read_text())
    assert report["passed"] is False


def test_corrupt_keras_file(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "model.keras").write_bytes(b"not a zip archive")
    assert cli([run, "--out", tmp_path / "o", "--formats", "tflite"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1 and "is not a loadable Keras model" in err[0]


def test_unknown_format(tiny_run, tmp_path):
    from edge_genre.export import export_model

    with pytest.raises(ModelError, match="unknown export format coreml"):
        export_model(tiny_run, tmp_path / "o", formats=("coreml",))


def _cv_output(preset: str) -> dict:
    """What ``edge-genre evaluate --cv 5 --preset NAME --room far --out FILE.json`` writes."""
    return {"preset": preset, "method": f"preset {preset}", "k": 5, "seed": 0,
            "grouping": "grouped by artist (120 artists, index artist_title_index.txt)",
            "n_tracks": 161, "limit_per_genre": None, "folds_run": [1, 2, 3, 4, 5],
            "track_accuracy_per_fold": [0.6, 0.7, 0.5, 0.8, 0.655],
            "track_accuracy_mean": 0.651, "track_accuracy_std": 0.117,
            "far_track_accuracy_mean": 0.552, "far_track_accuracy_std": 0.08,
            "per_fold": [{"fold": i + 1, "test_ids": []} for i in range(5)]}


def test_cv_record_goes_into_every_card(tiny_run, tmp_path, feature_cache, capsys):
    """--cv-record: the record of the run's preset (among several) is in every file's card."""
    import onnx

    record = tmp_path / "cv.json"
    record.write_text(json.dumps({"runs": [_cv_output("scratch"), _cv_output("tiny")]}))
    out = tmp_path / "o"
    assert cli([tiny_run, "--out", out, "--cv-record", record,
                "--cache-dir", feature_cache]) == 0
    assert "card extra.cv: track accuracy 65.1 %" in capsys.readouterr().out
    want = {"k": 5, "seed": 0, "grouping": "artist", "n_tracks": 161,
            "track_accuracy_mean": 0.651, "track_accuracy_std": 0.117,
            "far_track_accuracy_mean": 0.552, "far_track_accuracy_std": 0.08, "preset": "tiny",
            "source": "edge-genre evaluate --cv 5 --preset tiny --room far --out cv.json"}
    tflite_card = read_card(out / "tiny-fp32.tflite")
    props = {p.key: p.value for p in onnx.load(str(out / "tiny-fp32.onnx")).metadata_props}
    onnx_card = ModelCard.from_json(props[METADATA_KEY])
    for card in (tflite_card, onnx_card):
        assert card.extra["cv"] == want
    assert json.loads((out / "export_report.json").read_text())["cv"] == want


def test_cv_record_of_another_preset_is_refused(tiny_run, tmp_path, capsys):
    record = tmp_path / "cv.json"
    record.write_text(json.dumps(_cv_output("transfer")))
    assert cli([tiny_run, "--out", tmp_path / "o", "--cv-record", record]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1 and "preset transfer" in err[0] and "preset tiny" in err[0]
    assert not (tmp_path / "o").exists()  # refused before any conversion
