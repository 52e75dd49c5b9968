"""edge-genre bench on a waveform-in file (``export --mediapipe``): its row's latency includes the
in-graph front-end, its streaming cost adds no numpy front-end, and the report says so."""
from __future__ import annotations

import json
import math
import shutil

import pytest

from edge_genre.benchmarks import bench, report

from tests.edge.waveform_files import waveform_files  # noqa: F401 (fixture)

#: Held out from the files' network (it trained on the first two .wav excerpts of each genre).
HELD_OUT = ("jazz.00003", "rock.00023")


def _positive(value, where):
    assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, \
        f"{where} = {value!r} is not positive"


@pytest.mark.slow
def test_short_bench_with_a_waveform_file(waveform_files, tmp_path, gtzan_root):  # noqa: F811
    """The waveform-in file beside the spectrogram-in file of the same network, with a run.json
    naming held-out tracks so both have a measured accuracy (the same windows, the same
    answers). The bench's fastest settings, YAMNet skipped."""
    from edge_genre.cli import main

    models = tmp_path / "models"
    models.mkdir()
    wave = shutil.copy(waveform_files.waveform, models)
    spectro = shutil.copy(waveform_files.spectrogram, models)
    (models / "run.json").write_text(json.dumps({"split": {
        "train": list(waveform_files.train_ids), "valid": [], "test": list(HELD_OUT)}}))
    out = tmp_path / "bench"
    rc = main(["bench", "--models", str(wave), str(spectro), "--seconds", "0.3", "--threads", "1",
               "--no-paper", "--peer-yamnet", "none", "--tracks", "2", "--stream-seconds", "10",
               "--coldstart-repeats", "1", "--data", str(gtzan_root), "--out", str(out)])
    assert rc == 0
    rec = json.loads((out / "bench.json").read_text())
    w, s = rec["models"]
    assert (w["name"], s["name"]) == ("tiny-mediapipe.tflite", "tiny-fp32.tflite")

    # The waveform row: timed on raw windows, front-end in-graph, no numpy front-end row.
    assert w["frontend_in_graph"] is True and w["frontend"] is None
    assert w["input_shape"] == [64000]
    assert s["frontend_in_graph"] is False and s["frontend"]
    (fe,) = rec["frontends"]
    assert fe["used_by"] == ["tiny-fp32.tflite"]
    for m in (w, s):
        (lat,) = m["latency"]
        _positive(lat["per_window_ms"]["median_ms"], f"{m['name']}.latency")
        (stream,) = m["streaming"]
        assert stream["path"] == "edge.classifier.Classifier.push"
        for key in ("real_time_factor", "core_percent", "cpu_ms_per_hop"):
            _positive(stream[key], f"{m['name']}.streaming.{key}")
        assert m["cold_start"]["ok"], m["cold_start"].get("error")  # edge-genre predict --model
        _positive(m["macs"], f"{m['name']}.macs")
    assert w["streaming"][0]["frontend"] == "in-graph"
    assert s["streaming"][0]["frontend"] == "numpy streaming"
    assert any("front-end in-graph" in n for n in rec["notes"])

    # Accuracy on the held-out tracks: the same windows and answers both ways.
    wa, sa = w["accuracy"], s["accuracy"]
    assert wa["source"] == sa["source"] == "held-out"
    assert (wa["tracks"], wa["windows"]) == (sa["tracks"], sa["windows"]) == (2, 28)
    assert wa["track_accuracy"] == sa["track_accuracy"]
    assert wa["window_accuracy"] == sa["window_accuracy"]

    # The report says it on the row, and leaves the file out of the front-end table.
    md = (out / "bench.md").read_text()
    rows = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| tiny-")}
    assert set(rows) == {"tiny-mediapipe.tflite (front-end in-graph)", "tiny-fp32.tflite"}
    assert "Not in this table: tiny-mediapipe.tflite (front-end in-graph" in md
    print(f"\n1-thread latency per window: waveform-in {w['latency'][0]['per_window_ms']['median_ms']}"
          f" ms (front-end in-graph), spectrogram-in {s['latency'][0]['per_window_ms']['median_ms']}"
          f" ms + numpy front-end {fe['per_hop_ms']['streaming']['median_ms']} ms per hop "
          f"(streaming) / {fe['per_hop_ms']['scratch']['median_ms']} ms (scratch); streaming % of "
          f"a core: {w['streaming'][0]['core_percent']:.2f} vs {s['streaming'][0]['core_percent']:.2f}")


def _model(name, ms, in_graph, frontend=None):
    return {"name": name, "role": bench.TESTED_ROLE, "quantization": "fp32", "format": "tflite",
            "macs": 1, "frontend_in_graph": in_graph, "frontend": frontend,
            "latency": [{"backend": "ai-edge-litert", "threads": 1,
                         "per_window_ms": {"median_ms": ms}}]}


def test_ratios_do_not_add_a_frontend_to_an_in_graph_file():
    """YAMNet (whose graph holds its front-end) against a waveform-in file under test: the model's
    latency alone, no numpy front-end added; against a spectrogram-in file: model + front-end."""
    yam = {"latency": [{"threads": 1, "per_window_ms": {"median_ms": 30.0}}]}
    fe = {"key": "k", "per_hop_ms": {"scratch": {"median_ms": 5.0},
                                      "streaming": {"median_ms": 2.0},
                                      "scratch_logmel": {"median_ms": 4.0}, "librosa": None}}
    wave = bench.ratios({"models": [_model("w.tflite", 10.0, True)], "frontends": [fe],
                         "yamnet": yam})
    assert wave["yamnet_over_tested_frontend_plus_model_1thread"] == 3.0
    assert wave["tested_frontend_in_graph"] is True and wave["tested_file"] == "w.tflite"
    spectro = bench.ratios({"models": [_model("s.tflite", 10.0, False, "k")], "frontends": [fe],
                            "yamnet": yam})
    assert spectro["yamnet_over_tested_frontend_plus_model_1thread"] == 2.0
    assert "tested_frontend_in_graph" not in spectro
    assert "tested model with its front-end in-graph" in report.markdown(_record(wave))
    assert "tested model's front-end from scratch + model" in report.markdown(_record(spectro))


def _record(ratios: dict) -> dict:
    return {"command": "edge-genre bench", "created": "now", "duration_s": 1.0,
            "machine": {"backends": {}, "cpu_model": "cpu", "architecture": "x86_64",
                        "usable_cores": 2}, "settings": {"threads": [1]}, "models": [],
            "frontends": [], "yamnet": {}, "ratios": ratios,
            "pi_estimate": {"method": "m", "rates": {}}}
