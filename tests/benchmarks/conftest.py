"""Model files for the bench tests: the shipped default files when this checkout has them, and
a tiny exported CNN (random weights, real GTZAN windows for calibration) for graph checks."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edge_genre.edge.config import FrontendConfig, ModelCard, WindowConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("EDGE_GENRE_SHARED", REPO.parent / "shared")).resolve()
YAMNET_TFLITE = SHARED / "peers" / "yamnet" / "yamnet.tflite"  # as tests/conftest.py says

FRONTEND = FrontendConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=32)
WINDOW = WindowConfig(seconds=4.0, hop_seconds=2.0)


def tiny_model(input_shape, n_labels):
    import keras

    inp = keras.Input(input_shape, name="features")
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(16, 1, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(n_labels, activation="softmax")(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory, gtzan_root):
    """(folder with tiny-{fp32,int8}.{tflite,onnx}, the Keras model)."""
    import keras

    from edge_genre.export import ExportConfig, export_model
    from edge_genre.train.data import discover

    ds = discover(gtzan_root, artist_index=None)
    train = [t for i, t in enumerate(ds.tracks) if i % 16 == 0][:6]
    test = [t for i, t in enumerate(ds.tracks) if i % 16 == 8][:2]
    shape = FRONTEND.feature_shape(WINDOW.window_samples(FRONTEND))
    keras.utils.set_random_seed(0)
    model = tiny_model(shape, len(ds.labels))
    run = tmp_path_factory.mktemp("bench-run")
    model.save(run / "model.keras")
    card = ModelCard(labels=ds.labels, frontend=FRONTEND.with_normalization(-40.0, 20.0),
                     window=WINDOW, preset="tiny", input_shape=shape)
    (run / "model_card.json").write_text(card.to_json())
    (run / "run.json").write_text(json.dumps({
        "data": {"root": str(gtzan_root)},
        "split": {"train": [t.track_id for t in train], "valid": [],
                  "test": [t.track_id for t in test]}}))
    out = tmp_path_factory.mktemp("bench-models")
    export_model(run, out, int8=True, name="tiny", allow_degraded=True,
                 config=ExportConfig(calibration_windows=8))
    return out, model


@pytest.fixture(scope="session")
def bench_models(tiny_export) -> list[Path]:
    """What the short bench runs on: the shipped int8 files if present (their cards carry a CV
    record: the bench quotes it), else the tiny export's ONNX file, and always the tiny export's
    TFLite file (its run records held-out tracks: the bench measures them), so both ways to an
    accuracy figure run."""
    from edge_genre.defaults import shipped_models

    folder, _ = tiny_export
    shipped = [p for p in shipped_models() if "int8" in p.name]
    return (shipped or [folder / "tiny-int8.onnx"]) + [folder / "tiny-int8.tflite"]
