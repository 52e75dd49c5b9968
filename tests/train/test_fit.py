"""Training on real GTZAN audio: the paper net takes a step, the scratch preset runs end to end
through the CLI and writes the model directory contract, and no test track reaches training."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edge_genre.cli import main  # noqa: E402
from edge_genre.edge.config import ModelCard  # noqa: E402
from edge_genre.train.data import discover, read_artist_index  # noqa: E402
from edge_genre.train.features import load_windows, normalization_stats  # noqa: E402
from edge_genre.train.presets import get_preset  # noqa: E402


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("feature-cache")


@pytest.fixture(scope="module")
def tiny_run(gtzan_root, cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "scratch-tiny"
    rc = main(["train", "--preset", "scratch", "--data", str(gtzan_root), "--limit", "2",
               "--epochs", "1", "--cache", str(cache_dir), "--out", str(out), "--quiet"])
    assert rc == 0
    return out


@pytest.mark.slow
def test_paper_net_trains_one_step_on_real_windows(gtzan_root):
    from edge_genre.train.fit import compile_model, setup_keras

    setup_keras(0)
    preset = get_preset("paper")
    ds = discover(gtzan_root)
    tracks = [next(t for t in ds.tracks if t.genre == g) for g in ("classical", "metal")]
    w = load_windows(tracks, preset.frontend, preset.window)
    assert w.x.shape[1:] == (256, 256, 1) and len(w) == 28
    mean, std = normalization_stats(w.x)
    pick = [0, 1, 14, 15]  # two windows of each track
    x = ((w.x[pick] - mean) / std).astype(np.float32)
    y = np.eye(len(ds.labels), dtype=np.float32)[w.y[pick]]
    model = preset.build(len(ds.labels))
    compile_model(model, preset.train, steps_per_epoch=1, epochs=1)
    before = [v.copy() for v in model.get_weights()]
    logs = model.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss"])
    after = model.get_weights()
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))


@pytest.mark.slow
def test_scratch_cli_run_writes_the_model_directory(tiny_run):
    for name in ("model.keras", "model_card.json", "run.json", "curves.png", "confusion.png"):
        assert (tiny_run / name).is_file(), name
    card = ModelCard.from_json((tiny_run / "model_card.json").read_text())
    assert card.preset == "scratch" and card.quantization == "fp32"
    assert card.input_shape == (64, 199, 1) and len(card.labels) == 10
    assert card.frontend.std != 1.0 and card.package_version
    record = json.loads((tiny_run / "run.json").read_text())
    assert len(record["data"]["fingerprint"]) == 64
    assert record["data"]["n_tracks"] == 20 and record["epochs_run"] == 1
    assert {"loss", "accuracy", "val_accuracy", "val_track_accuracy"} <= set(record["history"][0])
    assert record["normalization"]["mean"] == card.frontend.mean
    assert record["test"]["split"].startswith("test part of")
    assert record["wall_seconds"] > 0

    import keras
    model = keras.models.load_model(tiny_run / "model.keras", compile=False)
    assert model.input_shape == (None, 64, 199, 1) and model.output_shape == (None, 10)


@pytest.mark.slow
def test_no_test_track_reaches_training(tiny_run, gtzan_root, artist_index_path):
    record = json.loads((tiny_run / "run.json").read_text())
    split = record["split"]
    train, valid, test = (set(split[p]) for p in ("train", "valid", "test"))
    assert test and train
    assert not (train & test) and not (train & valid) and not (valid & test)
    artists = read_artist_index(artist_index_path)
    by_artist = [{artists.get(t, f"track:{t}") for t in part} for part in (train, valid, test)]
    assert not (by_artist[0] & by_artist[2]), "an artist is on both sides"
    # The windows that trained the model are exactly the training tracks' windows.
    ds = discover(gtzan_root)
    preset = get_preset("scratch")
    w = load_windows([t for t in ds.tracks if t.track_id in train], preset.frontend,
                     preset.window)
    assert record["windows"]["train"] == len(w)
    # And normalisation came from them alone.
    mean, std = normalization_stats(w.x)
    assert abs(mean - record["normalization"]["mean"]) < 1e-6
    assert abs(std - record["normalization"]["std"]) < 1e-6


@pytest.mark.slow
def test_evaluate_tiny_run(tiny_run, gtzan_root, cache_dir, capsys, tmp_path):
    rc = main(["evaluate", str(tiny_run), "--data", str(gtzan_root), "--cache", str(cache_dir),
               "--out", str(tmp_path / "eval"), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "split: test part of the run's random split" in text
    assert "window accuracy" in text and "track accuracy" in text and "track confusion" in text
    assert "chunk" not in text
    assert "window_accuracy" in json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    record = json.loads((tiny_run / "run.json").read_text())
    assert report["n_tracks"] == len(record["split"]["test"])
    assert report["track_accuracy"] == pytest.approx(record["test"]["track_accuracy"])
    assert np.array(report["track_confusion"]).sum() == report["n_tracks"]
    assert (tmp_path / "eval" / "confusion.png").is_file()


@pytest.mark.slow
def test_cross_validation_and_baseline_on_the_same_folds(gtzan_root, cache_dir, tmp_path,
                                                         capsys):
    rc = main(["evaluate", "--cv", "2", "--preset", "scratch", "--data", str(gtzan_root),
               "--limit", "2", "--epochs", "1", "--cache", str(cache_dir), "--quiet",
               "--out", str(tmp_path / "cv.json")])
    assert rc == 0
    cv = json.loads((tmp_path / "cv.json").read_text())
    assert cv["k"] == 2 and len(cv["track_accuracy_per_fold"]) == 2
    assert cv["grouping"].startswith("grouped by artist")
    assert cv["params"] <= 500_000 and cv["macs_per_window"] <= 100_000_000
    tested = [set(f["test_ids"]) for f in cv["per_fold"]]
    assert not (tested[0] & tested[1]) and len(tested[0] | tested[1]) == cv["n_tracks"]
    rc = main(["evaluate", "--cv", "2", "--baseline", "--data", str(gtzan_root), "--limit", "2",
               "--cache", str(cache_dir), "--out", str(tmp_path / "base.json")])
    assert rc == 0
    base = json.loads((tmp_path / "base.json").read_text())
    assert len(base["track_accuracy_per_fold"]) == 2
    assert "track accuracy" in capsys.readouterr().out


@pytest.mark.slow
def test_several_presets_cross_validate_on_the_same_folds(gtzan_root, cache_dir, tmp_path,
                                                          capsys):
    """``--preset student,baseline --room``: one table, accuracy (as recorded and through a
    simulated room microphone) beside params and MACs."""
    rc = main(["evaluate", "--cv", "2", "--preset", "student,baseline", "--data",
               str(gtzan_root), "--limit", "2", "--cache", str(cache_dir), "--quiet", "--room",
               "--out", str(tmp_path / "cv.json")])
    assert rc == 0
    runs = json.loads((tmp_path / "cv.json").read_text())["runs"]
    assert [r["preset"] for r in runs] == ["student", "baseline"]
    student, base = runs
    assert student["params"] <= 500_000 and student["macs_per_window"] <= 100_000_000
    for room in ("near", "far"):
        assert len(student[f"{room}_track_accuracy_per_fold"]) == 2
        assert all(0 <= a <= 1 for a in student[f"{room}_track_accuracy_per_fold"])
    assert student["rooms"]["far"]["room"]["distance_m"] > 4
    assert student["rooms"]["near"]["room"]["distance_m"] < 1.5
    folds = [sorted(f["test_ids"]) for f in student["per_fold"]]
    assert folds == [sorted(f["test_ids"]) for f in base["per_fold"]]
    out = capsys.readouterr().out
    table = out[out.index("model "):]
    assert "student" in table and "baseline" in table and " M" in table
    assert "near room" in table and "far room" in table


def test_an_unknown_preset_in_a_list_is_one_line(gtzan_root, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--cv", "2", "--preset", "scratch,resnet", "--data", str(gtzan_root)])
    assert exc.value.code == 2
    assert "unknown preset resnet" in capsys.readouterr().err


def test_room_without_cv_is_one_line(gtzan_root, tmp_path, capsys):
    assert main(["evaluate", str(tmp_path), "--data", str(gtzan_root), "--room"]) == 2
    assert "--room goes with --cv" in capsys.readouterr().err


def test_user_errors_are_one_line(gtzan_root, tmp_path, capsys):
    assert main(["evaluate", str(tmp_path), "--data", str(gtzan_root)]) == 2
    err = capsys.readouterr().err
    assert "is not a model directory" in err and "Traceback" not in err
    assert main(["train", "--preset", "scratch", "--data", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_best_epoch_is_one_rule_for_every_fit():
    """``fit_model``'s best epoch, for ``train_run`` and ``evaluate --cv`` alike: the best
    validated epoch by the preset's selection (ties: the earliest), else the last."""
    from edge_genre.train.fit import best_epoch

    track_first = get_preset("scratch").train  # selection val_track_accuracy
    window_first = get_preset("paper").train  # selection val_accuracy
    history = [{"epoch": 1, "val_accuracy": 0.6, "val_track_accuracy": 0.5, "val_loss": 1.0},
               {"epoch": 2, "val_accuracy": 0.5, "val_track_accuracy": 0.7, "val_loss": 1.2},
               {"epoch": 3, "val_accuracy": 0.5, "val_track_accuracy": 0.7, "val_loss": 1.1}]
    assert best_epoch(history, track_first) == 3  # track accuracy tie: lower loss
    assert best_epoch(history, window_first) == 1
    assert best_epoch(history[1:2] * 2, track_first) == 1  # a full tie: the earliest
    assert best_epoch([{"epoch": 1, "accuracy": 0.9}, {"epoch": 2, "accuracy": 0.8}],
                      track_first) == 2  # not validated: the last, as fit_windows keeps
    assert best_epoch([], track_first) == 0
