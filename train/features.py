"""From tracks to model windows: decode, cut into windows, compute features, cache on disk.

Windows are cut by the runtime's rule (``edge.windowing``: a window every hop, the last partial
window dropped, a short track zero-padded to one window when it holds ``min_fill`` of it); a track
with no window under that rule is skipped.

The cache is keyed by the file's content hash and the front-end + window settings (without the
input normalisation, which is applied on load), so a second run reads instead of recomputing and a
changed setting never reads stale features.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from edge_genre.edge import audio as audio_io
from edge_genre.edge import frontend as fe
from edge_genre.edge.config import FrontendConfig, WindowConfig
from edge_genre.edge.windowing import cut_windows
from edge_genre.errors import AudioError
from edge_genre.train.data import Track, file_digest

log = logging.getLogger("edge_genre")

#: Bump when the feature computation changes in a way the settings do not show.
FEATURE_VERSION = 1


@dataclass
class LabelledWindows:
    """The windows of a list of tracks, each with its genre label and its owner track: model
    inputs (features, unnormalised until ``normalized``; or samples, for a waveform-in model),
    and the tracks that could not be read."""

    x: np.ndarray  # (n, H, W, 1) float32 features, or (n, samples) float32 for a waveform-in model
    y: np.ndarray  # (n,) int label
    track: np.ndarray  # (n,) index into ``tracks``
    tracks: list[Track]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.y)

    def normalized(self, frontend: FrontendConfig) -> np.ndarray:
        return ((self.x - frontend.mean) / frontend.std).astype(np.float32)

    def _indices(self, tracks: list[Track]) -> list[int]:
        """Indices into ``self.tracks`` of ``tracks`` (those present, in the order given)."""
        by_id = {t.track_id: i for i, t in enumerate(self.tracks)}
        return [by_id[t.track_id] for t in tracks if t.track_id in by_id]

    def row_mask(self, tracks: list[Track]) -> np.ndarray:
        """Boolean mask of the windows of ``tracks`` (those present)."""
        return np.isin(self.track, self._indices(tracks))

    def select(self, tracks: list[Track]) -> "LabelledWindows":
        """The windows of ``tracks`` (those present, in the order given), owners renumbered."""
        keep = self._indices(tracks)
        mask = np.isin(self.track, keep)
        remap = {old: new for new, old in enumerate(keep)}
        return LabelledWindows(self.x[mask], self.y[mask],
                               np.array([remap[o] for o in self.track[mask]], dtype=int),
                               [self.tracks[o] for o in keep])


def unnormalized(frontend: FrontendConfig) -> FrontendConfig:
    return replace(frontend, mean=0.0, std=1.0)


def settings_key(frontend: FrontendConfig, window: WindowConfig | None = None) -> str:
    d = {"frontend": unnormalized(frontend).to_dict(), "version": FEATURE_VERSION}
    if window is not None:
        d["window"] = window.to_dict()
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


#: Cache folders found unwritable in this process (each is warned about once).
_UNWRITABLE: set[Path] = set()


class FeatureCache:
    """``.npy`` files under a folder, one per (file content, settings). A folder that cannot be
    created or written (read-only, full, a file in the way) turns the cache off with one
    warning: the work is done without it, never stopped by it."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder else None
        self._digests: dict[Path, str] = {}
        if self.folder:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                self._turn_off(err)

    def _turn_off(self, err: OSError) -> None:
        if self.folder not in _UNWRITABLE:
            _UNWRITABLE.add(self.folder)
            log.warning("feature cache off: %s cannot be written (%s)", self.folder,
                        err.strerror or err)
        self.folder = None

    def digest(self, path: Path) -> str:
        if path not in self._digests:
            self._digests[path] = file_digest(path)
        return self._digests[path]

    def _file(self, kind: str, path: Path, key: str) -> Path | None:
        if not self.folder:
            return None
        return self.folder / kind / key / f"{self.digest(path)[:24]}.npy"

    def get(self, kind: str, path: Path, key: str) -> np.ndarray | None:
        f = self._file(kind, path, key)
        if f is not None and f.is_file():
            try:
                return np.load(f)
            except (OSError, ValueError):
                return None  # a torn write: recompute
        return None

    def put(self, kind: str, path: Path, key: str, value: np.ndarray) -> None:
        f = self._file(kind, path, key)
        if f is None:
            return
        tmp = f.with_suffix(".tmp.npy")
        try:
            f.parent.mkdir(parents=True, exist_ok=True)
            np.save(tmp, value)
            tmp.replace(f)
        except OSError as err:
            with contextlib.suppress(OSError):
                tmp.unlink()
            self._turn_off(err)


def track_audio(track: Track, sample_rate: int, cache: FeatureCache | None = None) -> np.ndarray:
    """Mono float32 audio of a track at ``sample_rate`` (cached). Raises AudioError."""
    key = f"sr{sample_rate}"
    cached = cache.get("audio", track.path, key) if cache else None
    if cached is not None:
        return cached
    y = audio_io.load(track.path, sample_rate)
    if cache:
        cache.put("audio", track.path, key, y)
    return y


def track_features(track: Track, frontend: FrontendConfig, window: WindowConfig,
                   cache: FeatureCache | None = None, room=None) -> np.ndarray:
    """Unnormalised features of every window of a track, (n, H, W, 1). Raises AudioError for a
    file that cannot be used (corrupt, empty, silent, shorter than the window rule allows).
    ``room`` (a ``roomsim.RoomCopy``) hears the track through a simulated room microphone."""
    frontend = unnormalized(frontend)
    key = settings_key(frontend, window) + (f"-{room.key()}" if room is not None else "")
    cached = cache.get("features", track.path, key) if cache else None
    if cached is not None:
        return cached
    y = track_audio(track, frontend.sample_rate, cache)
    if audio_io.is_silent(y):
        raise AudioError(f"{track.path}: silent (peak below {audio_io.SILENCE_PEAK:g})")
    if room is not None:
        y = room.apply(y, frontend.sample_rate, track.track_id)
    cut = cut_windows(y, frontend, window)
    if len(cut) == 0:
        raise AudioError(f"{track.path}: {len(y) / frontend.sample_rate:.2f} s is shorter than "
                         f"{window.min_fill:.0%} of one {window.seconds:g} s window")
    x = fe.features_batch(cut, frontend)
    if cache:
        cache.put("features", track.path, key, x)
    return x


def load_windows(tracks: list[Track], frontend: FrontendConfig, window: WindowConfig,
                 cache_dir: str | Path | None = None,
                 progress: Callable[[int, int, Track], None] | None = None,
                 room=None) -> LabelledWindows:
    """Features of all windows of ``tracks``. Bad files are logged once by name and skipped.
    ``room`` (a ``roomsim.RoomCopy``): the tracks as a simulated room microphone hears them."""
    cache = FeatureCache(cache_dir)

    def features():
        for i, track in enumerate(tracks):
            if progress:
                progress(i, len(tracks), track)
            try:
                yield track, track_features(track, frontend, window, cache, room)
            except AudioError as exc:
                log.warning("skipping %s", exc)
                yield track, str(exc)

    return gather_windows(features(), frontend, window)


def gather_windows(features, frontend: FrontendConfig, window: WindowConfig) -> LabelledWindows:
    """The ``LabelledWindows`` of (track, features) pairs, in their order: features an array of
    the track's windows, or the text of the ``AudioError`` that skips it. No windows: an empty
    set of the front-end's feature shape. ``load_windows`` and ``paper_cv``'s worker processes
    both end here."""
    xs, ys, owners, kept, skipped = [], [], [], [], []
    for track, x in features:
        if isinstance(x, str):
            skipped.append((track.path, x))
            continue
        owners.append(np.full(len(x), len(kept)))
        kept.append(track)
        xs.append(x)
        ys.append(np.full(len(x), track.label))
    if not xs:
        shape = (0,) + frontend.feature_shape(window.window_samples(frontend))
        return LabelledWindows(np.zeros(shape, np.float32), np.zeros(0, int), np.zeros(0, int), [],
                               skipped)
    return LabelledWindows(np.concatenate(xs), np.concatenate(ys), np.concatenate(owners), kept,
                           skipped)


def normalization_stats(x: np.ndarray) -> tuple[float, float]:
    """Scalar mean and standard deviation of training features (stored in the model card)."""
    mean = float(np.mean(x, dtype=np.float64))
    std = float(np.std(x, dtype=np.float64))
    return mean, max(std, 1e-6)
