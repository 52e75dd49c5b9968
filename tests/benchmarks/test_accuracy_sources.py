"""Where the bench's accuracy comes from: the CV record in the card (written by
``edge-genre export --cv-record``), held-out tracks a run record lists, or nothing; YAMNet
zero-shot over every track; the table's thread columns; the plot's points and labels."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_genre.benchmarks import accuracy, report
from edge_genre.edge.config import FrontendConfig, ModelCard, WindowConfig
from edge_genre.errors import DataError, EdgeGenreError
from edge_genre.export.pipeline import CV_KEY, cv_summary, read_cv_record

LABELS = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae",
          "rock")
CV = {"k": 5, "seed": 0, "grouping": "artist", "n_tracks": 161, "track_accuracy_mean": 0.651,
      "track_accuracy_std": 0.117, "preset": "transfer",
      "source": "edge-genre evaluate --cv 5 --preset transfer --out cv.json"}


def card(**extra) -> ModelCard:
    return ModelCard(labels=LABELS, frontend=FrontendConfig(sample_rate=16000, n_mels=32),
                     window=WindowConfig(), preset="transfer", extra=extra)


def evaluate_output(preset="transfer", room=True, **over) -> dict:
    """What ``edge-genre evaluate --cv 5 --preset NAME --out FILE.json`` writes (one preset)."""
    rec = {"method": f"preset {preset}", "preset": preset, "k": 5, "seed": 0,
           "grouping": "grouped by artist (120 artists, index /x/artist_title_index.txt)",
           "n_tracks": 161, "limit_per_genre": None, "epochs": 40, "folds_run": [1, 2, 3, 4, 5],
           "track_accuracy_per_fold": [0.5, 0.6, 0.7, 0.8, 0.655],
           "track_accuracy_mean": 0.651, "track_accuracy_std": 0.117,
           "window_accuracy_mean": 0.6, "window_accuracy_std": 0.1,
           "rooms": {"near": {}, "far": {}} if room else {},
           "per_fold": [{"fold": i + 1, "test_ids": ["x"]} for i in range(5)],
           "pooled_track_confusion": [[0]]}
    if room:
        rec.update({"near_track_accuracy_per_fold": [0.6] * 5, "near_track_accuracy_mean": 0.6,
                    "near_track_accuracy_std": 0.05, "far_track_accuracy_per_fold": [0.5] * 5,
                    "far_track_accuracy_mean": 0.552, "far_track_accuracy_std": 0.081})
    rec.update(over)
    return rec


@pytest.fixture(scope="module")
def dataset(gtzan_root):
    from edge_genre.train.data import discover

    return discover(gtzan_root)


# ----------------------------------------------------------------------------- the card key


def test_cv_summary_keeps_the_summary_of_one_run():
    cv = cv_summary(evaluate_output(), "transfer")
    assert cv == {"k": 5, "seed": 0, "grouping": "artist", "n_tracks": 161,
                  "track_accuracy_mean": 0.651, "track_accuracy_std": 0.117,
                  "near_track_accuracy_mean": 0.6, "near_track_accuracy_std": 0.05,
                  "far_track_accuracy_mean": 0.552, "far_track_accuracy_std": 0.081,
                  "preset": "transfer",
                  "source": "edge-genre evaluate --cv 5 --preset transfer --room near,far"}
    assert "far_track_accuracy_mean" not in cv_summary(evaluate_output(room=False), "transfer")


def test_cv_summary_still_reads_the_single_room_of_older_records():
    """Records written before the physical rooms had one synthetic near-field room."""
    old = evaluate_output(room=False, room_track_accuracy_mean=0.552,
                          room_track_accuracy_std=0.081)
    cv = cv_summary(old, "transfer")
    assert cv["room_track_accuracy_mean"] == 0.552 and "far_track_accuracy_mean" not in cv
    assert cv["source"] == "edge-genre evaluate --cv 5 --preset transfer --room"


def test_cv_summary_picks_the_run_of_the_preset(tmp_path):
    runs = {"runs": [evaluate_output("student", track_accuracy_mean=0.6),
                     evaluate_output("transfer"), evaluate_output("baseline", room=False)]}
    path = tmp_path / "cv.json"
    path.write_text(json.dumps(runs))
    cv = read_cv_record(path, "transfer")
    assert cv["preset"] == "transfer" and cv["track_accuracy_mean"] == 0.651
    assert cv["source"].endswith("--out cv.json")
    assert read_cv_record(path, "student", "student")["track_accuracy_mean"] == 0.6


@pytest.mark.parametrize("data, preset, cv_preset, says", [
    (evaluate_output("student"), "transfer", None, "preset student"),
    ({"runs": [evaluate_output("student"), evaluate_output("scratch")]}, "transfer", None,
     "no cross-validation of preset transfer"),
    (evaluate_output("transfer"), "transfer", "student", "--cv-preset student"),
    (evaluate_output(folds_run=[1, 2]), "transfer", None, "2 of 5 folds"),
    ({"labels": []}, "transfer", None, "not the output of edge-genre evaluate"),
])
def test_cv_record_refused(data, preset, cv_preset, says):
    with pytest.raises(DataError, match=says) as info:
        cv_summary(data, preset, cv_preset)
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_cv_record_of_a_renamed_preset_is_the_same_preset():
    """A run or record from before ``edge`` became ``scratch`` (``presets.DEPRECATED_NAMES``)
    still pairs with the other name; the card says the current one."""
    for data, run in ((evaluate_output("edge"), "scratch"), (evaluate_output("scratch"), "edge"),
                      ({"runs": [evaluate_output("transfer"), evaluate_output("edge")]},
                       "scratch")):
        cv = cv_summary(data, run)
        assert cv["preset"] == "scratch" and "--preset scratch" in cv["source"]
    with pytest.raises(DataError, match="preset transfer"):
        cv_summary(evaluate_output("transfer"), "edge")


def test_cv_record_file_errors_are_one_line(tmp_path):
    with pytest.raises(EdgeGenreError, match="cannot read"):
        read_cv_record(tmp_path / "missing.json", "transfer")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(EdgeGenreError, match="not valid JSON"):
        read_cv_record(tmp_path / "bad.json", "transfer")


# ----------------------------------------------------------------------------- per model file


def test_a_card_with_cv_is_quoted_from_the_card(dataset, tmp_path):
    # A run.json with test tracks beside the file must not win over the card's CV record.
    (tmp_path / "run.json").write_text(json.dumps({"split": {"test": ["blues.00000"]}}))
    plan = accuracy.plan(tmp_path / "m.tflite", card(**{CV_KEY: CV}), dataset)
    assert plan.held is None and plan.note is None
    acc = plan.accuracy
    assert acc["source"] == "card cv" and acc["track_accuracy"] == 0.651
    assert acc["cv"] == CV
    assert report.accuracy_text(acc) == "65.1 % ± 11.7 CV (artist, 5 folds)"
    rooms = accuracy.from_card_cv({**CV, "near_track_accuracy_mean": 0.6,
                                   "near_track_accuracy_std": 0.05,
                                   "far_track_accuracy_mean": 0.552,
                                   "far_track_accuracy_std": 0.081})
    assert report.accuracy_text(rooms, n_dataset=161) == \
        "65.1 % ± 11.7 CV (artist, 5 folds); near room 60.0 % ± 5.0; far room 55.2 % ± 8.1"
    old = accuracy.from_card_cv({**CV, "room_track_accuracy_mean": 0.552,
                                 "room_track_accuracy_std": 0.081})
    assert report.accuracy_text(old, n_dataset=161) == \
        "65.1 % ± 11.7 CV (artist, 5 folds); room mic 55.2 % ± 8.1"
    assert "of 161 tracks" in report.accuracy_text(
        accuracy.from_card_cv({**CV, "n_tracks": 50}), n_dataset=161)


def test_a_model_trained_on_every_track_is_not_scored(dataset, tmp_path):
    """The shipped default's card: no CV, test_split None (no test tracks). No score, a note."""
    shipped = card(macs=1, params=1, test_split=None, test_track_accuracy=None)
    plan = accuracy.plan(tmp_path / "default-int8w.tflite", shipped, dataset)
    assert plan.accuracy is None and plan.held is None
    assert "every track" in plan.note and "not measured" in plan.note
    assert report.accuracy_text(None) == "–"
    # Nothing known at all: still no score, never the default split's test part.
    plan = accuracy.plan(tmp_path / "other.tflite", card(), dataset)
    assert plan.accuracy is None and plan.held is None and "not measured" in plan.note


def test_held_out_tracks_come_from_the_run_record(dataset, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    ids = [t.track_id for t in dataset.tracks[::40]]
    (run / "run.json").write_text(json.dumps({"split": {
        "train": [ids[0]], "valid": [], "test": ids}}))  # ids[0] also trained: dropped
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "export_report.json").write_text(json.dumps({"run_dir": str(run)}))
    plan = accuracy.plan(exports / "m.tflite", card(), dataset)
    assert plan.accuracy is None and plan.note is None
    assert [t.track_id for t in plan.held.tracks] == ids[1:]
    assert str(run / "run.json") in plan.held.description


def test_an_untrained_peer_is_not_scored(dataset, tmp_path):
    plan = accuracy.plan(tmp_path / "paper-int8.tflite", card(**{CV_KEY: CV}), dataset,
                         trained=False)
    assert plan.accuracy is None and plan.held is None and plan.note.startswith("untrained")


# ----------------------------------------------------------------------------- YAMNet zero-shot


def test_zero_shot_tracks_are_all_161(dataset):
    scored = accuracy.all_tracks(dataset)
    assert len(scored.tracks) == len(dataset.tracks) == 161
    few = accuracy.all_tracks(dataset, 10)
    assert len(few.tracks) == 10 and len({t.genre for t in few.tracks}) >= 8


def test_the_yamnet_peer_scores_every_track(dataset, monkeypatch, tmp_path):
    """_measure_yamnet hands all 161 tracks to the zero-shot mapping (YAMNet itself faked)."""
    from edge_genre.benchmarks import bench, graph_macs, yamnet_peer
    from edge_genre.benchmarks.latency import TimingConfig

    class Fake:
        backend = "fake"

        def __init__(self, path, threads=None):
            pass

    seen = []
    monkeypatch.setattr(yamnet_peer, "Yamnet", Fake)
    monkeypatch.setattr(yamnet_peer, "latency", lambda *a, **k: type(
        "L", (), {"to_dict": lambda self: {"per_window_ms": {"median_ms": 1.0}}})())
    monkeypatch.setattr(yamnet_peer, "zero_shot_predictions", lambda model, audio, labels: (
        seen.extend(audio) or np.array([LABELS.index(t.genre) for t in dataset.tracks])))
    monkeypatch.setattr(accuracy, "iter_audio", lambda tracks, sr: iter(tracks))
    monkeypatch.setattr(accuracy, "held_out_audio", lambda tracks, sr: [np.zeros(16000)])
    monkeypatch.setattr(graph_macs, "count", lambda path: type(
        "C", (), {"macs": 1, "params": 1})())
    monkeypatch.setattr(yamnet_peer, "class_map_path", lambda path: Path(path))
    model = tmp_path / "yamnet.tflite"
    model.write_bytes(b"0")
    held = accuracy.HeldOut(dataset, dataset.tracks[:2], "two")
    cfg = bench.BenchConfig(peer_yamnet=model, threads=(1,))
    yam = bench._measure_yamnet(cfg, (1,), TimingConfig(), held, lambda m: None, [])
    assert len(seen) == 161 and yam["accuracy"]["tracks"] == 161
    assert yam["accuracy"]["source"] == "zero-shot all tracks"
    assert yam["accuracy"]["track_accuracy"] == 1.0


# ----------------------------------------------------------------------------- table and plot


def _lat(ms, threads, backend="ai-edge-litert"):
    return {"backend": backend, "threads": threads,
            "per_window_ms": {"median_ms": ms, "p90_ms": ms, "p99_ms": ms}}


def _model(name, ms, acc, threads=(1,), role="tested", trained=True, backend="ai-edge-litert"):
    return {"name": name, "role": role, "format": name.rsplit(".", 1)[1], "quantization": "int8",
            "trained": trained, "file_bytes": 1000, "params": 10, "macs": 10,
            "latency": [_lat(ms * (1 if n == 1 else 0.6), n, backend) for n in threads],
            "streaming": [], "accuracy": acc,
            "pi_estimate_ms": {"raspberry_pi_4": 1.0, "raspberry_pi_5": 1.0}}


def record(threads=(1,), models=None) -> dict:
    cv = accuracy.from_card_cv(CV)
    held = {"source": "held-out", "track_accuracy": 0.217, "tracks": 23}
    models = models or [
        _model("transfer-int8w.tflite", 25.5, cv, threads),
        _model("transfer-fp32.tflite", 20.8, cv, threads),
        _model("transfer-int8w.onnx", 25.6, cv, threads, backend="onnxruntime"),
        _model("transfer-copy.onnx", 25.6, cv, threads, backend="onnxruntime"),
        _model("scratch-int8.tflite", 2.65, held, threads),
        _model("scratch-int8.onnx", 2.6, held, threads, backend="onnxruntime"),
        _model("paper-int8.tflite", 247.0, cv, threads, role="paper", trained=False),
    ]
    return {"command": "edge-genre bench", "created": "now", "duration_s": 1.0,
            "machine": {"cpu_model": "test CPU", "architecture": "x86_64", "usable_cores": 2,
                        "simd": ["AVX2"], "backends": {"ai-edge-litert": "2"}},
            "settings": {"threads": list(threads)}, "dataset": {"n_tracks": 161},
            "models": models, "frontends": [], "ratios": {},
            "yamnet": {"latency": [{**_lat(64.0 * (1 if n == 1 else 0.6), n),
                                    "per_frame_ms": {"median_ms": 8.0}} for n in threads],
                       "accuracy": {"track_accuracy": 0.609, "tracks": 161, "zero_shot": True,
                                    "source": "zero-shot all tracks"},
                       "frames_per_window": 8, "file_bytes": 1, "params": 1,
                       "macs_per_window": 1,
                       "pi_estimate_ms": {"raspberry_pi_4": 1.0, "raspberry_pi_5": 1.0}},
            "pi_estimate": {"method": "estimate", "rates": {}}, "notes": []}


def _header(md: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith("| model |"))
    return [c.strip() for c in line.strip("|").split("|")]


@pytest.mark.parametrize("threads, columns", [
    ((1,), ["1 thread ms"]), ((1, 2), ["1 thread ms", "2 threads ms"]), ((2,), ["2 threads ms"])])
def test_one_latency_column_per_thread_count(threads, columns):
    md = report.markdown(record(threads))
    header = _header(md)
    assert [c for c in header if c.endswith(" ms") and "thread" in c] == columns
    rows = [ln for ln in md.splitlines() if ln.startswith("| transfer-int8w.tflite")]
    assert len(rows) == 1 and len(rows[0].strip("|").split("|")) == len(header)
    assert "ai-edge-litert" in rows[0] and "65.1 % ± 11.7 CV (artist, 5 folds)" in rows[0]
    yam = next(ln for ln in md.splitlines() if ln.startswith("| YAMNet"))
    assert "60.9 % zero-shot (161 tracks)" in yam
    assert len(yam.strip("|").split("|")) == len(header)


def test_an_untrained_peer_has_no_point():
    points, left_out = report.plot_points(record())
    names = [p["name"] for p in points]
    assert "paper-int8.tflite" not in names and "paper-int8.tflite (untrained)" in left_out
    assert "transfer-int8w.tflite" in names and "YAMNet" in names
    fig, ax, texts = report.figure(record())
    try:
        drawn = sum(len(c.get_offsets()) for c in ax.collections if hasattr(c, "get_offsets")
                    and len(c.get_offsets()) and c.get_offsets().shape[1] == 2
                    and type(c).__name__ == "PathCollection")
        assert drawn == len(points) == 7
    finally:
        import matplotlib.pyplot as plt
        plt.close(fig)


def _boxes_overlap(a, b) -> bool:
    return not (a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0)


@pytest.mark.parametrize("crowded", [False, True])
def test_plot_labels_do_not_overlap(crowded, tmp_path):
    rec = record((1, 2))
    if crowded:  # many files at nearly the same latency and accuracy
        cv = accuracy.from_card_cv(CV)
        rec["models"] += [_model(f"m{i}.tflite", 25.5 * (1 + 0.01 * i), cv) for i in range(12)]
    fig, ax, texts = report.figure(rec)
    import matplotlib.pyplot as plt
    try:
        renderer = fig.canvas.get_renderer()
        boxes = [t.get_window_extent(renderer) for t in texts if t.get_text()]
        assert len(boxes) > 8
        clashes = [(texts[i].get_text(), texts[j].get_text())
                   for i in range(len(boxes)) for j in range(i + 1, len(boxes))
                   if _boxes_overlap(boxes[i], boxes[j])]
        assert clashes == []
        fig_box = fig.bbox
        assert all(b.x0 >= 0 and b.x1 <= fig_box.x1 + 1 and b.y0 >= 0 and b.y1 <= fig_box.y1 + 1
                   for b in boxes), "a label falls off the figure"
    finally:
        plt.close(fig)
    assert report.plot(rec, tmp_path / "bench.png").stat().st_size > 1000
