"""Knowledge distillation: the ``scratch`` network learns genres AND the YAMNet teacher's embedding.

The student is the ``scratch`` preset's separable CNN with a second output head ("embedding", a
linear Dense on the pooled features) that regresses the teacher's mean-pooled YAMNet embedding
of the same window, reduced by a PCA fitted on the fold's TRAINING windows only and whitened
(unit variance per component). Loss = CE(labels, label smoothing as the preset) + lambda * MSE.
Training windows are augmented with ``augment.augment_batch``; the embedding target travels
with the one-hot labels, so mixup mixes it alike.

The two front-ends cut their windows at the same starts in seconds (4 s, hop 2 s), so window i
of a track in the scratch front-end is window i in the teacher's. ``align`` checks the per-track
counts and drops a track whose counts differ (logged).

The genre-only classifier (``student.classifier``) is an ordinary scratch model: same input, same
softmax output, exportable like any other.

CLI (cross-validation)::

    python -m edge_genre.train.distill DATA --cache /work/cache --epochs 6 --out cv.json
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_genre.errors import DataError
from edge_genre.train.augment import augment_batch
from edge_genre.train.data import Dataset, Track
from edge_genre.train.features import LabelledWindows, load_windows, normalization_stats

log = logging.getLogger("edge_genre")


@dataclass(frozen=True)
class DistillConfig:
    """lam: weight of the embedding MSE; dims: PCA components kept (whitened)."""

    lam: float = 1.0
    dims: int = 64
    epochs: int | None = None  # None: the scratch preset's


@dataclass
class Aligned:
    """Scratch-preset windows and, row for row, the teacher's mean-pooled embedding of the same
    window."""

    windows: LabelledWindows
    teacher: np.ndarray  # (n, 1024) float32
    dropped: list[tuple[str, str]] = field(default_factory=list)


def align(tracks: list[Track], scratch_windows: LabelledWindows, maps) -> Aligned:
    """Pair scratch-preset windows with teacher maps per track (``maps``: transfer.Maps). Tracks
    missing from either side, or whose window counts differ, are dropped."""
    from edge_genre.train.transfer import pool

    emb = pool(maps.maps, "mean")
    e_idx = {t.track_id: i for i, t in enumerate(scratch_windows.tracks)}
    m_idx = {t.track_id: i for i, t in enumerate(maps.tracks)}
    xs, ys, owners, embs, kept, dropped = [], [], [], [], [], []
    for t in tracks:
        if t.track_id not in e_idx or t.track_id not in m_idx:
            dropped.append((t.track_id, "missing in one front-end"))
            continue
        ex = scratch_windows.x[scratch_windows.track == e_idx[t.track_id]]
        me = emb[maps.track == m_idx[t.track_id]]
        if len(ex) != len(me) or len(ex) == 0:
            dropped.append((t.track_id, f"window counts differ: scratch {len(ex)}, teacher {len(me)}"))
            continue
        xs.append(ex)
        embs.append(me)
        ys.append(np.full(len(ex), t.label))
        owners.append(np.full(len(ex), len(kept)))
        kept.append(t)
    for tid, why in dropped:
        log.warning("distill: dropped %s (%s)", tid, why)
    if not kept:
        raise DataError("no track has aligned windows in both front-ends")
    w = LabelledWindows(np.concatenate(xs), np.concatenate(ys).astype(int),
                np.concatenate(owners).astype(int), kept)
    return Aligned(w, np.concatenate(embs).astype(np.float32), dropped)


def load_aligned(tracks: list[Track], cache_dir=None, weights=None) -> Aligned:
    """Scratch-preset windows and teacher embeddings of ``tracks`` (both cached)."""
    from edge_genre.train.presets import SCRATCH
    from edge_genre.train.transfer import backbone_maps

    ew = load_windows(tracks, SCRATCH.frontend, SCRATCH.window, cache_dir=cache_dir)
    maps = backbone_maps(tracks, weights, cache_dir)
    return align(tracks, ew, maps)


def subset(a: Aligned, tracks: list[Track]) -> Aligned:
    """The rows of ``tracks`` (those present), owners renumbered."""
    return Aligned(a.windows.select(tracks), a.teacher[a.windows.row_mask(tracks)])


def build_student(n_labels: int, input_shape: tuple, dims: int):
    """(student with outputs [genre, embedding], classifier with the genre output only)."""
    import keras
    from keras import layers as L

    from edge_genre.train.presets import build_scratch

    base = build_scratch(n_labels, input_shape)
    feats = base.get_layer("dropout").output
    emb = L.Dense(dims, name="embedding")(feats)
    student = keras.Model(base.input, [base.output, emb], name="scratch_student")
    return student, base


@dataclass
class StudentOutcome:
    model: Any  # the classifier (genre softmax only)
    student: Any
    history: list[dict]
    best_epoch: int
    train_seconds: float
    pca: Any


def fit_student(train: Aligned, valid: Aligned | None, n_labels: int,
                cfg: DistillConfig = DistillConfig(), seed: int = 0, progress: bool = True,
                desc: str = "") -> StudentOutcome:
    """Train the student on ``train`` (normalisation and PCA from it); keep the best epoch by
    validation track accuracy. Returns the classifier ready for normalised scratch-preset features."""
    import keras
    from sklearn.decomposition import PCA

    from edge_genre.train.scores import track_accuracy, window_accuracy
    from edge_genre.train.fit import compile_model, predict, setup_keras
    from edge_genre.train.presets import SCRATCH

    preset = SCRATCH
    tc = preset.train
    epochs = int(cfg.epochs or tc.epochs)
    setup_keras(seed)
    mean, std = normalization_stats(train.windows.x)
    fe = preset.frontend.with_normalization(mean, std)
    x_train = train.windows.normalized(fe)
    dims = int(min(cfg.dims, len(x_train), train.teacher.shape[1]))
    pca = PCA(n_components=dims, whiten=True, random_state=seed).fit(train.teacher)
    t_train = pca.transform(train.teacher).astype(np.float32)

    student, classifier = build_student(n_labels, preset.input_shape, dims)
    steps = max(1, int(np.ceil(len(x_train) / tc.batch_size)))
    compile_model(classifier, tc, steps, epochs)  # builds the optimizer with the preset's schedule
    student.compile(optimizer=classifier.optimizer,
                    loss=[keras.losses.CategoricalCrossentropy(label_smoothing=tc.label_smoothing),
                          keras.losses.MeanSquaredError()],
                    loss_weights=[1.0, float(cfg.lam)])
    rng = np.random.default_rng(seed)
    onehot = np.eye(n_labels, dtype=np.float32)
    x_valid = valid.windows.normalized(fe) if valid is not None and len(valid.windows) else None
    history, best = [], (None, None, 0)
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        e0 = time.perf_counter()
        order = rng.permutation(len(x_train))
        losses, sizes = [], []
        for s in range(steps):
            idx = order[s * tc.batch_size:(s + 1) * tc.batch_size]
            yt = np.concatenate([onehot[train.windows.y[idx]], t_train[idx]], axis=1)
            xb, yb = augment_batch(x_train[idx], yt, rng, tc.augment)
            out = student.train_on_batch(xb, [yb[:, :n_labels], yb[:, n_labels:]])
            losses.append(float(np.ravel(out)[0]))
            sizes.append(len(idx))
        m = {"epoch": epoch, "loss": float(np.average(losses, weights=sizes)),
             "seconds": round(time.perf_counter() - e0, 2)}
        if x_valid is not None:
            probs = predict(classifier, x_valid)
            m["val_accuracy"] = window_accuracy(probs, valid.windows.y)
            m["val_track_accuracy"] = track_accuracy(probs, valid.windows.track, valid.windows.y)
            key = (m["val_track_accuracy"], m["val_accuracy"])
        else:
            key = (epoch,)
        history.append(m)
        if best[0] is None or key > best[0]:
            best = (key, student.get_weights(), epoch)
        if progress:
            print(f"{desc}epoch {epoch}/{epochs} ({m['seconds']:.0f} s): "
                  + " ".join(f"{k} {v:.3f}" for k, v in m.items() if k not in ("epoch", "seconds"))
                  + ("  *best" if best[2] == epoch else ""), file=sys.stderr, flush=True)
    student.set_weights(best[1])
    return StudentOutcome(classifier, student, history, best[2], time.perf_counter() - t0, pca)


def cross_validate(ds: Dataset, k: int = 5, seed: int = 0, cfg: DistillConfig = DistillConfig(),
                   cache_dir=None, folds=None, progress: bool = True, out: Path | None = None,
                   command: str = "") -> dict:
    """Artist-grouped K-fold CV (``splits.cv_folds``) of the student; writes ``out`` after
    every fold so a partial run still leaves its folds."""
    import keras

    from edge_genre.train.scores import score
    from edge_genre.train.fit import predict
    from edge_genre.train.presets import SCRATCH
    from edge_genre.train.splits import cv_folds, describe_grouping

    t0 = time.perf_counter()
    allw = load_aligned(ds.tracks, cache_dir)
    results = []
    rec: dict = {}
    for fold in cv_folds(ds, k, seed):
        if folds is not None and fold.index not in folds:
            continue
        tr, va, te = subset(allw, fold.train), subset(allw, fold.valid), subset(allw, fold.test)
        o = fit_student(tr, va, len(ds.labels), cfg, seed=seed + fold.index, progress=progress,
                        desc=f"fold {fold.index + 1}/{k} ")
        mean, std = normalization_stats(tr.windows.x)
        fe = SCRATCH.frontend.with_normalization(mean, std)
        rep = score(predict(o.model, te.windows.normalized(fe)), te.windows, ds.labels,
                    f"fold {fold.index + 1} of {k}")
        results.append({"fold": fold.index + 1, "train_tracks": len(tr.windows.tracks),
                        "valid_tracks": len(va.windows.tracks),
                        "test_tracks": len(te.windows.tracks),
                        "track_accuracy": rep.track_accuracy, "window_accuracy": rep.window_accuracy,
                        "best_epoch": o.best_epoch, "train_seconds": round(o.train_seconds, 1),
                        "history": o.history})
        log.info("fold %d/%d: track accuracy %.1f%%", fold.index + 1, k, 100 * rep.track_accuracy)
        keras.backend.clear_session()
        accs = [r["track_accuracy"] for r in results]
        window_accs = [r["window_accuracy"] for r in results]
        rec = {"method": "distilled student: scratch separable CNN + embedding head regressing the "
                         "YAMNet teacher's mean-pooled embedding (PCA on train windows, whitened); "
                         "loss CE + lam * MSE; augmented windows",
               "preset": "scratch-student", "k": k, "seed": seed, "grouping": describe_grouping(ds),
               "n_tracks": len(ds.tracks), "aligned_tracks": len(allw.windows.tracks),
               "dropped_tracks": [list(d) for d in allw.dropped],
               "settings": {"lam": cfg.lam, "dims": cfg.dims,
                            "epochs": cfg.epochs or SCRATCH.train.epochs,
                            "train": SCRATCH.train.to_dict()},
               "folds_run": [r["fold"] for r in results],
               "track_accuracy_per_fold": accs, "window_accuracy_per_fold": window_accs,
               "track_accuracy_mean": float(np.mean(accs)),
               "track_accuracy_std": float(np.std(accs)),
               "window_accuracy_mean": float(np.mean(window_accs)),
               "window_accuracy_std": float(np.std(window_accs)),
               "wall_seconds": round(time.perf_counter() - t0, 1), "command": command,
               "per_fold": results}
        if out is not None:
            Path(out).write_text(json.dumps(rec, indent=1) + "\n")
    return rec


def main(argv=None) -> int:
    import argparse
    import shlex

    from edge_genre.train.data import discover

    p = argparse.ArgumentParser(prog="python -m edge_genre.train.distill")
    p.add_argument("data")
    p.add_argument("--cache", default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--lam", type=float, default=1.0)
    p.add_argument("--dims", type=int, default=64)
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--folds", type=str, default=None, help="comma-separated 1-based folds")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    folds = {int(f) - 1 for f in a.folds.split(",")} if a.folds else None
    cmd = "python -m edge_genre.train.distill " + " ".join(
        shlex.quote(s) for s in (sys.argv[1:] if argv is None else argv))
    rec = cross_validate(discover(a.data), a.k, a.seed, DistillConfig(a.lam, a.dims, a.epochs),
                         a.cache, folds, out=a.out, command=cmd)
    print(f"track accuracy {100 * rec['track_accuracy_mean']:.1f} +- "
          f"{100 * rec['track_accuracy_std']:.1f} % over folds {rec['folds_run']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
