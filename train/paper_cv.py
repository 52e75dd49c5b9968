"""Cross-validate the ``paper`` preset (30 epochs, five artist-grouped folds) on an accelerator.

The same folds, seeds, training loop and scoring as ``edge-genre evaluate --cv 5 --preset
paper`` (``evaluate.cross_validate``; both train a fold with ``evaluate.train_fold`` and write
``evaluate.cv_record``): folds from ``splits.cv_folds`` (read from the pack's
manifest where scikit-learn is missing), a fresh network per fold seeded ``seed + fold``,
normalisation from the fold's training windows, the best epoch on validation accuracy, track
accuracy of the test fold. About 20 minutes an epoch on a 2-core CPU, hence this job.

What differs is only what a lent machine needs: the front-end runs in worker processes before
Keras is imported, Keras runs on JAX or PyTorch (``KERAS_BACKEND``; JAX when unset), and the
record (``paper-cv.json``, the keys ``evaluate --cv --out`` writes plus per-fold seconds) is
rewritten after every fold, so a run cut by a time limit keeps its finished folds.
``max_seconds`` starts no fold that the previous fold's time says cannot finish.
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_genre.errors import DataError

RECORD_OUT = "paper-cv.json"


@dataclass(frozen=True)
class PaperCVConfig:
    """The paper preset's cross-validation job."""

    data: str  # a pack (``train/pack.py``) or a dataset folder
    out: str  # output folder
    preset: str = "paper"  # any preset with the generic loop (the tests use "scratch")
    k: int = 5
    seed: int = 0
    folds: tuple[int, ...] | None = None  # 1-based fold numbers to run (default: all)
    epochs: int | None = None  # default: the preset's 30
    limit: int | None = None  # the first N tracks of each genre (short runs)
    max_seconds: float | None = None  # whole-job budget; no fold starts that cannot finish
    precision: str = "fp32"  # "fp32" (the paper's) or "bf16" (mixed bfloat16)
    workers: int | None = None  # front-end processes (default: all cores)
    progress: bool = True  # per-epoch lines (and bars, every 15 s off a terminal)


_FRONTEND = None


def _init_worker(frontend, window) -> None:
    global _FRONTEND
    _FRONTEND = (frontend, window)


def _track_windows(track):
    from edge_genre.errors import AudioError
    from edge_genre.train.features import track_features

    try:
        return track_features(track, *_FRONTEND)
    except AudioError as exc:
        return str(exc)


def windows_parallel(tracks, frontend, window, workers: int | None):
    """``features.load_windows`` of ``tracks`` (no cache), a track per task over processes."""
    import multiprocessing as mp

    from edge_genre.train.features import gather_windows

    workers = max(1, min(int(workers or os.cpu_count() or 1), len(tracks)))
    if workers == 1:
        _init_worker(frontend, window)
        results = [_track_windows(t) for t in tracks]
    else:
        with mp.get_context("fork").Pool(workers, _init_worker, (frontend, window)) as pool:
            results = pool.map(_track_windows, tracks, chunksize=1)
    windows = gather_windows(zip(tracks, results), frontend, window)
    if not windows.tracks:
        raise DataError("no usable windows in the dataset")
    return windows


def _audio_note(data, preset) -> str:
    """Where the audio came from, and what a pack's rate takes from the preset's band."""
    from edge_genre.train.pack import is_pack, read_manifest

    if not is_pack(data):
        return f"the original files of {data}"
    sr = read_manifest(data)["sample_rate"]
    note = f"an Opus pack at {sr} Hz, resampled to the preset's {preset.frontend.sample_rate} Hz"
    if sr < preset.frontend.sample_rate:
        note += f": no content above {sr // 2} Hz (the preset's band reaches " \
                f"{preset.frontend.max_frequency:g} Hz)"
    return note


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1) + "\n")
    tmp.replace(path)


def run(cfg: PaperCVConfig, log=print) -> dict:
    """Run the job; returns the record it wrote. DataError for bad data or settings."""
    from edge_genre.train.pack import dataset_folds, load_dataset
    from edge_genre.train.presets import get_preset

    t0 = time.perf_counter()
    if cfg.precision not in ("bf16", "fp32"):
        raise DataError(f"precision is bf16 or fp32, not {cfg.precision!r}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    preset = get_preset(cfg.preset)
    if preset.fit is not None:
        raise DataError(f"paper-cv trains presets with the generic loop (paper, scratch), "
                        f"not {preset.name}")
    ds = load_dataset(cfg.data, cfg.limit)
    folds, grouping = dataset_folds(cfg.data, ds, cfg.k, cfg.seed)
    wanted = set(range(1, len(folds) + 1)) if cfg.folds is None else set(cfg.folds)
    bad = sorted(wanted - set(range(1, len(folds) + 1)))
    if bad:
        raise DataError(f"there are folds 1-{len(folds)}, not {', '.join(map(str, bad))}")
    all_windows = windows_parallel(ds.tracks, preset.frontend, preset.window, cfg.workers)
    feature_seconds = time.perf_counter() - t0
    log(f"paper-cv: {len(all_windows)} windows of {len(all_windows.tracks)} tracks in "
        f"{feature_seconds:.0f} s")

    os.environ.setdefault("KERAS_BACKEND", "jax")
    from edge_genre.train import macs as macs_mod
    from edge_genre.train.evaluate import cv_record, train_fold
    from edge_genre.train.fit import setup_keras
    from edge_genre.train.robust import backend_device

    keras = setup_keras(cfg.seed)
    if cfg.precision == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    machine = {"backend": keras.backend.backend(), "device": backend_device(keras),
               "keras": keras.__version__, "python": platform.python_version(),
               "cpus": os.cpu_count(), "precision": cfg.precision}
    results, macs, params = [], None, None
    pooled_cm = np.zeros((len(ds.labels), len(ds.labels)), dtype=int)
    stopped, last_fold_seconds = None, 0.0

    def write() -> dict:
        # No test rooms here: "rooms" is empty, as in evaluate --cv without --room.
        record = cv_record(preset, ds, grouping, cfg.k, cfg.seed, cfg.epochs, cfg.limit,
                           results, macs, params, pooled_cm, feature_seconds, t0)
        record.update(job="paper-cv", machine=machine, config=asdict(cfg), stopped_by=stopped,
                      audio=_audio_note(cfg.data, preset),
                      skipped=[[str(p), r] for p, r in all_windows.skipped])
        _write_json(out / RECORD_OUT, record)
        return record

    for fold in folds:
        if fold.index + 1 not in wanted:
            continue
        if (cfg.max_seconds is not None and last_fold_seconds
                and time.perf_counter() - t0 + 1.1 * last_fold_seconds > cfg.max_seconds):
            stopped = "max_seconds"
            break
        f0 = time.perf_counter()
        trained = train_fold(preset, ds.labels, all_windows, fold, cfg.k, cfg.seed,
                             cfg.epochs, cfg.progress)
        rep = trained.report
        macs, params = macs_mod.count(trained.outcome.model)
        pooled_cm += np.array(rep.confusion)
        last_fold_seconds = time.perf_counter() - f0
        epoch_secs = [m["seconds"] for m in trained.outcome.history]
        results.append(trained.result(
            None, fold_seconds=round(last_fold_seconds, 1),
            first_epoch_seconds=epoch_secs[0] if epoch_secs else None,
            median_epoch_seconds=float(np.median(epoch_secs[1:] or epoch_secs))
            if epoch_secs else None))
        write()
        log(f"paper-cv fold {fold.index + 1}/{cfg.k}: track accuracy "
            f"{100 * rep.track_accuracy:.1f} % ({len(trained.test.tracks)} tracks), "
            f"{last_fold_seconds:.0f} s")
        keras.backend.clear_session()
    stopped = stopped or "done"
    record = write()
    log(f"paper-cv: folds {record['folds_run']} ({stopped}); wrote {out / RECORD_OUT}")
    return record



def merge(records: list[dict]) -> dict:
    """One record from records of disjoint folds of the same cross-validation (a run cut by a
    time limit, finished by another call with ``--folds``): per-fold results in fold order,
    means, spreads and the pooled confusion recomputed. DataError when the records do not belong
    together (preset, k, seed, tracks or epochs differ) or share a fold."""
    if not records:
        raise DataError("nothing to merge")
    same = ("preset", "k", "seed", "n_tracks", "epochs", "labels", "grouping")
    first = records[0]
    for r in records[1:]:
        differ = [key for key in same if r.get(key) != first.get(key)]
        if differ:
            raise DataError(f"these records are not one cross-validation ({', '.join(differ)} "
                            f"differ)")
    per_fold = sorted((f for r in records for f in r["per_fold"]), key=lambda f: f["fold"])
    numbers = [f["fold"] for f in per_fold]
    if len(set(numbers)) != len(numbers):
        raise DataError(f"a fold is in more than one record (folds {numbers})")
    accs = [f["track_accuracy"] for f in per_fold]
    window_accs = [f["window_accuracy"] for f in per_fold]
    out = dict(first)
    out.update(
        folds_run=numbers, per_fold=per_fold,
        track_accuracy_per_fold=accs, window_accuracy_per_fold=window_accs,
        track_accuracy_mean=float(np.mean(accs)), track_accuracy_std=float(np.std(accs)),
        window_accuracy_mean=float(np.mean(window_accs)),
        window_accuracy_std=float(np.std(window_accs)),
        pooled_track_confusion=np.sum([r["pooled_track_confusion"] for r in records],
                                      axis=0).tolist(),
        feature_seconds=round(sum(r.get("feature_seconds") or 0 for r in records), 1),
        wall_seconds=round(sum(r.get("wall_seconds") or 0 for r in records), 1),
        stopped_by="done" if len(numbers) == first["k"] else "partial",
        merged_from=[{"folds_run": r["folds_run"], "stopped_by": r.get("stopped_by"),
                      "wall_seconds": r.get("wall_seconds")} for r in records])
    return out
