"""Shipped models by name: `--model music` picks the music-trained teacher, `--model student` the
full-int8 Pi-budget student, `default` the default, and a bare word that is neither a file nor a
shipped name is one clear line (exit 2)."""
from __future__ import annotations

import json

from edge_genre.benchmarks import graph_macs
from edge_genre.cli import main
from edge_genre.defaults import DEFAULT_STEM, shipped_models, shipped_names
from edge_genre.edge.modelfile import read_card
from edge_genre.train.presets import PI_MAX_MACS, PI_MAX_PARAMS

from tests.conftest import gtzan_file


def test_the_default_and_music_ship_by_name():
    names = shipped_names()
    assert names[0] == DEFAULT_STEM and "music" in names
    music = shipped_models("music")
    assert music and all(p.name.startswith("music-") for p in music)
    tflite = [p for p in music if p.suffix == ".tflite"]
    card = read_card(tflite[0])
    assert card.preset == "music" and card.frontend.n_mels == 96
    # the card carries the CV figures the bench quotes, never a training score
    assert card.extra["cv"]["k"] == 5 and 0.4 < card.extra["cv"]["track_accuracy_mean"] < 0.9


def test_predict_with_model_music(capsys):
    code = main(["predict", "--model", "music", "--json", str(gtzan_file("jazz.00002"))])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out["label"] == "jazz"
    assert out["model"].startswith("music-")


def test_the_student_ships_in_full_int8_within_the_pi_budget():
    student = shipped_models("student")
    assert [p.name for p in student] == ["student-int8.tflite", "student-int8.onnx"]
    card = read_card(student[0])
    assert card.preset == "student" and card.frontend.hop_length == 320  # frames every 20 ms
    assert card.extra["cv"]["k"] == 5 and 0.4 < card.extra["cv"]["track_accuracy_mean"] < 0.9
    for path in student:
        cost = graph_macs.count(path)  # counted from the file's own graph
        assert cost.macs <= PI_MAX_MACS and cost.params <= PI_MAX_PARAMS


def test_predict_with_model_student_agrees_across_backends(capsys):
    labels = []
    for backend in ("ai-edge-litert", "onnxruntime"):
        code = main(["predict", "--model", "student", "--backend", backend, "--json",
                     str(gtzan_file("jazz.00002"))])
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert code == 0 and out["model"].startswith("student-int8.")
        labels.append(out["genre"])
    assert labels == ["jazz", "jazz"]


def test_an_unknown_name_is_one_line(capsys):
    code = main(["predict", "--model", "musik", str(gtzan_file("jazz.00002"))])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "musik" in err[0] and "default" in err[0] and "music" in err[0]
