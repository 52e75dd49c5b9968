"""Honest scores: window AND track accuracy, per genre, confusion matrix, and cross-validation.

A track's prediction is the mean of its windows' probabilities (what ``edge-genre predict`` does
with a whole file). Every report names the split that produced it. Cross-validation uses
``splits.cv_folds``: K folds by track, grouped by artist whenever an artist index is known,
validation carved from each fold's training part (whole artists), so the test fold only ever
scores a checkpoint it did not help choose.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_genre.errors import DataError, ModelError
from edge_genre.train.scores import Report, score


log = logging.getLogger("edge_genre")


def load_run(run_dir):
    """(keras model, ModelCard, RunRecord) of a model directory (``run_dir.read_run``)."""
    from edge_genre.train.fit import setup_keras
    from edge_genre.train.run_dir import load_model, read_run

    run = read_run(run_dir)
    setup_keras(0)
    return load_model(run), run.card, run.record


def evaluate_model(model_or_run_dir, windows, split: str = "given windows", labels=None,
                   frontend=None) -> Report:
    """Score a model on UNNORMALISED ``features.LabelledWindows``.

    Parameters
    ----------
    model_or_run_dir : a model directory (its card gives labels and normalisation) or a Keras
        model (then ``labels`` and ``frontend`` with the training mean/std are needed; with
        ``frontend=None`` the windows are taken as already normalised).
    windows : from ``features.load_windows`` with the model's front-end and window settings.
    split : which tracks these are, stated on the report.
    """
    from edge_genre.train.fit import predict

    if isinstance(model_or_run_dir, (str, Path)):
        model, card, _ = load_run(model_or_run_dir)
        labels, frontend = card.labels, card.frontend
    else:
        model = model_or_run_dir
    if labels is None:
        raise ModelError("evaluate_model needs the labels of a bare Keras model")
    x = windows.normalized(frontend) if frontend is not None else windows.x
    return score(predict(model, x), windows, labels, split)


def _remap(ds, labels):
    """Tracks of ``ds`` relabelled to the model's label order (genres it lacks are refused)."""
    from edge_genre.train.data import Track

    missing = sorted(set(ds.labels) - set(labels))
    if missing:
        raise DataError(f"the model has no label for genre(s) {', '.join(missing)}")
    return [Track(t.path, t.genre, list(labels).index(t.genre), t.track_id, t.artist)
            for t in ds.tracks]


def evaluate_run_dir(run_dir, data, split: str = "run", seed: int | None = None,
                     cache_dir=None, progress: bool = True) -> Report:
    """Score a model directory on a dataset.

    ``split``: "run" = the test tracks recorded in the run's run.json (falls back to every track
    when none of them is in ``data``: a different dataset); "all" = every track; "artist" /
    "track" / "fault-filtered" = the test part of that split of ``data`` made with ``seed``
    (default: the run's seed).
    """
    from edge_genre.train.data import discover
    from edge_genre.train.features import load_windows
    from edge_genre.train.splits import make_split

    model, card, record = load_run(run_dir)
    ds = discover(data)
    tracks = _remap(ds, card.labels)
    if split == "run":
        test_ids = set(record.split.test)
        chosen = [t for t in tracks if t.track_id in test_ids]
        if chosen:
            what = (f"test part of the run's {record.split.name} split "
                    f"({record.split.description}), {len(chosen)} tracks")
        else:
            chosen = tracks
            what = f"all {len(tracks)} tracks of {ds.root} (none is in the run's split)"
    elif split == "all":
        chosen, what = tracks, f"all {len(tracks)} tracks of {ds.root}"
    else:
        ds.tracks = tracks
        ds.labels = tuple(card.labels)
        s = make_split(ds, split, seed if seed is not None else int(
            record.settings.get("seed", 0)))
        chosen, what = s.test, f"test part of the {s.name} split ({s.description})"
    if not chosen:
        raise DataError("no tracks to evaluate")
    windows = load_windows(chosen, card.frontend, card.window, cache_dir=cache_dir)
    if len(windows) == 0:
        raise DataError("no usable windows in the chosen tracks")
    return evaluate_model(model, windows, what, labels=card.labels, frontend=card.frontend)


# ----------------------------------------------------------------------------- cross-validation


def _room_names(room) -> tuple[str, ...]:
    """``room`` as condition names: True = ``roomsim.DEFAULT_TEST_ROOMS``, a string is parsed."""
    from edge_genre.train import roomsim

    if room is True:
        return roomsim.DEFAULT_TEST_ROOMS
    if not room:
        return ()
    return roomsim.parse_conditions(room if isinstance(room, str) else ",".join(room))


@dataclass
class FoldRun:
    """One fold of a preset's cross-validation, trained and scored (``train_fold``)."""

    fold: Any  # splits.Fold
    labels: Any  # the dataset's genre names
    train: Any  # the fold's features.LabelledWindows, unnormalised
    valid: Any
    test: Any
    frontend: Any  # the preset's, normalised with the fold's training windows
    outcome: Any  # fit.FitOutcome
    report: Report | None = None  # of the test windows (``train_fold`` sets it)

    def score(self, windows, split: str) -> Report:
        """The fold's model on UNNORMALISED ``windows`` (normalised as its training windows)."""
        from edge_genre.train.fit import predict

        return score(predict(self.outcome.model, windows.normalized(self.frontend)), windows,
                     self.labels, split)

    def result(self, room_track_accuracy, **extra) -> dict:
        """The fold's entry in a CV record's "per_fold"; ``extra`` (``paper_cv``'s timings)
        after "train_seconds"."""
        return {"fold": self.fold.index + 1, "train_tracks": len(self.train.tracks),
                "valid_tracks": len(self.valid.tracks), "test_tracks": len(self.test.tracks),
                "test_ids": [t.track_id for t in self.test.tracks],
                "track_accuracy": self.report.track_accuracy,
                "window_accuracy": self.report.window_accuracy,
                "best_epoch": self.outcome.best_epoch, "epochs_run": len(self.outcome.history),
                "train_seconds": round(self.outcome.train_seconds, 1), **extra,
                "room_track_accuracy": room_track_accuracy, "history": self.outcome.history}


def train_fold(preset, labels, windows, fold, k: int, seed: int, epochs: int | None = None,
               progress: bool = True, cache_dir=None) -> FoldRun:
    """Train ``preset`` afresh on ``fold`` of UNNORMALISED ``windows`` (every track's): seeded
    ``seed + fold``, normalisation from the fold's training windows, the best epoch on its
    validation windows; then score its test windows. What ``cross_validate`` and ``paper_cv``
    both do with a fold."""
    from edge_genre.train.features import normalization_stats
    from edge_genre.train.fit import fit_model

    train, valid, test = (windows.select(fold.train), windows.select(fold.valid),
                          windows.select(fold.test))
    mean, std = normalization_stats(train.x)
    fe = preset.frontend.with_normalization(mean, std)
    outcome = fit_model(preset, len(labels), train, valid, fe, epochs=epochs,
                        seed=seed + fold.index, progress=progress,
                        desc=f"fold {fold.index + 1}/{k} ", cache_dir=cache_dir)
    run = FoldRun(fold, labels, train, valid, test, fe, outcome)
    run.report = run.score(test, f"fold {fold.index + 1} of {k}")
    return run


def cv_record(preset, ds, grouping: str, k: int, seed: int, epochs: int | None, limit,
              results: list[dict], macs, params, pooled_cm, feature_seconds: float, t0: float,
              rooms: dict | None = None) -> dict:
    """The record of a preset's cross-validation (what ``evaluate --cv --out`` writes) from its
    folds' ``FoldRun.result``; ``rooms``: {name: description} of the test rooms whose accuracy
    each fold's ``room_track_accuracy`` holds ("<name>_track_accuracy_mean" etc.)."""
    accs = [r["track_accuracy"] for r in results]
    window_accs = [r["window_accuracy"] for r in results]
    room_fields = {"rooms": dict(rooms or {})}
    for name in room_fields["rooms"]:
        per_fold = [r["room_track_accuracy"][name] for r in results]
        room_fields[f"{name}_track_accuracy_per_fold"] = per_fold
        room_fields[f"{name}_track_accuracy_mean"] = float(np.mean(per_fold)) if per_fold else None
        room_fields[f"{name}_track_accuracy_std"] = float(np.std(per_fold)) if per_fold else None
    return {"method": f"preset {preset.name}: {preset.description}", **room_fields,
            "preset": preset.name, "k": k, "seed": seed, "grouping": grouping,
            "n_tracks": len(ds.tracks), "limit_per_genre": limit,
            "epochs": epochs or preset.train.epochs,
            "folds_run": [r["fold"] for r in results],
            "macs_per_window": macs, "params": params,
            "track_accuracy_per_fold": accs, "window_accuracy_per_fold": window_accs,
            "track_accuracy_mean": float(np.mean(accs)) if accs else None,
            "track_accuracy_std": float(np.std(accs)) if accs else None,
            "window_accuracy_mean": float(np.mean(window_accs)) if window_accs else None,
            "window_accuracy_std": float(np.std(window_accs)) if window_accs else None,
            "labels": list(ds.labels), "pooled_track_confusion": pooled_cm.tolist(),
            "feature_seconds": round(feature_seconds, 1),
            "wall_seconds": round(time.perf_counter() - t0, 1), "per_fold": results}


def cross_validate(preset_name, dataset, k: int = 5, seed: int = 0, cache_dir=None,
                   epochs: int | None = None, limit: int | None = None, folds=None,
                   progress: bool = True, room=()) -> dict:
    """K-fold cross-validation of a preset, artist-grouped when the dataset knows its artists.

    Each fold trains a fresh network on the fold's training tracks (normalisation from them),
    picks the checkpoint on the fold's validation tracks and scores the test fold. Returns a
    JSON-ready dict: per-fold and mean +- std track (and window) accuracy, MACs and params.
    ``folds`` restricts the run to some fold indices (for a partial run on a slow preset).
    ``room``: test rooms (``roomsim.TEST_CONDITIONS`` names, e.g. ("near", "far"); True = both)
    through which each fold's test tracks are also scored, the same room per track for every
    model: "<name>_track_accuracy_mean" etc., and "rooms" describing each.
    """
    from edge_genre.train import macs as macs_mod
    from edge_genre.train.data import Dataset, discover
    from edge_genre.train.features import load_windows
    from edge_genre.train.presets import get_preset
    from edge_genre.train.roomsim import RoomCopy
    from edge_genre.train.splits import cv_folds, describe_grouping

    preset = get_preset(preset_name) if isinstance(preset_name, str) else preset_name
    ds = dataset if isinstance(dataset, Dataset) else discover(dataset)
    if limit:
        ds = ds.subset(int(limit))
    all_folds = cv_folds(ds, k, seed)
    rooms = {name: RoomCopy(name) for name in _room_names(room)}
    t0 = time.perf_counter()
    all_windows = load_windows(ds.tracks, preset.frontend, preset.window, cache_dir=cache_dir)
    room_windows = {name: load_windows(ds.tracks, preset.frontend, preset.window,
                                       cache_dir=cache_dir, room=copy)
                    for name, copy in rooms.items()}
    feature_seconds = time.perf_counter() - t0

    results, pooled_cm = [], np.zeros((len(ds.labels), len(ds.labels)), dtype=int)
    macs = params = None
    for fold in all_folds:
        if folds is not None and fold.index not in folds:
            continue
        trained = train_fold(preset, ds.labels, all_windows, fold, k, seed, epochs, progress,
                             cache_dir)
        rep = trained.report
        macs, params = macs_mod.count(trained.outcome.model)
        pooled_cm += np.array(rep.confusion)
        room_accs = {name: trained.score(windows.select(fold.test),
                                         f"fold {fold.index + 1} of {k}, {name} room"
                                         ).track_accuracy
                     for name, windows in room_windows.items()}
        results.append(trained.result(room_accs))
        log.info("fold %d/%d: track accuracy %.1f%%, window accuracy %.1f%% (%d test tracks)%s",
                 fold.index + 1, k, 100 * rep.track_accuracy, 100 * rep.window_accuracy,
                 len(trained.test.tracks), "".join(f", {n} room {100 * a:.1f}%"
                                                   for n, a in room_accs.items()))
        import keras
        keras.backend.clear_session()
    return cv_record(preset, ds, describe_grouping(ds), k, seed, epochs, limit, results, macs,
                     params, pooled_cm, feature_seconds, t0,
                     {name: copy.describe(preset.frontend.sample_rate)
                      for name, copy in rooms.items()})


def cross_validate_baseline(dataset, k: int = 5, seed: int = 0, cache_dir=None,
                            limit: int | None = None) -> dict:
    """MFCC+SVM on the same folds as ``cross_validate`` (same dataset, k and seed)."""
    from edge_genre.train import baseline
    from edge_genre.train.data import Dataset, discover
    from edge_genre.train.splits import describe_grouping

    ds = dataset if isinstance(dataset, Dataset) else discover(dataset)
    if limit:
        ds = ds.subset(int(limit))
    t0 = time.perf_counter()
    out = baseline.cross_validate(ds, k, seed, cache_dir=cache_dir)
    out.update({"preset": "baseline", "grouping": describe_grouping(ds),
                "n_tracks": len(ds.tracks), "limit_per_genre": limit,
                "macs_per_window": None, "params": None,
                "wall_seconds": round(time.perf_counter() - t0, 1)})
    return out


def cv_text(result: dict) -> str:
    """One paragraph for the terminal."""
    accs = result["track_accuracy_per_fold"]
    lines = [f"{result['k']}-fold cross-validation ({result['grouping']}, seed {result['seed']}, "
             f"{result['n_tracks']} tracks): {result['method']}",
             "track accuracy per fold: " + ", ".join(f"{a:.1%}" for a in accs),
             f"track accuracy {result['track_accuracy_mean']:.1%} +- "
             f"{result['track_accuracy_std']:.1%} (mean +- std over folds)"]
    if result.get("window_accuracy_mean") is not None:
        lines.append(f"window accuracy {result['window_accuracy_mean']:.1%} +- "
                     f"{result['window_accuracy_std']:.1%}")
    for name in result.get("rooms") or {}:
        lines.append(f"through the {name} test room: track accuracy "
                     f"{result[f'{name}_track_accuracy_mean']:.1%} +- "
                     f"{result[f'{name}_track_accuracy_std']:.1%} ("
                     + ", ".join(f"{a:.1%}" for a in result[f"{name}_track_accuracy_per_fold"])
                     + ")")
    if result.get("macs_per_window"):
        lines.append(f"model: {result['params']:,} params, {result['macs_per_window']:,} MACs "
                     "per window")
    return "\n".join(lines)


def cv_table(results: list[dict]) -> str:
    """Several cross-validations on the same folds, one row each: accuracy beside cost."""
    def acc(r, key):
        if r.get(f"{key}_mean") is None:
            return "-"
        return f"{100 * r[f'{key}_mean']:.1f} % +- {100 * r[f'{key}_std']:.1f}"

    rooms = list(dict.fromkeys(n for r in results for n in (r.get("rooms") or {})))
    rows = [("model", "track accuracy", "per fold", *(f"{n} room" for n in rooms), "params",
             "MACs / window")]
    for r in results:
        folds = " ".join(f"{100 * a:.1f}" for a in r["track_accuracy_per_fold"])
        params = f"{r['params']:,}" if r.get("params") else "-"
        macs = f"{r['macs_per_window'] / 1e6:,.1f} M" if r.get("macs_per_window") else "-"
        rows.append((r["preset"], acc(r, "track_accuracy"), folds,
                     *(acc(r, f"{n}_track_accuracy") for n in rooms), params, macs))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)
