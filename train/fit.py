"""Train a preset on a dataset and write the model directory (the train -> export contract).

``train_run`` loads feature windows (cached), computes the input normalisation on the TRAINING
windows only, trains with on-the-fly augmentation and a progress bar, keeps the checkpoint with
the best validation score, scores the held-out test tracks, and writes the run directory
(``run_dir``: model.keras, model_card.json, run.json, curves.png, and with a test part
confusion.png and test_report.txt).
"""
from __future__ import annotations

import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge_genre.edge.config import FrontendConfig, ModelCard
from edge_genre.errors import DataError
from edge_genre.train.augment import augment_batch
from edge_genre.train.data import Dataset, discover
from edge_genre.train.scores import (Report, predict_batches, score, track_accuracy,
                                     window_accuracy)
from edge_genre.train.features import LabelledWindows, load_windows, normalization_stats
from edge_genre.train.presets import Preset, TrainConfig, get_preset
from edge_genre.train.run_dir import (CONFUSION_FILE, CURVES_FILE, RECORD_FILE, TEST_REPORT_FILE,
                                      RunRecord, RunSplit, write_run)
from edge_genre.train.splits import Split, make_split

log = logging.getLogger("edge_genre")

#: Threads TensorFlow may use: this toolkit trains on small shared boxes (and Pis).
DEFAULT_THREADS = 2


def setup_keras(seed: int = 0, threads: int | None = DEFAULT_THREADS):
    """Select the backend (TensorFlow unless KERAS_BACKEND already names another, e.g. "jax" or
    "torch" on an accelerator machine without TensorFlow), limit TensorFlow's threads and seed
    everything. Returns ``keras``. Under another backend nothing here imports TensorFlow."""
    backend = os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if backend == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        if threads:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(int(threads))
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:  # already initialised in this process: keep its setting
                pass
    import keras

    if keras.backend.backend() != "tensorflow":
        # keras.utils.set_random_seed also seeds TensorFlow whenever it is importable, which
        # would import it into a JAX or PyTorch job: mark it absent, as it is on such machines.
        try:
            from keras.src.utils import module_utils

            module_utils.tensorflow._available = False
        except (ImportError, AttributeError):  # a Keras without that lazy module
            pass
    keras.utils.set_random_seed(int(seed))
    return keras


@dataclass
class RunResult:
    """What ``train_run`` made: the directory, the model and the record written beside it."""

    out_dir: Path
    model: Any
    card: ModelCard
    history: list[dict]
    best_epoch: int
    record: RunRecord
    test: Report | None = None


@dataclass
class FitOutcome:
    model: Any
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    train_seconds: float = 0.0


# ----------------------------------------------------------------------------- training


def compile_model(model, cfg: TrainConfig, steps_per_epoch: int, epochs: int) -> None:
    import keras

    lr: Any = cfg.learning_rate
    if cfg.lr_schedule == "cosine":
        total = max(1, steps_per_epoch * epochs)
        warmup = min(total - 1, steps_per_epoch * cfg.warmup_epochs)
        lr = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=cfg.learning_rate * (0.1 if warmup else 1.0),
            decay_steps=max(1, total - warmup), alpha=cfg.min_lr_fraction,
            warmup_target=cfg.learning_rate if warmup else None, warmup_steps=warmup)
    if cfg.optimizer == "adamw":
        opt = keras.optimizers.AdamW(learning_rate=lr, weight_decay=cfg.weight_decay)
    else:
        opt = keras.optimizers.Adam(learning_rate=lr)
    model.compile(optimizer=opt,
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                  metrics=["accuracy"])


def predict(model, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Probabilities for normalised windows, in batches (no Keras progress output)."""
    return predict_batches(lambda b: model(b, training=False), x, batch_size,
                           int(model.output_shape[-1]))


def _selection_key(m: dict, cfg: TrainConfig) -> tuple:
    if cfg.selection == "val_accuracy":
        return (m.get("val_accuracy", 0.0), -m.get("val_loss", 0.0))
    return (m.get("val_track_accuracy", 0.0), m.get("val_accuracy", 0.0), -m.get("val_loss", 0.0))


def fit_windows(preset: Preset, n_labels: int, train: LabelledWindows, x_train: np.ndarray,
                valid: LabelledWindows | None, x_valid: np.ndarray | None,
                epochs: int | None = None, seed: int = 0, progress: bool = True,
                desc: str = "") -> FitOutcome:
    """Train ``preset``'s network on normalised windows; keep the best epoch by validation.

    Parameters
    ----------
    train, valid : the windows (labels and track owners); ``x_train``/``x_valid`` their
        normalised features. Without validation windows the last epoch is kept.
    epochs : overrides the preset's epoch count.
    progress : tqdm bar per epoch (on stderr).
    """
    from tqdm import tqdm

    cfg = preset.train
    epochs = int(epochs or cfg.epochs)
    keras = setup_keras(seed)
    model = preset.build(n_labels)
    steps = max(1, int(np.ceil(len(x_train) / cfg.batch_size)))
    compile_model(model, cfg, steps, epochs)
    rng = np.random.default_rng(seed)
    onehot = np.eye(n_labels, dtype=np.float32)
    history: list[dict] = []
    best_key, best_weights, best_epoch, stale = None, None, 0, 0
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x_train))
        losses, accs, sizes = [], [], []
        bar = tqdm(range(steps), desc=f"{desc}epoch {epoch}/{epochs}", unit="step",
                   disable=not progress, leave=False, file=sys.stderr,
                   mininterval=0.5 if sys.stderr.isatty() else 15)
        e0 = time.perf_counter()
        for s in bar:
            idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size]
            xb, yb = augment_batch(x_train[idx], onehot[train.y[idx]], rng, cfg.augment)
            logs = model.train_on_batch(xb, yb, return_dict=True)
            losses.append(float(logs["loss"]))
            accs.append(float(logs["accuracy"]))
            sizes.append(len(idx))
            bar.set_postfix(loss=f"{np.average(losses, weights=sizes):.3f}",
                            acc=f"{np.average(accs, weights=sizes):.3f}", refresh=False)
        bar.close()
        m = {"epoch": epoch, "loss": float(np.average(losses, weights=sizes)),
             "accuracy": float(np.average(accs, weights=sizes)),
             "seconds": round(time.perf_counter() - e0, 2)}
        if valid is not None and len(valid):
            probs = predict(model, x_valid)
            p = np.clip(probs[np.arange(len(probs)), valid.y], 1e-7, 1.0)
            m["val_loss"] = float(-np.mean(np.log(p)))
            m["val_accuracy"] = window_accuracy(probs, valid.y)
            m["val_track_accuracy"] = track_accuracy(probs, valid.track, valid.y)
        history.append(m)
        key = _selection_key(m, cfg) if valid is not None and len(valid) else (epoch,)
        if best_key is None or key > best_key:
            best_key, best_weights, best_epoch, stale = key, model.get_weights(), epoch, 0
        else:
            stale += 1
        if progress:
            shown = " ".join(f"{k} {v:.3f}" for k, v in m.items()
                             if k not in ("epoch", "seconds"))
            print(f"{desc}epoch {epoch}/{epochs} ({m['seconds']:.0f} s): {shown}"
                  f"{'  *best' if best_epoch == epoch else ''}", file=sys.stderr, flush=True)
        if cfg.patience is not None and stale >= cfg.patience:
            break
    if best_weights is not None:
        model.set_weights(best_weights)
    del keras
    return FitOutcome(model, history, best_epoch, time.perf_counter() - t0)


def best_epoch(history: list[dict], cfg: TrainConfig) -> int:
    """The 1-based epoch a fitted model is kept from, as ``fit_windows`` keeps it: the best by
    ``cfg.selection`` when the epochs were validated, else the last (0 for no history)."""
    if not any("val_accuracy" in m or "val_track_accuracy" in m for m in history):
        return len(history)
    return max(range(len(history)), key=lambda i: _selection_key(history[i], cfg)) + 1


def fit_model(preset: Preset, n_labels: int, train: LabelledWindows,
              valid: LabelledWindows | None, frontend, epochs: int | None = None,
              seed: int = 0, progress: bool = True, desc: str = "",
              cache_dir=None) -> FitOutcome:
    """Train ``preset`` on UNNORMALISED windows: its own ``Preset.fit`` when it has one (e.g.
    ``transfer``), else the generic loop ``fit_windows`` on the windows normalised with
    ``frontend`` (the card's, mean/std of the training windows). What ``train_run`` and
    ``evaluate.cross_validate`` both call, so both report the same ``best_epoch``."""
    if preset.fit is None:
        return fit_windows(preset, n_labels, train, train.normalized(frontend), valid,
                           valid.normalized(frontend) if valid is not None else None,
                           epochs=epochs, seed=seed, progress=progress, desc=desc)
    t0 = time.perf_counter()
    model, history = preset.fit(preset, train, valid, epochs=epochs, progress=progress,
                                n_labels=n_labels, cache_dir=cache_dir)
    return FitOutcome(model, history, best_epoch(history, preset.train),
                      time.perf_counter() - t0)


# ----------------------------------------------------------------------------- the run


def _as_dataset(dataset) -> Dataset:
    return dataset if isinstance(dataset, Dataset) else discover(dataset)


def _as_preset(preset) -> Preset:
    return preset if isinstance(preset, Preset) else get_preset(str(preset))


def load_split_windows(preset: Preset, split: Split, cache_dir=None, progress: bool = True
                       ) -> dict[str, LabelledWindows]:
    """Unnormalised windows of each part of a split (bad files logged and skipped)."""
    from tqdm import tqdm

    tracks = split.train + split.valid + split.test
    bar = tqdm(total=len(tracks), desc="features", unit="track", disable=not progress,
               leave=False, file=sys.stderr, mininterval=0.5 if sys.stderr.isatty() else 15)
    out = {}
    for part in ("train", "valid", "test"):
        def tick(i, n, t):
            bar.update(1)
        out[part] = load_windows(getattr(split, part), preset.frontend, preset.window,
                                 cache_dir=cache_dir, progress=tick)
    bar.close()
    return out


@dataclass
class RunWindows:
    """A split's windows, unnormalised, and the front-end normalised on its training part."""

    train: LabelledWindows
    valid: LabelledWindows
    test: LabelledWindows
    frontend: FrontendConfig  # the preset's, with mean/std of the training windows
    seconds: float  # feature time

    @property
    def skipped(self) -> list:
        return self.train.skipped + self.valid.skipped + self.test.skipped


def split_windows(preset: Preset, split: Split, cache_dir=None, progress: bool = True
                  ) -> RunWindows:
    """Step 1 of a run: the windows of every part of ``split`` (no track feeding two parts)
    and the input normalisation, computed on the TRAINING windows only."""
    t0 = time.perf_counter()
    parts = load_split_windows(preset, split, cache_dir, progress)
    seconds = time.perf_counter() - t0
    train, valid, test = parts["train"], parts["valid"], parts["test"]
    if len(train) == 0:
        raise DataError("no usable training windows (every training file was skipped)")
    _assert_no_leak(train, valid, test)
    mean, std = normalization_stats(train.x)
    return RunWindows(train, valid, test, preset.frontend.with_normalization(mean, std), seconds)


def train_run(preset, dataset, split: Split | str = "artist", out_dir=None, epochs: int | None = None,
              limit: int | None = None, seed: int = 0, cache_dir=None, progress: bool = True
              ) -> RunResult:
    """Train ``preset`` on ``dataset`` and write the model directory ``out_dir``.

    Steps: ``split_windows`` (windows and normalisation), ``fit_model`` (the network),
    ``score_test`` (the held-out tracks), ``run_record`` and ``write_run`` (the directory).

    Parameters
    ----------
    preset : a Preset or its name.
    dataset : a Dataset or a dataset folder.
    split : a Split, or "artist" / "track" / "fault-filtered" / "final" (made with ``seed``).
    out_dir : where to write model.keras, model_card.json, run.json, curves.png.
    epochs : overrides the preset's epochs (for short runs).
    limit : keep only the first ``limit`` tracks of each genre (for short runs).
    seed : split, initialisation, shuffling and augmentation seed.
    cache_dir : feature cache folder (None: no cache).
    """
    from edge_genre.train import macs as macs_mod

    t_start = time.perf_counter()
    preset = _as_preset(preset)
    ds = _as_dataset(dataset)
    if limit:
        ds = ds.subset(int(limit))
    if isinstance(split, str):
        split = make_split(ds, split, seed)
    if not split.train:
        raise DataError("the split leaves no training tracks")
    out_dir = Path(out_dir) if out_dir else Path("runs") / preset.name

    windows = split_windows(preset, split, cache_dir, progress)
    outcome = fit_model(preset, len(ds.labels), windows.train, windows.valid, windows.frontend,
                        epochs=epochs, seed=seed, progress=progress, cache_dir=cache_dir)
    macs, params = macs_mod.count(outcome.model)
    test_report = score_test(outcome.model, windows, ds.labels, split)
    card = run_card(preset, ds.labels, windows.frontend, macs, params, test_report)
    record = run_record(preset, ds, split, windows, outcome, test_report, macs, params,
                        epochs=epochs, limit=limit, seed=seed,
                        wall_seconds=time.perf_counter() - t_start)
    write_run(out_dir, outcome.model, card, record)
    _write_figures(out_dir, preset, split, outcome.history, test_report)
    return RunResult(out_dir, outcome.model, card, outcome.history, outcome.best_epoch, record,
                     test_report)


def score_test(model, windows: RunWindows, labels, split: Split) -> Report | None:
    """The model's report on the split's test windows (None without a test part)."""
    if not len(windows.test):
        return None
    probs = predict(model, windows.test.normalized(windows.frontend))
    return score(probs, windows.test, labels,
                 f"test part of the {split.name} split ({split.description})")


def run_card(preset: Preset, labels, frontend, macs: int, params: int,
             test_report: Report | None) -> ModelCard:
    """The card of a trained preset (fp32; export rewrites ``quantization``)."""
    from edge_genre import __version__

    return ModelCard(labels=labels, frontend=frontend, window=preset.window,
                     preset=preset.name, package_version=__version__,
                     input_shape=preset.input_shape, quantization="fp32",
                     extra={"macs": macs, "params": params,
                            "test_track_accuracy": test_report.track_accuracy
                            if test_report else None,
                            "test_split": test_report.split if test_report else None})


def run_record(preset: Preset, ds: Dataset, split: Split, windows: RunWindows,
               outcome: FitOutcome, test_report: Report | None, macs: int, params: int,
               epochs: int | None, limit: int | None, seed: int, wall_seconds: float
               ) -> RunRecord:
    """``run.json`` of a run: data, split, settings, per-epoch history, timings, test report."""
    fe = windows.frontend
    return RunRecord.new(
        preset.name,
        description=preset.description,
        machine={"platform": platform.platform(), "python": platform.python_version(),
                 "cpus": os.cpu_count(), "threads": DEFAULT_THREADS},
        data={"root": str(Path(ds.root).resolve()), "fingerprint": ds.fingerprint(),
              "n_tracks": len(ds.tracks), "counts": ds.counts(), "limit_per_genre": limit,
              "artist_index": str(ds.artist_index) if ds.artist_index else None,
              "skipped": [[str(p), r] for p, r in list(ds.skipped) + windows.skipped]},
        split=RunSplit.from_dict(split.summary(), RECORD_FILE),
        windows={part: len(getattr(windows, part)) for part in ("train", "valid", "test")},
        settings={"train": preset.train.to_dict(), "epochs": epochs or preset.train.epochs,
                  "seed": seed, "frontend": fe.to_dict(), "window": preset.window.to_dict(),
                  "input_shape": list(preset.input_shape)},
        normalization={"mean": fe.mean, "std": fe.std, "from": "training windows"},
        model={"macs_per_window": macs, "params": params},
        history=outcome.history,
        best_epoch=outcome.best_epoch,
        epochs_run=len(outcome.history),
        feature_seconds=round(windows.seconds, 1),
        train_seconds=round(outcome.train_seconds, 1),
        wall_seconds=round(wall_seconds, 1),
        test=test_report.to_dict() if test_report else None)


def _write_figures(out_dir: Path, preset: Preset, split: Split, history: list[dict],
                   test_report: Report | None) -> None:
    """The run directory's curves, confusion matrix and test report text."""
    from edge_genre.train import plots

    if history:
        plots.training_curves(history, out_dir / CURVES_FILE,
                              title=f"{preset.name}: {split.name} split")
    if test_report is not None:
        plots.confusion(test_report, out_dir / CONFUSION_FILE)
        (out_dir / TEST_REPORT_FILE).write_text(test_report.text() + "\n")


def _assert_no_leak(train: LabelledWindows, valid: LabelledWindows,
                    test: LabelledWindows) -> None:
    """No track (hence no window of it) may feed two parts."""
    ids = [{t.track_id for t in w.tracks} for w in (train, valid, test)]
    if ids[0] & ids[2] or ids[0] & ids[1] or ids[1] & ids[2]:
        raise AssertionError("a track is in two parts of the split")
