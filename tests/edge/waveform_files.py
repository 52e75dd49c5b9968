"""A small waveform-in model file (``edge-genre export --mediapipe``) and the spectrogram-in fp32
file of the same network, for the runtime and bench tests (imported, not a conftest.py: see
``modelfiles.py``).

Made the way ``tests/export/test_mediapipe.py`` makes them, but small: the shipped default's
front-end (the ``transfer`` preset's YAMNet log-mel: 16 kHz, 400-sample window in a 512 FFT,
64 HTK mels, not centred, 4 s windows every 2 s) normalised on real windows, and a small CNN fitted
for 20 epochs (about 10 s) on the windows of 2 real GTZAN excerpts per genre: about 85 % of its
training windows right, with a mean top probability of about 0.7, so label checks mean something. ``export.mediapipe.export_mediapipe`` writes the
waveform-in file (and checks its parity); ``export.tflite.to_tflite`` the spectrogram-in one.

Built once per test process (``build`` is memoised) whichever module asks first: the edge tests
and the bench tests share it.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edge_genre.edge.config import ModelCard, WindowConfig  # noqa: E402

from tests.conftest import GTZAN_MINI  # noqa: E402

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae",
          "rock")
WINDOW = WindowConfig(seconds=4.0, hop_seconds=2.0)
TRAIN_PER_GENRE = 2
EPOCHS = 20


def small_model(input_shape, n_labels):
    """A small CNN that learns GTZAN's training windows in a few seconds (no batch norm, whose
    moving averages would lag after so few steps)."""
    import keras

    inp = keras.Input(input_shape, name="features")
    x = keras.layers.AveragePooling2D((2, 4))(inp)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(n_labels, activation="softmax", name="probabilities")(x)
    return keras.Model(inp, out)


@dataclass(frozen=True)
class WaveformFiles:
    folder: Path
    waveform: Path  # <stem>-mediapipe.tflite: waveform in, front-end in the graph
    spectrogram: Path  # the same network, spectrogram in (the numpy front-end feeds it)
    run: Path  # the run directory (model.keras, model_card.json, run.json)
    report: dict  # mediapipe_report.json
    train_ids: tuple[str, ...]


def _train_tracks():
    from edge_genre.train.data import discover

    ds = discover(GTZAN_MINI, artist_index=None)
    assert ds.labels == GENRES
    out, seen = [], {}
    for t in ds.tracks:  # sorted by genre then name: the first .wav excerpts of each genre
        if t.path.suffix == ".wav" and seen.get(t.genre, 0) < TRAIN_PER_GENRE:
            out.append(t)
            seen[t.genre] = seen.get(t.genre, 0) + 1
    return out


@functools.lru_cache(maxsize=None)
def build(root: Path) -> WaveformFiles:
    import keras

    from edge_genre.export import mediapipe as M
    from edge_genre.export import metadata, tflite
    from edge_genre.train.features import load_windows, normalization_stats
    from edge_genre.train.yamnet import yamnet_frontend

    root.mkdir(parents=True, exist_ok=True)
    train = _train_tracks()
    raw = yamnet_frontend()
    windows = load_windows(train, raw, WINDOW)
    mean, std = normalization_stats(windows.x)
    frontend = raw.with_normalization(mean, std)
    shape = frontend.feature_shape(WINDOW.window_samples(frontend))
    keras.utils.set_random_seed(0)
    model = small_model(shape, len(GENRES))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(windows.normalized(frontend), windows.y, epochs=EPOCHS, batch_size=32, verbose=0)

    run = root / "run"
    run.mkdir(exist_ok=True)
    model.save(run / "model.keras")
    card = ModelCard(labels=GENRES, frontend=frontend, window=WINDOW, preset="transfer",
                     model_version="test", input_shape=shape)
    (run / "model_card.json").write_text(card.to_json())
    ids = tuple(t.track_id for t in train)
    (run / "run.json").write_text(json.dumps({"data": {"root": str(GTZAN_MINI)},
                                              "split": {"train": list(ids), "test": []}}))
    folder = root / "models"
    report = M.export_mediapipe(run, folder, name="tiny", parity_tracks=3,
                                progress=lambda msg: None)
    assert report["passed"], report
    spectrogram = folder / "tiny-fp32.tflite"
    metadata.write_tflite(spectrogram, tflite.to_tflite(model),
                          dataclasses.replace(card, package_version="test"))
    return WaveformFiles(folder, folder / "tiny-mediapipe.tflite", spectrogram, run, report, ids)


@pytest.fixture(scope="session")
def waveform_files(tmp_path_factory) -> WaveformFiles:
    if not GTZAN_MINI.is_dir():
        pytest.fail(f"real GTZAN excerpts not found at {GTZAN_MINI} (set EDGE_GENRE_SHARED)")
    return build(tmp_path_factory.getbasetemp() / "waveform-files")
