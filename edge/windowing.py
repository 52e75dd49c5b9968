"""The window rule and the track mean: how a track becomes model windows, and how the windows'
probabilities become the track's genre. Defined once here; training, export, the benchmarks and
the runtime's ``Classifier`` all call these.

Window rule (settings in ``WindowConfig``): windows of ``window.window_samples`` samples start
every ``window.hop_samples`` samples (the hop rounded to whole STFT hops) from sample 0; the last
partial window is dropped. A track shorter than one window is zero-padded to one window when it
holds at least ``window.min_fill`` of it, and has no windows otherwise.

Track mean: a track's probabilities are the mean of its windows' probabilities, and its genre
their argmax (as the paper does for a track).

Plain numpy; no model, no I/O.
"""
from __future__ import annotations

import numpy as np

from edge_genre.edge.config import FrontendConfig, WindowConfig


# ----------------------------------------------------------------------------- the window rule


def padding(n_samples: int, frontend: FrontendConfig, window: WindowConfig) -> int | None:
    """Zeros the rule appends to a signal of ``n_samples`` samples before cutting it.

    0 for a signal that holds at least one window; ``window_samples - n_samples`` for a shorter
    one that holds at least ``min_fill`` of a window; None for one too short to have a window.
    """
    size = window.window_samples(frontend)
    if n_samples >= size:
        return 0
    return size - n_samples if n_samples >= window.min_fill * size else None


def window_span(index: int, frontend: FrontendConfig, window: WindowConfig) -> tuple[int, int]:
    """(first sample, one past the last) of window number ``index`` (from 0) of a track or a
    stream: windows start every hop from sample 0."""
    start = index * window.hop_samples(frontend)
    return start, start + window.window_samples(frontend)


def window_starts(n_samples: int, frontend: FrontendConfig, window: WindowConfig) -> list[int]:
    """Start samples of the windows of a signal of ``n_samples`` samples: those of the
    ``window_span``s that end within the signal after ``padding`` (0, hop, 2 * hop, ...); []
    when it is too short."""
    pad = padding(n_samples, frontend, window)
    if pad is None:
        return []
    count = (n_samples + pad - window.window_samples(frontend)) // window.hop_samples(frontend) + 1
    return [window_span(k, frontend, window)[0] for k in range(count)]


def cut_windows(y: np.ndarray, frontend: FrontendConfig, window: WindowConfig) -> np.ndarray:
    """(n_windows, window_samples) array of a mono signal's windows, in order (may be empty);
    the dtype of ``y`` (float32 for an empty result)."""
    y = np.asarray(y)
    size = window.window_samples(frontend)
    pad = padding(len(y), frontend, window)
    if pad is None:
        return np.zeros((0, size), np.float32)
    if pad:
        y = np.pad(y, (0, pad))
    return np.stack([y[s:s + size] for s in window_starts(len(y), frontend, window)])


# ----------------------------------------------------------------------------- the track mean


def track_mean(window_probs: np.ndarray) -> np.ndarray:
    """A track's probabilities from its windows' (n_windows, n_labels) probabilities: their mean
    over the windows (summed in window order), shape (n_labels,), in the input's float dtype.

    A track without windows (``n_windows == 0``, e.g. all of them silent) has no genre: zeros.
    """
    probs = np.asarray(window_probs)
    if not np.issubdtype(probs.dtype, np.floating):
        probs = probs.astype(np.float64)
    if probs.ndim != 2:
        raise ValueError(f"window probabilities must be (n_windows, n_labels), not {probs.shape}")
    if len(probs) == 0:
        return np.zeros(probs.shape[1], dtype=probs.dtype)
    return probs.mean(axis=0)


def track_probabilities(window_probs: np.ndarray, owners: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Each track's ``track_mean`` from the windows of many tracks.

    Parameters
    ----------
    window_probs : (n_windows, n_labels) probabilities, one row per window.
    owners : (n_windows,) the track (any integer id) each window belongs to; a track's windows
        need not be contiguous.

    Returns
    -------
    ids : (n_tracks,) the owner ids present, ascending.
    probs : (n_tracks, n_labels) row ``j`` is the mean probability of the windows of ``ids[j]``
        (the track's genre is its argmax).
    """
    probs = np.asarray(window_probs)
    owners = np.asarray(owners)
    if len(owners) != len(probs):
        raise ValueError(f"{len(owners)} owners for {len(probs)} windows")
    ids = np.unique(owners)
    means = [track_mean(probs[owners == i]) for i in ids]
    return ids, np.stack(means) if means else np.zeros((0, probs.shape[1]), np.float32)
