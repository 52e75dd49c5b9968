"""The accelerator jobs on a CPU, on real excerpts: the pack's Opus round trip, robust-teacher
for two steps (weights musicnn's reader loads, changed only by training, no TensorFlow on its
path), paper-cv's record for one fold, the checkout shim, and the music body's other weights."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_genre.errors import DataError
from tests.conftest import GTZAN_SPLITS, REPO, gtzan_file

#: Two genres, two artists each where the index allows: folds stay artist-grouped.
TRACKS = ("blues.00000", "blues.00001", "jazz.00002", "jazz.00003")
HAS_JAX = importlib.util.find_spec("jax") is not None


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """A folder-per-genre dataset of links to four real excerpts, with the artist index."""
    root = tmp_path_factory.mktemp("tiny")
    for tid in TRACKS:
        src = gtzan_file(tid)
        (root / "genres" / tid.split(".")[0]).mkdir(parents=True, exist_ok=True)
        (root / "genres" / tid.split(".")[0] / src.name).symlink_to(src)
    (root / "artist_title_index.txt").symlink_to(GTZAN_SPLITS / "artist_title_index.txt")
    return root


@pytest.fixture(scope="module")
def tiny_pack(tiny_dataset, tmp_path_factory) -> Path:
    from edge_genre.train.pack import PackConfig, pack

    out = tmp_path_factory.mktemp("pack") / "data"
    pack(PackConfig(str(tiny_dataset), str(out), k=2))
    return out


def _job(args: list[str], *, check_modules: bool = False) -> subprocess.CompletedProcess:
    """``python -m edge_genre.train.accelerate ARGS`` on JAX in a fresh process; with
    ``check_modules`` it fails if TensorFlow or librosa was imported on the way."""
    code = ("import sys\nfrom edge_genre.train.accelerate import main\n"
            f"rc = main({args!r})\n")
    if check_modules:
        code += ("bad = [m for m in ('tensorflow', 'librosa') if m in sys.modules]\n"
                 "assert not bad, f'imported {bad}'\n")
    code += "raise SystemExit(rc)\n"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_pack_round_trip(tiny_dataset, tiny_pack):
    from edge_genre.edge import audio as audio_io
    from edge_genre.train.data import discover
    from edge_genre.train.pack import dataset_folds, level_db, read_manifest, read_pack
    from edge_genre.train.splits import cv_folds

    m = read_manifest(tiny_pack)
    assert m["sample_rate"] == 16000 and m["labels"] == ["blues", "jazz"]
    assert [t["track_id"] for t in m["tracks"]] == list(TRACKS)
    assert all(t["artist"] for t in m["tracks"])
    ds = read_pack(tiny_pack)
    for t in ds.tracks:
        assert t.path.suffix == ".ogg" and t.path.stat().st_size < 200_000  # ~110 kB / 30 s
        packed = audio_io.read(t.path)
        assert packed.sample_rate == 16000
        original = audio_io.load(gtzan_file(t.track_id), 16000)
        y = audio_io.load(t.path, 16000)
        assert abs(len(y) - len(original)) / 16000 < 0.05
        assert abs(level_db(y) - level_db(original)) < 0.5
    # The manifest's folds are cv_folds' on the original data: no scikit-learn needed there.
    folds, grouping = dataset_folds(tiny_pack, ds, k=2, seed=0)
    assert "artist" in grouping
    ref = cv_folds(discover(tiny_dataset), 2, 0)
    assert [[t.track_id for t in f.test] for f in folds] == \
        [[t.track_id for t in f.test] for f in ref]


def test_pack_refuses_a_bad_rate(tiny_dataset, tmp_path):
    r = subprocess.run([sys.executable, "-m", "edge_genre.train.accelerate", "pack", "--data",
                        str(tiny_dataset), "--out", str(tmp_path / "p"), "--sample-rate",
                        "22050"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == [r.stderr.strip().splitlines()[-1]]
    assert r.stderr.startswith("error: Opus takes a rate of")


def test_robust_teacher_refuses_missing_data(tmp_path):
    r = _job(["robust-teacher", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path)])
    assert r.returncode != 0 and r.stderr.startswith("error: dataset folder")


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="needs jax (the dev extra installs jax[cpu])")
def test_robust_teacher_two_steps(tiny_pack, tmp_path, room_bank_cache):
    from edge_genre.train import musicnn as M

    out = tmp_path / "robust"
    # --micro-batch 1: each step's gradient accumulated over two passes (the CPU's way).
    r = _job(["robust-teacher", "--data", str(tiny_pack), "--out", str(out), "--steps", "2",
              "--batch", "2", "--micro-batch", "1", "--copies", "1", "--stats-crops", "2", "--eval-crops", "2",
              "--workers", "1", "--precision", "fp32", "--checkpoint-every", "1",
              "--room-cache", str(room_bank_cache)], check_modules=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["musicnn-robust.npz", "robust-log.json"]
    log = json.loads((out / "robust-log.json").read_text())
    assert log["backend"] == "jax" and log["steps_done"] == 2 and log["stopped_by"] == "steps"
    assert len(log["losses"]) == 2 and log["config"]["batch"] == 2 and log["tracks"] == 4
    assert log["config"]["micro_batch"] == 1 and log["rooms"].startswith("roomsim.")
    trained, shipped = M.read_weights(out / "musicnn-robust.npz"), M.read_weights()
    moved = {k for k in shipped.arrays
             if not np.array_equal(trained.arrays[k], shipped.arrays[k])}
    assert moved and not any("moving_" in k for k in moved)  # batch-norm statistics frozen
    # Adam moves a weight by at most about lr a step: 2 steps of 1e-4.
    assert max(np.abs(trained.arrays[k] - shipped.arrays[k]).max() for k in moved) < 5e-4


def _two_yamnet_steps(body: str, pack: Path, out: Path, cache: Path, *extra: str):
    """robust-teacher on a YAMNet body for two steps of two crops (JAX, no TensorFlow on the
    path; the room bank read from ``cache``); returns (its log, the trained weights, YAMNet's
    own). ``extra``: more options."""
    from edge_genre.train import yamnet as Y
    from tests.conftest import YAMNET_TFLITE

    teacher = "--teacher" in extra
    yamnet = ["--start" if teacher else "--weights", str(YAMNET_TFLITE)]
    r = _job(["robust-teacher", "--body", body, "--data", str(pack), "--out", str(out),
              "--steps", "2", "--batch", "2", "--copies", "1", "--stats-crops", "2",
              "--eval-crops", "2", "--workers", "1", "--precision", "fp32", "--room-cache",
              str(cache), *yamnet, *extra],
             check_modules=True)
    assert r.returncode == 0, r.stderr[-2000:]
    log = json.loads((out / "robust-log.json").read_text())
    assert log["steps_done"] == 2 and log["config"]["body"] == body
    written = out / (f"{body}-musicnn.npz" if teacher else f"{body}-robust.npz")
    return log, Y.read_weights(written), Y.read_weights(YAMNET_TFLITE)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="needs jax (the dev extra installs jax[cpu])")
def test_robust_teacher_yamnet_two_steps(tiny_pack, tmp_path, room_bank_cache):
    """The same job on YAMNet's body: its own weights file, which YAMNet's reader loads, every
    layer moved a little by training, the target named in the log."""
    out = tmp_path / "robust"
    log, trained, original = _two_yamnet_steps("yamnet", tiny_pack, out, room_bank_cache)
    assert log["tracks"] == 4
    assert sorted(p.name for p in out.iterdir()) == ["robust-log.json", "yamnet-robust.npz"]
    assert "embedding (1024)" in log["target"]
    for a, b in zip(trained.layers, original.layers):
        diff = max(np.abs(a[k] - b[k]).max() for k in b)
        assert 0 < diff < 5e-4  # every layer learns; Adam: about lr a step


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="needs jax (the dev extra installs jax[cpu])")
def test_robust_teacher_student_learns_musicnn_moves_only_its_layers(tiny_pack, tmp_path,
                                                                    room_bank_cache):
    """``--body student --teacher musicnn``: the student's body (YAMNet's first 6 layers at
    20 ms) learns the room-robust musicnn's view of the clean crop, on a grid, with two-track
    mixes heard as further tracks; the file still holds a whole YAMNet, its layers 7-14 and
    classifier the starting ones, bit for bit."""
    log, trained, original = _two_yamnet_steps("student", tiny_pack, tmp_path / "robust",
                                               room_bank_cache, "--teacher", "musicnn",
                                               "--mixes", "2")
    assert log["tracks"] == 4 + 2 and log["teacher"] == "musicnn"
    assert log["teacher_weights"].endswith("musicnn-robust.npz")
    assert "penultimate (200)" in log["target"] and "0.96 s grid" in log["target"]
    for i, (a, b) in enumerate(zip(trained.layers, original.layers)):
        same = all(np.array_equal(a[k], b[k]) for k in b)
        assert same == (i >= 6), f"layer {i + 1}"
    assert np.array_equal(trained.logits_kernel, original.logits_kernel)


def test_robust_refuses_unknown_body(tmp_path):
    r = _job(["robust-teacher", "--body", "vggish", "--data", str(tmp_path), "--out",
              str(tmp_path)])
    assert r.returncode == 2 and "invalid choice: 'vggish'" in r.stderr


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="needs jax (the dev extra installs jax[cpu])")
def test_robust_teacher_out_of_time_still_writes(tiny_pack, tmp_path, room_bank_cache):
    """A budget spent before the first step: no step, and still weights and a log."""
    from edge_genre.train import musicnn as M

    out = tmp_path / "robust"
    r = _job(["robust-teacher", "--data", str(tiny_pack), "--out", str(out), "--batch", "2",
              "--copies", "1", "--stats-crops", "2", "--eval-crops", "2", "--workers", "1",
              "--precision", "fp32", "--max-seconds", "1", "--room-cache", str(room_bank_cache)])
    assert r.returncode == 0, r.stderr[-2000:]
    log = json.loads((out / "robust-log.json").read_text())
    assert log["steps_done"] == 0 and log["stopped_by"] == "max_seconds" and log["final"]
    trained, shipped = M.read_weights(out / "musicnn-robust.npz"), M.read_weights()
    assert all(np.array_equal(trained.arrays[k], v) for k, v in shipped.arrays.items())


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JAX, reason="needs jax (the dev extra installs jax[cpu])")
def test_paper_cv_one_fold_record(tiny_pack, tmp_path):
    from edge_genre.train.paper_cv import RECORD_OUT

    out = tmp_path / "cv"
    # The scratch preset stands in for paper (same generic loop; a paper epoch is minutes here).
    # --max-seconds 1: fold 1 always starts, fold 2 cannot finish in what is left.
    r = _job(["paper-cv", "--preset", "scratch", "--data", str(tiny_pack), "--out", str(out),
              "--cv", "2", "--folds", "1,2", "--epochs", "1", "--workers", "1", "--quiet",
              "--max-seconds", "1"])
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads((out / RECORD_OUT).read_text())
    # The keys of evaluate.cross_validate's record (what `evaluate --cv --out` writes).
    for key in ("method", "preset", "k", "seed", "grouping", "n_tracks", "epochs", "folds_run",
                "macs_per_window", "params", "track_accuracy_per_fold", "track_accuracy_mean",
                "track_accuracy_std", "window_accuracy_mean", "labels",
                "pooled_track_confusion", "feature_seconds", "wall_seconds", "per_fold", "rooms"):
        assert key in rec, key
    assert rec["rooms"] == {}  # no test rooms in the paper's CV
    assert rec["preset"] == "scratch" and rec["k"] == 2 and rec["folds_run"] == [1]
    assert rec["stopped_by"] == "max_seconds" and rec["machine"]["backend"] == "jax"
    fold = rec["per_fold"][0]
    assert fold["epochs_run"] == 1 and fold["fold_seconds"] > 0 and 0 <= fold["track_accuracy"] <= 1
    assert "16000 Hz" in rec["audio"]

    # The cut run finished by a second call (as run.sh's PAPER_ARGS='--folds 2'), then merged.
    out2 = tmp_path / "cv2"
    r = _job(["paper-cv", "--preset", "scratch", "--data", str(tiny_pack), "--out", str(out2),
              "--cv", "2", "--folds", "2", "--epochs", "1", "--workers", "1", "--quiet"])
    assert r.returncode == 0, r.stderr[-2000:]
    merged_path = tmp_path / "all.json"
    r = _job(["merge-cv", str(out / RECORD_OUT), str(out2 / RECORD_OUT), "--out", str(merged_path)])
    assert r.returncode == 0, r.stderr[-2000:]
    merged = json.loads(merged_path.read_text())
    second = json.loads((out2 / RECORD_OUT).read_text())
    accs = [rec["track_accuracy_per_fold"][0], second["track_accuracy_per_fold"][0]]
    assert merged["folds_run"] == [1, 2] and merged["stopped_by"] == "done"
    assert merged["track_accuracy_per_fold"] == accs
    assert merged["track_accuracy_mean"] == pytest.approx(np.mean(accs))
    assert np.sum(merged["pooled_track_confusion"]) == sum(
        f["test_tracks"] for f in merged["per_fold"])
    # The same fold twice, or a record of another cross-validation, is refused in one line.
    r = _job(["merge-cv", str(out / RECORD_OUT), str(out / RECORD_OUT), "--out", str(merged_path)])
    assert r.returncode == 2 and "more than one record" in r.stderr


def test_shim_imports_from_a_bare_checkout(tmp_path):
    """The lent machine runs from the checkout: the shim's links give ``edge_genre.*``."""
    shim = tmp_path / "shim"
    subprocess.run([sys.executable, str(REPO / "benchmarks/accelerator/shim.py"), str(shim)],
                   check=True, capture_output=True, timeout=60)
    code = ("import edge_genre.train.pack, edge_genre.train.musicnn as M, edge_genre.edge.audio;"
            "assert M.default_weights_path().is_file(); print(edge_genre.train.pack.__file__)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(shim)
    # -S: no site-packages, so not the editable install (numpy comes from the venv's path).
    import numpy
    env["PYTHONPATH"] += os.pathsep + str(Path(numpy.__file__).parents[1])
    r = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert str(shim) in r.stdout


def test_music_body_reads_other_weights(tmp_path, monkeypatch):
    from edge_genre.train import musicnn as M
    from edge_genre.train.backbones import get_backbone

    shipped = M.read_weights()
    other = M.MusicnnWeights({k: v + (1.0 if k == "logits/bias" else 0.0)
                              for k, v in shipped.arrays.items()})
    path = M.save_weights(other, tmp_path / "musicnn-robust.npz")
    b = get_backbone("musicnn")
    key = b.maps_key("settings", 1)
    monkeypatch.setenv(M.WEIGHTS_ENV, str(path))
    assert np.array_equal(b.read_weights().arrays["logits/bias"], other.arrays["logits/bias"])
    assert b.maps_key("settings", 1) != key  # maps of other weights are cached apart


def test_grid_is_a_multiple_of_both_hops():
    """The teacher's grid starts cut the same seconds in both front-ends, or are refused."""
    from edge_genre.train.robust_data import BODIES, grid_starts

    s, m = BODIES["student"], BODIES["musicnn"]
    # 30 s at 16 kHz: 1501 student frames (20 ms), 1876 musicnn frames (16 ms).
    assert grid_starts(0.96, s, m, 1501, 1876) == (48, 60, 28)
    assert grid_starts(0.08, s, m, 1501, 1876)[2] == 326  # 1 + (1501 - 199) // 4
    for bad in (0.0, 0.05, 0.5):
        with pytest.raises(DataError, match="multiple of both hops"):
            grid_starts(bad, s, m, 1501, 1876)
    with pytest.raises(DataError, match="shorter than one crop"):
        grid_starts(0.96, s, m, 150, 1876)


def test_mixes_pair_other_genres_at_the_first_tracks_level():
    from types import SimpleNamespace

    from edge_genre.train.robust_data import mix_pairs, mixed

    tracks = [SimpleNamespace(label=g) for g in (0, 0, 1, 2)]
    pairs = mix_pairs(tracks, 20, seed=0)
    assert len(pairs) == 20 and pairs == mix_pairs(tracks, 20, seed=0)
    assert all(tracks[i].label != tracks[j].label and 0.5 <= g <= 1.0 for i, j, g in pairs)
    assert mix_pairs(tracks[:2], 3, seed=0) == []  # one genre: nothing to mix
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(1000) * 0.1, rng.standard_normal(800) * 3.0
    y = mixed(a, b, 0.5)
    assert len(y) == 800 and y.dtype == np.float32
    assert np.isclose(np.sqrt(np.mean(y ** 2)), np.sqrt(np.mean(a[:800] ** 2)), rtol=1e-3)


def test_robust_refuses_a_teacher_it_cannot_pair(tmp_path):
    from edge_genre.train.robust import RobustConfig, run

    with pytest.raises(DataError, match="musicnn, for a yamnet or student body"):
        run(RobustConfig(str(tmp_path), str(tmp_path / "out"), body="student", teacher="yamnet"))


def test_teacher_targets_are_each_grid_crops_vector_row_for_row():
    """The grid's targets, computed several tracks a batch, belong to their own track and start."""
    from edge_genre.train.robust import teacher_targets

    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((300, 3)).astype(np.float32) for _ in range(7)]
    seen = []

    def teacher(x):  # a crop's "vector": its first frames, flattened
        seen.append(len(x))
        return x.reshape(len(x), -1)[:, :5]

    got = teacher_targets(teacher, inputs, t_step=10, crop=20, starts=12, batch=4)
    want = np.stack([[x[g * 10:g * 10 + 20].reshape(-1)[:5] for g in range(12)] for x in inputs])
    np.testing.assert_array_equal(got, want)
    assert set(seen) == {4}  # whole batches only
