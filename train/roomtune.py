"""Room tuning: YAMNet's top layers learn, from a music teacher, to hear through a room.

A frozen body with a head trained on room copies cannot learn a far room (the head only reweighs
what the body already hears); the body has to. Training all of YAMNet on this CPU takes days, so
only its top layers learn: layers 1..``cut`` stay as pretrained and their maps are computed once
and cached (clean, and through ``copies`` simulated rooms), and layers ``cut+1``..14 are trained
on those maps to reproduce, from ANY version of a window, the teacher's output on the CLEAN
window (the room-robust musicnn self-distilled on a lent accelerator, ``robust.py``; its
standardised penultimate layer and tag probabilities, 250-d), plus the genre as a second target.
The tuned layers replace YAMNet's own in the ``transfer`` architecture: the same model, the same
287.5 M MACs, exported like it.

Used by the ``room`` preset (``transfer.fit_preset`` with ``TransferConfig.tune``): only the
fold's training tracks (and their labels) are learnt from. The teacher itself was
self-distilled without labels on the audio of all 161 excerpts (see ``robust.py``), test folds
included: it has heard the test tracks' audio, never their genres.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge_genre.errors import DataError, ModelError
from edge_genre.train.backbones import backbone_maps
from edge_genre.train.data import Track

log = logging.getLogger("edge_genre")


@dataclass(frozen=True)
class RoomTuneConfig:
    """cut : YAMNet layers 1..cut stay frozen (their maps cached); cut+1..14 learn.
    copies : room copies (``roomsim.augment_copies``) of every training window the top hears,
        beside the clean window; each has the clean window's teacher target.
    epochs, batch, lr : Adam on MSE(teacher) + genre_weight * cross-entropy(genre).
    teacher_weights : the musicnn weights file of the teacher (None: the shipped room-robust
        ``musicnn-robust.npz``).
    """

    cut: int = 12
    copies: int = 4
    epochs: int = 6
    batch: int = 64
    lr: float = 1e-4
    genre_weight: float = 1.0
    seed: int = 0
    teacher_weights: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TuneData:
    """Rows for training the top: maps at the cut (every version of every window), the teacher's
    standardised target of the clean window, the genre label, and which version it is."""

    x: np.ndarray  # (n, T, F, C) float16
    target: np.ndarray  # (n, 250) float32
    y: np.ndarray  # (n,)
    version: np.ndarray  # (n,) 0 = clean, i = room copy i
    track_ids: np.ndarray  # (n,) the window's track id


def teacher_maps(tracks: list[Track], cache_dir, teacher_weights: str | None = None):
    """The teacher's (1, 1, 250) map of every clean window of ``tracks`` (cached, keyed by the
    weights file's hash)."""
    from edge_genre.train import musicnn as M

    if teacher_weights is None:
        return backbone_maps(tracks, None, cache_dir, backbone="musicnn_robust")
    # The musicnn body reads other weights (and keys its cache) by this variable.
    old = os.environ.get(M.WEIGHTS_ENV)
    os.environ[M.WEIGHTS_ENV] = str(teacher_weights)
    try:
        return backbone_maps(tracks, None, cache_dir, backbone="musicnn")
    finally:
        if old is None:
            os.environ.pop(M.WEIGHTS_ENV, None)
        else:
            os.environ[M.WEIGHTS_ENV] = old


def cut_maps(tracks, weights, cache_dir, cfg: RoomTuneConfig, room=None,
             backbone: str = "yamnet"):
    """Maps of the frozen layers 1..cut (cached), of the tracks as recorded or through ``room``."""
    return backbone_maps(tracks, weights, cache_dir, depth=cfg.cut, room=room, backbone=backbone)


def tune_data(tracks: list[Track], weights, cache_dir, cfg: RoomTuneConfig,
              backbone: str = "yamnet") -> TuneData:
    """Every version of every window of ``tracks`` at the cut, paired with the teacher's
    standardised target of the same clean window (tracks whose window counts differ between
    YAMNet's and the teacher's front-end are dropped, logged)."""
    from edge_genre.train.roomsim import augment_copies

    teacher = teacher_maps(tracks, cache_dir, cfg.teacher_weights)
    t_rows = {t.track_id: np.flatnonzero(teacher.track == i) for i, t in enumerate(teacher.tracks)}
    t_vec = teacher.maps.reshape(len(teacher.maps), -1).astype(np.float32)
    versions = [None, *augment_copies(cfg.copies, cache_dir)]
    xs, targets, ys, vs, ids = [], [], [], [], []
    for v, room in enumerate(versions):
        m = cut_maps(tracks, weights, cache_dir, cfg, room, backbone)
        for i, t in enumerate(m.tracks):
            rows = np.flatnonzero(m.track == i)
            trows = t_rows.get(t.track_id)
            if trows is None or len(trows) != len(rows):
                if v == 0:
                    log.warning("room tuning: %s dropped (window counts differ)", t.track_id)
                continue
            xs.append(m.maps[rows])
            targets.append(t_vec[trows])
            ys.append(np.full(len(rows), t.label))
            vs.append(np.full(len(rows), v))
            ids.append(np.full(len(rows), t.track_id, dtype=object))
    if not xs:
        raise DataError("room tuning: no track has windows in both front-ends")
    target = np.concatenate(targets)
    clean = np.concatenate(vs) == 0
    mu, sd = target[clean].mean(axis=0), target[clean].std(axis=0) + 1e-6
    return TuneData(np.concatenate(xs), ((target - mu) / sd).astype(np.float32),
                    np.concatenate(ys).astype(int), np.concatenate(vs), np.concatenate(ids))


def _top(weights, cfg: RoomTuneConfig, depth: int):
    from edge_genre.train import yamnet as Y

    if not 1 <= cfg.cut < depth <= len(Y.LAYERS):
        raise ModelError(f"room tuning: cut {cfg.cut} must be below the body's depth {depth}")
    return Y.build_backbone(weights, None, name="yamnet_top", until=depth, start=cfg.cut,
                            input_channels=Y.LAYERS[cfg.cut - 1][2])


def build_top(weights, cfg: RoomTuneConfig, n_labels: int, target_dims: int, depth: int = 14):
    """(trainer, top): ``top`` is YAMNet's layers cut+1..depth (pretrained weights) on the cut's
    map; ``trainer`` adds mean pooling and the two outputs it learns through."""
    import keras
    from keras import layers as L

    top = _top(weights, cfg, depth)
    x = L.GlobalAveragePooling2D(name="mean_pool")(top.output)
    teacher = L.Dense(target_dims, name="teacher")(x)
    genre = L.Dense(n_labels, activation="softmax", name="genre")(x)
    return keras.Model(top.input, [teacher, genre], name="room_tuning"), top


def tune_top(data: TuneData, weights, cfg: RoomTuneConfig, n_labels: int, progress=True,
             depth: int = 14):
    """Train YAMNet's layers cut+1..depth on ``data``; returns (weights with those layers
    replaced, per-epoch losses)."""
    import keras

    from edge_genre.train import yamnet as Y

    if cfg.epochs < 0:
        raise ModelError("room tuning: epochs >= 0, please")
    keras.utils.set_random_seed(cfg.seed)
    trainer, top = build_top(weights, cfg, n_labels, data.target.shape[1], depth)
    trainer.compile(optimizer=keras.optimizers.Adam(cfg.lr),
                    loss={"teacher": "mse", "genre": "sparse_categorical_crossentropy"},
                    loss_weights={"teacher": 1.0, "genre": cfg.genre_weight})
    history = []
    if cfg.epochs:
        h = trainer.fit(data.x.astype(np.float32), {"teacher": data.target, "genre": data.y},
                        batch_size=cfg.batch, epochs=cfg.epochs, shuffle=True,
                        verbose=2 if progress else 0)
        history = [{k: float(v[i]) for k, v in h.history.items()} for i in range(cfg.epochs)]
    return Y.weights_from_model(top, weights), history


def top_features(maps: np.ndarray, weights, cfg: RoomTuneConfig, batch: int = 256,
                 depth: int = 14) -> np.ndarray:
    """Mean-pooled output of layers cut+1..depth (``weights``) on maps at the cut: (n, C)."""
    import keras
    from keras import layers as L

    from edge_genre.train import yamnet as Y

    top = _top(weights, cfg, depth)
    pooled = keras.Model(top.input, L.GlobalAveragePooling2D()(top.output))
    out = [pooled.predict(maps[i:i + batch].astype(np.float32), verbose=0)
           for i in range(0, len(maps), batch)]
    return np.concatenate(out) if out else np.zeros((0, Y.LAYERS[depth - 1][2]), np.float32)

