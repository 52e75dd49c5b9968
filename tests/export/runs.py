"""A tiny but real training run for the export tests (fixtures in a plain module: a second
conftest.py would shadow tests/conftest for 'from conftest import').

A small front-end like the scratch preset's (16 kHz, 40 mels, 4 s windows) on real GTZAN excerpts
from ../shared, a small CNN trained for a few epochs so its predictions are confident enough for
agreement checks to mean something, and the run directory around it (``run_dir.write_run``, as training writes it).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edge_genre.edge.config import FrontendConfig, ModelCard, WindowConfig  # noqa: E402
from edge_genre.train.run_dir import RunRecord, RunSplit, read_run, write_run  # noqa: E402

FRONTEND = FrontendConfig(sample_rate=16000, n_fft=1024, hop_length=512, n_mels=40)
WINDOW = WindowConfig(seconds=4.0, hop_seconds=2.0)
TRAIN_PER_GENRE = 4
TEST_PER_GENRE = 1


def pick_split(gtzan_root: Path):
    """A few tracks per genre from the fault-filtered split's train and test lists."""
    from edge_genre.train.data import discover
    from edge_genre.train.splits import fault_filtered_split

    ds = discover(gtzan_root, artist_index=None)
    split = fault_filtered_split(ds, gtzan_root.parents[1] / "gtzan-splits")

    def per_genre(tracks, n):
        seen, out = {}, []
        for t in tracks:
            if seen.get(t.genre, 0) < n:
                out.append(t)
                seen[t.genre] = seen.get(t.genre, 0) + 1
        return out

    return ds, per_genre(split.train, TRAIN_PER_GENRE), per_genre(split.test, TEST_PER_GENRE)


def tiny_model(input_shape, n_labels):
    import keras

    inp = keras.Input(input_shape, name="features")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    out = keras.layers.Dense(n_labels, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("features")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, gtzan_root, feature_cache) -> Path:
    """A run directory (model.keras, model_card.json, run.json) of a briefly trained small CNN."""
    import keras

    from edge_genre.train.features import load_windows, normalization_stats

    ds, train, test = pick_split(gtzan_root)
    windows = load_windows(train, FRONTEND, WINDOW, cache_dir=feature_cache)
    mean, std = normalization_stats(windows.x)
    frontend = FRONTEND.with_normalization(mean, std)
    shape = frontend.feature_shape(WINDOW.window_samples(frontend))
    keras.utils.set_random_seed(0)
    model = tiny_model(shape, len(ds.labels))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(windows.normalized(frontend), windows.y, epochs=30, batch_size=32, verbose=0)
    run = tmp_path_factory.mktemp("run")
    card = ModelCard(labels=ds.labels, frontend=frontend, window=WINDOW, preset="tiny",
                     model_version="test", input_shape=shape)
    record = RunRecord.new("tiny", data={"root": str(gtzan_root)},
                           split=RunSplit(name="tiny", train=tuple(t.track_id for t in train),
                                          test=tuple(t.track_id for t in test)))
    write_run(run, model, card, record)
    return run


@pytest.fixture(scope="session")
def held_out(tiny_run, feature_cache):
    """(normalised windows, labels) of the run's test tracks: real audio for comparisons."""
    from edge_genre.export.calibration import held_out_set

    run = read_run(tiny_run)
    return held_out_set(run.split_ids("test"), run.data_dir(), run.card, feature_cache)


@pytest.fixture(scope="session")
def exported(tiny_run, tmp_path_factory, feature_cache):
    """All six files of the tiny run (fp32, int8, int8 weights x TFLite, ONNX) and the report
    (degraded allowed: tests judge it)."""
    from edge_genre.export import ExportConfig, export_model

    out = tmp_path_factory.mktemp("export")
    report = export_model(tiny_run, out, int8=True, int8_weights=True, formats=("tflite", "onnx"),
                          cache_dir=feature_cache, allow_degraded=True,
                          config=ExportConfig(calibration_windows=100))
    return out, report
