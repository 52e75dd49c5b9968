"""On-the-fly augmentation of feature windows, in numpy, per training batch.

Everything works on NORMALISED log-mel windows (n, n_mels, frames, 1), because that is what the
training loop holds in memory; nothing re-runs the front-end, so augmentation costs well under a
millisecond per window.

Why these and not others:
- Gain is deliberately absent: the front-end's dB uses ``ref="max"``, which subtracts the window's
  own peak, so a gain change of the audio is an exact no-op on the features (only the top_db floor
  could move, and it moves with the peak too). A gain augmentation would be wasted work.
- Time shift: a circular roll along time. Genre does not depend on where in the 4 s a beat falls.
- Frequency shift by a few mel bins approximates a small pitch shift (mel bins are nearly
  log-spaced above 1 kHz); the vacated rows take the window's minimum (the dB floor).
- SpecAugment-style masks (Park et al. 2019): a few frequency bands and time spans set to the
  batch mean (0 after normalisation) so the net cannot lean on one band or one moment.
- Mixup (Zhang et al. 2018) of two windows and their one-hot labels, in the (normalised) dB
  domain. Mixing dB is not mixing audio, but it regularises the same way and is free.
- Small Gaussian noise on the features.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and sizes of each augmentation. ``enabled=False`` turns all of them off.

    Parameters
    ----------
    time_shift : probability of a circular time roll (uniform offset over the whole window).
    freq_shift_bins : largest shift in mel bins (up or down); 0 disables it.
    freq_shift_prob : probability of a frequency shift.
    freq_masks, freq_mask_bins : number of frequency masks and their largest width in bins.
    time_masks, time_mask_frames : number of time masks and their largest width in frames.
    mixup_alpha : Beta(alpha, alpha) mixing weight; 0 disables mixup.
    mixup_prob : fraction of a batch that is mixed.
    noise_std : standard deviation of additive Gaussian noise (normalised units); 0 disables it.
    """

    enabled: bool = True
    time_shift: float = 0.5
    freq_shift_bins: int = 2
    freq_shift_prob: float = 0.3
    freq_masks: int = 2
    freq_mask_bins: int = 8
    time_masks: int = 2
    time_mask_frames: int = 20
    mixup_alpha: float = 0.3
    mixup_prob: float = 0.5
    noise_std: float = 0.05

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


NO_AUGMENTATION = AugmentConfig(enabled=False)


def time_roll(x: np.ndarray, rng: np.random.Generator, prob: float) -> np.ndarray:
    """Roll each window along time (axis 2) by a random offset, with probability ``prob``."""
    out = x.copy()
    frames = x.shape[2]
    for i in np.flatnonzero(rng.random(len(x)) < prob):
        out[i] = np.roll(x[i], int(rng.integers(1, frames)), axis=1)
    return out


def freq_shift(x: np.ndarray, rng: np.random.Generator, max_bins: int, prob: float) -> np.ndarray:
    """Shift windows up or down by up to ``max_bins`` mel bins; vacated rows take the minimum."""
    if max_bins <= 0:
        return x
    out = x.copy()
    for i in np.flatnonzero(rng.random(len(x)) < prob):
        k = int(rng.integers(-max_bins, max_bins + 1))
        if k == 0:
            continue
        floor = x[i].min()
        out[i] = floor
        if k > 0:
            out[i, k:] = x[i, :-k]
        else:
            out[i, :k] = x[i, -k:]
    return out


def masks(x: np.ndarray, rng: np.random.Generator, n: int, width: int, axis: int,
          fill: float = 0.0) -> np.ndarray:
    """``n`` random masks of up to ``width`` rows (axis 1) or columns (axis 2) per window."""
    if n <= 0 or width <= 0:
        return x
    out = x.copy()
    size = x.shape[axis]
    for i in range(len(x)):
        for _ in range(n):
            w = int(rng.integers(0, width + 1))
            if w == 0:
                continue
            start = int(rng.integers(0, max(1, size - w)))
            if axis == 1:
                out[i, start:start + w] = fill
            else:
                out[i, :, start:start + w] = fill
    return out


def mixup(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, alpha: float, prob: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """Mix a fraction ``prob`` of the windows with a random partner; labels mixed alike."""
    if alpha <= 0 or len(x) < 2:
        return x, y
    lam = rng.beta(alpha, alpha, size=len(x)).astype(np.float32)
    lam = np.maximum(lam, 1 - lam)  # the window keeps most of its own label
    lam[rng.random(len(x)) >= prob] = 1.0
    partner = rng.permutation(len(x))
    xm = lam[:, None, None, None] * x + (1 - lam[:, None, None, None]) * x[partner]
    ym = lam[:, None] * y + (1 - lam[:, None]) * y[partner]
    return xm.astype(np.float32), ym.astype(np.float32)


def augment_batch(x: np.ndarray, y_onehot: np.ndarray, rng: np.random.Generator,
                  cfg: AugmentConfig) -> tuple[np.ndarray, np.ndarray]:
    """Augment a batch of normalised windows (n, H, W, 1) and their one-hot labels (n, C)."""
    if not cfg.enabled:
        return x, y_onehot
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y_onehot, dtype=np.float32)
    if cfg.time_shift > 0:
        x = time_roll(x, rng, cfg.time_shift)
    x = freq_shift(x, rng, cfg.freq_shift_bins, cfg.freq_shift_prob)
    x = masks(x, rng, cfg.freq_masks, cfg.freq_mask_bins, axis=1)
    x = masks(x, rng, cfg.time_masks, cfg.time_mask_frames, axis=2)
    x, y = mixup(x, y, rng, cfg.mixup_alpha, cfg.mixup_prob)
    if cfg.noise_std > 0:
        x = x + rng.normal(0.0, cfg.noise_std, size=x.shape).astype(np.float32)
    return x.astype(np.float32), y
