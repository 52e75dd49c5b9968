"""Frozen pretrained bodies that a genre head sits on: YAMNet (AudioSet) and musicnn (Million
Song Dataset).

A ``Backbone`` says what its body hears (front-end and window, which go into the model card),
where its weights come from, and how to build it as a Keras model that takes the front-end's raw
log-mel, time first ``(frames, n_mels, 1)``, and returns a feature map ``(T, F, C)`` for the head
to pool. ``transfer.py`` trains and assembles heads over any of them.

- ``yamnet``: YAMNet's MobileNet body, any cut of its 14 layers (``depth``); weights read from the
  YAMNet TFLite file at training time (a trained model carries its own copy).
- ``yamnet_20ms``: the same body on YAMNet's log-mel taken every 20 ms instead of 10 ms (199
  frames per 4 s window instead of 397): every layer's map has half the frames, so half the MACs.
  The first layers, which see a few frames at a time, keep what they know about genre (the
  ``student`` lost nothing measurable on the folds); the whole body does not (see
  ``transfer.CONFIGS``).
- ``musicnn``: musicnn's MSD network (``musicnn.py``), whole; its "map" is one vector per window,
  the 200-d penultimate layer and the 50 tag probabilities (shape (1, 1, 250)). Weights ship in
  the package (``edge_genre/models/musicnn-msd.npz``, ISC licence).
- ``musicnn_robust``: the same network with the weights self-distilled toward room robustness
  on a lent accelerator (``robust.py``; ``edge_genre/models/musicnn-robust.npz``).
- ``yamnet_robust``, ``yamnet_robust_20ms``: YAMNet's body with its weights self-distilled toward
  room robustness on this CPU (``robust.py --body yamnet``;
  ``edge_genre/models/yamnet-robust.npz``), at 10 and 20 ms.
- ``student_robust``: the student's body (YAMNet's first 6 layers at 20 ms) self-distilled alone
  (``robust.py --body student``; ``edge_genre/models/student-robust.npz``).
- ``student_musicnn``: that body then taught by the room-robust musicnn: its pooled map learns
  to say musicnn's view of the clean crop while it hears room copies and two-track mixes
  (``robust.py --body student --teacher musicnn``; ``edge_genre/models/student-musicnn.npz``).
- ``yamnet_musicnn``: ``yamnet_robust``'s whole body taught by musicnn the same way
  (``--body yamnet --teacher musicnn``; ``edge_genre/models/yamnet-musicnn.npz``).

A body on other weights than its port's keeps its maps beside the original's, in the same cache
folder, under a key that names the weights file's hash.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge_genre.edge.config import FrontendConfig, WindowConfig
from edge_genre.errors import DataError, ModelError
from edge_genre.train.data import Track
from edge_genre.train.features import FeatureCache, load_windows, settings_key
from edge_genre.train.roomsim import RoomCopy

#: Where YAMNet's weights are read from when none is given: ../shared beside the repository, or
#: EDGE_GENRE_YAMNET.
YAMNET_ENV = "EDGE_GENRE_YAMNET"
WINDOW = WindowConfig(seconds=4.0, hop_seconds=2.0)


#: The room-robust YAMNet copy shipped in the package (``robust.py --body yamnet``).
YAMNET_ROBUST_FILE = "yamnet-robust.npz"
#: The student's body (YAMNet's first 6 layers at 20 ms) self-distilled alone
#: (``robust.py --body student``); its layers 7-14 are YAMNet's own.
STUDENT_ROBUST_FILE = "student-robust.npz"
#: The same body taught by the room-robust musicnn (``robust.py --body student --teacher
#: musicnn``), starting from ``STUDENT_ROBUST_FILE``.
STUDENT_MUSICNN_FILE = "student-musicnn.npz"
#: YAMNet's whole body taught by the room-robust musicnn the same way, from
#: ``YAMNET_ROBUST_FILE``.
YAMNET_MUSICNN_FILE = "yamnet-musicnn.npz"


def yamnet_robust_path(name: str = YAMNET_ROBUST_FILE) -> Path:
    from edge_genre.defaults import MODELS_DIR

    return MODELS_DIR / name


def default_yamnet_path() -> Path:
    env = os.environ.get(YAMNET_ENV)
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[1]
    return repo.parent / "shared" / "peers" / "yamnet" / "yamnet.tflite"


@dataclass(frozen=True)
class Backbone:
    """What a pretrained body hears and how to build it; subclasses fill in the body.

    name : cache kind and the card's ``extra["backbone"]``.
    frontend, window : the body's input, recorded in every model card built on it.
    n_layers : the deepest cut (``TransferConfig.depth``) the body offers.
    maps_version : bump when cached maps of this body would change (port, weights reading).
    derived_from : licence line for the card.
    """

    name: str
    frontend: FrontendConfig
    window: WindowConfig
    n_layers: int
    maps_version: int
    derived_from: str

    def channels(self, depth: int) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def read_weights(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def build(self, weights: Any, frames: int | None = None, depth: int | None = None):
        """Keras model: raw log-mel (frames, n_mels, 1) -> feature map (T, F, C)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def input_shape(self) -> tuple[int, int, int]:
        """The card's model input for one window, (n_mels, frames, 1)."""
        return self.frontend.feature_shape(self.window.window_samples(self.frontend))

    @property
    def cache_kind(self) -> str:
        """The feature cache's folder for this body's maps."""
        return self.name

    def maps_key(self, settings_key: str, depth: int) -> str:
        key = f"{settings_key}-v{self.maps_version}"
        return key if depth == self.n_layers else key + f"-d{depth}"


class YamnetBackbone(Backbone):
    def channels(self, depth: int) -> int:
        from edge_genre.train import yamnet as Y

        return Y.LAYERS[depth - 1][2]

    def weights_path(self) -> Path:
        return default_yamnet_path()

    def read_weights(self):
        from edge_genre.train import yamnet as Y

        return Y.read_weights(self.weights_path())

    def maps_key(self, settings_key: str, depth: int) -> str:
        # A trained copy (.npz) makes other maps than the TFLite file's: cached apart.
        from edge_genre.train.data import file_digest

        key = super().maps_key(settings_key, depth)
        path = self.weights_path()
        if path.suffix != ".npz" or not path.is_file():
            return key
        return f"{key}-w{file_digest(path)[:10]}"

    def build(self, weights, frames=None, depth=None):
        from edge_genre.train import yamnet as Y

        return Y.build_backbone(weights, frames, until=depth or self.n_layers)


class MusicnnBackbone(Backbone):
    #: 200-d penultimate layer + 50 MSD tag probabilities, one vector per window.
    CHANNELS = 250

    def channels(self, depth: int) -> int:
        return self.CHANNELS

    def weights_path(self) -> Path:
        from edge_genre.train import musicnn as M

        return M.weights_path()

    def read_weights(self):
        from edge_genre.train import musicnn as M

        return M.read_weights(self.weights_path())

    def maps_key(self, settings_key: str, depth: int) -> str:
        # Other weights (``$EDGE_GENRE_MUSICNN_WEIGHTS``, the robust copy) make other maps:
        # cached apart.
        from edge_genre.train import musicnn as M
        from edge_genre.train.data import file_digest

        key = super().maps_key(settings_key, depth)
        path = self.weights_path()
        if path == M.default_weights_path() or not path.is_file():
            return key
        return f"{key}-w{file_digest(path)[:10]}"

    def build(self, weights, frames=None, depth=None):
        import keras
        from keras import layers as L

        from edge_genre.train import musicnn as M

        inp = keras.Input((frames, self.frontend.n_mels, 1), name="log_mel")
        # Our front-end gives ln(mel + 1e-4); musicnn takes log10(1 + 10000 mel), an affine map
        # of it (see musicnn.musicnn_frontend).
        x = L.Rescaling(M.LOG10_SCALE, offset=M.LOG10_OFFSET, name="musicnn_log10")(inp)
        _, penultimate, logits = M.build_backbone(weights, frames)(x)
        tags = L.Activation("sigmoid", name="tags")(logits)
        x = L.Concatenate(name="penultimate_tags")([penultimate, tags])
        x = L.Reshape((1, 1, self.CHANNELS), name="as_map")(x)
        return keras.Model(inp, x, name="musicnn")


class RobustMusicnnBackbone(MusicnnBackbone):
    """musicnn with the shipped room-robust weights (``musicnn-robust.npz``)."""

    @property
    def cache_kind(self) -> str:
        return "musicnn"  # beside musicnn's maps: the key names the weights file's hash

    def weights_path(self) -> Path:
        from edge_genre.train import musicnn as M

        return M.robust_weights_path()


@dataclass(frozen=True)
class RobustYamnetBackbone(YamnetBackbone):
    """YAMNet on one of the shipped room-robust copies (``weights_file`` in
    ``edge_genre/models``); its maps beside the plain body's (``plain``: that cache folder)."""

    plain: str = "yamnet"
    weights_file: str = YAMNET_ROBUST_FILE

    @property
    def cache_kind(self) -> str:
        return self.plain

    def weights_path(self) -> Path:
        return yamnet_robust_path(self.weights_file)


def _yamnet_robust(name: str, hop: int, weights_file: str = YAMNET_ROBUST_FILE,
                   how: str = "self-distilled on room copies") -> Backbone:
    from dataclasses import replace

    from edge_genre.train import yamnet as Y

    plain = "yamnet" if hop == 160 else "yamnet_20ms"
    return RobustYamnetBackbone(name, replace(Y.yamnet_frontend(), hop_length=hop), WINDOW,
                                len(Y.LAYERS), 1, f"YAMNet (Apache-2.0), {how}", plain=plain,
                                weights_file=weights_file)


def _yamnet() -> Backbone:
    from edge_genre.train import yamnet as Y

    return YamnetBackbone("yamnet", Y.yamnet_frontend(), WINDOW, len(Y.LAYERS), 1,
                          "YAMNet (Apache-2.0)")


def _yamnet_20ms() -> Backbone:
    from dataclasses import replace

    from edge_genre.train import yamnet as Y

    return YamnetBackbone("yamnet_20ms", replace(Y.yamnet_frontend(), hop_length=320), WINDOW,
                          len(Y.LAYERS), 1, "YAMNet (Apache-2.0)")


def _musicnn() -> Backbone:
    from edge_genre.train import musicnn as M

    return MusicnnBackbone("musicnn", M.musicnn_frontend(), WINDOW, 1, 1,
                           "musicnn MSD_musicnn (ISC)")


def _musicnn_robust() -> Backbone:
    from edge_genre.train import musicnn as M

    return RobustMusicnnBackbone("musicnn_robust", M.musicnn_frontend(), WINDOW, 1, 1,
                                 "musicnn MSD_musicnn (ISC), self-distilled on room copies")


_FACTORIES = {"yamnet": _yamnet, "yamnet_20ms": _yamnet_20ms, "musicnn": _musicnn,
              "musicnn_robust": _musicnn_robust,
              "yamnet_robust": lambda: _yamnet_robust("yamnet_robust", 160),
              "yamnet_robust_20ms": lambda: _yamnet_robust("yamnet_robust_20ms", 320),
              "student_robust": lambda: _yamnet_robust("student_robust", 320,
                                                       STUDENT_ROBUST_FILE),
              "yamnet_musicnn": lambda: _yamnet_robust(
                  "yamnet_musicnn", 160, YAMNET_MUSICNN_FILE,
                  "taught by musicnn MSD_musicnn (ISC) through room copies"),
              "student_musicnn": lambda: _yamnet_robust(
                  "student_musicnn", 320, STUDENT_MUSICNN_FILE,
                  "taught by musicnn MSD_musicnn (ISC) through room copies")}
BACKBONES = tuple(_FACTORIES)
_made: dict[str, Backbone] = {}


def get_backbone(name: str) -> Backbone:
    """The backbone called ``name`` (one of ``BACKBONES``)."""
    if name not in _FACTORIES:
        raise ModelError(f"unknown backbone {name!r} (choose from {', '.join(BACKBONES)})")
    if name not in _made:
        _made[name] = _FACTORIES[name]()
    return _made[name]


# ----------------------------------------------------------------------------- backbone maps


@dataclass
class Maps:
    """Backbone feature maps of every window of some tracks."""

    maps: np.ndarray  # (n, T, F, C) float16: (n, 13, 2, 1024) for the whole body
    y: np.ndarray  # (n,)
    track: np.ndarray  # (n,) index into tracks
    tracks: list[Track]


def _time_major(x: np.ndarray) -> np.ndarray:
    """(n, mels, frames, 1) model input -> (n, frames, mels, 1) as the bodies take it."""
    return np.ascontiguousarray(np.transpose(x, (0, 2, 1, 3)))


def backbone_maps(tracks: list[Track], weights=None, cache_dir: str | Path | None = None,
                  batch_size: int = 16, progress: Callable[[int, int, Track], None] | None = None,
                  depth: int | None = None, room: RoomCopy | None = None,
                  backbone: str = "yamnet") -> Maps:
    """Outputs of a backbone's first ``depth`` layers (all when None) for every window of
    ``tracks`` (cached per track on disk); with ``room``, of the tracks as a simulated room
    microphone hears them. ``weights`` are read when None and something is not cached."""
    b = get_backbone(backbone)
    depth = depth or b.n_layers
    cache = FeatureCache(cache_dir)
    key = b.maps_key(settings_key(b.frontend, b.window), depth)
    if room is not None:
        key += f"-{room.key()}"
    body = None
    out, ys, owners, kept = [], [], [], []
    for i, track in enumerate(tracks):
        if progress:
            progress(i, len(tracks), track)
        m = cache.get(b.cache_kind, track.path, key) if cache.folder else None
        if m is None:
            w = load_windows([track], b.frontend, b.window, cache_dir=cache_dir, room=room)
            if not len(w):
                continue  # reported by load_windows
            if body is None:
                body = b.build(weights if weights is not None else b.read_weights(), None, depth)
            m = body.predict(_time_major(w.x), batch_size=batch_size, verbose=0)
            m = m.astype(np.float16)
            cache.put(b.cache_kind, track.path, key, m)
        owners.append(np.full(len(m), len(kept)))
        ys.append(np.full(len(m), track.label))
        kept.append(track)
        out.append(m)
    if not out:
        raise DataError("no usable tracks")
    return Maps(np.concatenate(out), np.concatenate(ys), np.concatenate(owners), kept)
