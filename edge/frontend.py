"""The log-mel front-end in plain numpy: one definition for training and the edge runtime.

Plain functions over arrays, librosa-style: ``mel_filterbank``, ``power_spectrogram``,
``log_mel``, ``features``. librosa is the reference these are tested against
(``tests/edge/test_frontend.py``); nothing here imports it.

``StreamingFrontend`` produces the same features window by window from a live stream, reusing
the STFT frames that consecutive windows share; ``StreamingWindows`` is its window cut alone,
giving each window's samples (what a waveform-in model file takes).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from edge_genre.edge.config import FrontendConfig

# ----------------------------------------------------------------------------- mel scale


def hz_to_mel(freqs, htk: bool = False):
    """Hz to mel, librosa's ``hz_to_mel`` (Slaney's scale by default, HTK's with ``htk``)."""
    freqs = np.asanyarray(freqs, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + freqs / 700.0)
    f_sp = 200.0 / 3
    mels = freqs / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(freqs >= min_log_hz,
                    min_log_mel + np.log(np.maximum(freqs, 1e-10) / min_log_hz) / logstep, mels)


def mel_to_hz(mels, htk: bool = False):
    """Inverse of ``hz_to_mel``."""
    mels = np.asanyarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


@lru_cache(maxsize=16)
def _mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, htk, slaney_norm) -> np.ndarray:
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if slaney_norm:
        weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    weights = weights.astype(np.float32)
    weights.setflags(write=False)
    return weights


def mel_filterbank(cfg: FrontendConfig) -> np.ndarray:
    """Mel weights of shape (n_mels, 1 + n_fft // 2), as ``librosa.filters.mel``."""
    return _mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, float(cfg.fmin),
                           float(cfg.max_frequency), cfg.mel_scale == "htk",
                           cfg.mel_norm == "slaney")


@lru_cache(maxsize=16)
def _analysis_window(n_fft: int, win_length: int) -> np.ndarray:
    # Periodic Hann (scipy's get_window('hann', n, fftbins=True)), centred in n_fft as librosa does.
    n = np.arange(win_length)
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)
    left = (n_fft - win_length) // 2
    full = np.zeros(n_fft, dtype=np.float64)
    full[left:left + win_length] = win
    full.setflags(write=False)
    return full


def analysis_window(cfg: FrontendConfig) -> np.ndarray:
    return _analysis_window(cfg.n_fft, cfg.window_length)


# ----------------------------------------------------------------------------- spectra


def frame_starts(cfg: FrontendConfig, n_samples: int) -> np.ndarray:
    """Start sample of every frame of a window, relative to the window (negative when centred)."""
    n = cfg.n_frames(n_samples)
    if n < 1:
        return np.zeros(0, dtype=np.int64)
    starts = np.arange(n, dtype=np.int64) * cfg.hop_length
    if cfg.center:
        starts -= cfg.n_fft // 2
    return starts


def frames_power(frames: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """|rfft(window * frame)| ** power for frames of shape (n, n_fft) -> (n, 1 + n_fft // 2)."""
    spec = np.fft.rfft(frames * analysis_window(cfg), axis=-1)
    mag2 = spec.real ** 2 + spec.imag ** 2
    if cfg.power == 2.0:
        return mag2
    return mag2 ** (cfg.power / 2.0)


def _gather_frames(padded: np.ndarray, starts: np.ndarray, n_fft: int) -> np.ndarray:
    view = np.lib.stride_tricks.sliding_window_view(padded, n_fft)
    return view[starts]


def power_spectrogram(y: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Power (or magnitude) spectrogram of one window, shape (1 + n_fft // 2, frames)."""
    y = np.asarray(y, dtype=np.float64)
    starts = frame_starts(cfg, len(y))
    pad = cfg.n_fft // 2 if cfg.center else 0
    # Enough zeros after the end that every frame is whole (librosa pads the same way).
    padded = np.pad(y, (pad, pad + cfg.n_fft))
    frames = _gather_frames(padded, starts + pad, cfg.n_fft)
    return frames_power(frames, cfg).T


def mel_power(y: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Mel spectrogram before the log, shape (n_mels, frames), as ``librosa.feature.melspectrogram``."""
    return mel_filterbank(cfg).astype(np.float64) @ power_spectrogram(y, cfg)


def to_log(mel: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """dB (librosa's ``power_to_db``) or natural log with an offset, as the config says."""
    if cfg.scale == "log":
        return np.log(mel + cfg.log_offset)
    log_spec = 10.0 * np.log10(np.maximum(cfg.amin, mel))
    ref = float(np.max(mel)) if cfg.ref == "max" else float(cfg.ref)
    log_spec -= 10.0 * np.log10(max(cfg.amin, ref))
    if cfg.top_db is not None:
        log_spec = np.maximum(log_spec, log_spec.max() - cfg.top_db)
    return log_spec


def log_mel(y: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Log-mel spectrogram of one window, shape (n_mels, frames)."""
    return to_log(mel_power(y, cfg), cfg)


def resize_bilinear(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize with half-pixel centres, as ``tf.image.resize`` (no antialias) and OpenCV."""
    out_h, out_w = size
    in_h, in_w = image.shape

    def axis(n_in, n_out):
        x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        x = np.clip(x, 0, n_in - 1)
        lo = np.floor(x).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, x - lo

    y0, y1, wy = axis(in_h, out_h)
    x0, x1, wx = axis(in_w, out_w)
    top = image[y0][:, x0] * (1 - wx) + image[y0][:, x1] * wx
    bottom = image[y1][:, x0] * (1 - wx) + image[y1][:, x1] * wx
    return top * (1 - wy)[:, None] + bottom * wy[:, None]


def finish(mel: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Mel power (n_mels, frames) -> model input (height, width, 1) float32: log, resize, normalise."""
    image = to_log(mel, cfg)
    if cfg.resize is not None:
        image = resize_bilinear(image, cfg.resize)
    image = (image - cfg.mean) / cfg.std
    return image.astype(np.float32)[..., None]


def features(y: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """One window of audio at ``cfg.sample_rate`` -> the model's input, shape (height, width, 1)."""
    return finish(mel_power(y, cfg), cfg)


def features_batch(windows: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Features of a batch of equal-length windows, shape (n, height, width, 1)."""
    return np.stack([features(w, cfg) for w in windows]) if len(windows) else np.zeros(
        (0,) + cfg.feature_shape(0), dtype=np.float32)


# ----------------------------------------------------------------------------- streaming


class StreamingWindows:
    """Overlapping windows of a stream: the one window cut of the edge runtime.

    Windows start every ``hop_samples`` samples and are ``window_samples`` long; ``push`` returns
    one item per window that the samples so far complete, in order. Here the item is the window's
    samples (float32), what a waveform-in model takes; ``StreamingFrontend`` returns its features
    instead, with the same cut.
    """

    def __init__(self, window_samples: int, hop_samples: int):
        if hop_samples <= 0 or window_samples <= 0:
            raise ValueError("window and hop must be positive")
        self.window_samples = int(window_samples)
        self.hop_samples = int(hop_samples)
        self.reset()

    def reset(self) -> None:
        self._buffer = np.zeros(0, dtype=np.float64)
        self._buffer_start = 0  # absolute index of _buffer[0]
        self._next_window = 0  # absolute start of the next window to emit
        self.frames_computed = 0  # STFT frames (StreamingFrontend); 0 for raw windows
        self.frames_reused = 0

    @property
    def samples_seen(self) -> int:
        return self._buffer_start + len(self._buffer)

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        """Add mono samples; return what ``_emit`` gives for each completed window."""
        return [item for _, item in self.push_windows(samples)]

    def push_windows(self, samples: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """``push``, each item paired with its window's samples (float64, read-only use: for
        levels and silence gates)."""
        samples = np.asarray(samples, dtype=np.float64).reshape(-1)
        self._buffer = np.concatenate([self._buffer, samples])
        out = []
        while self._next_window + self.window_samples <= self.samples_seen:
            out.append((self._window(self._next_window), self._emit(self._next_window)))
            self._next_window += self.hop_samples
        self._trim()  # rebinds the buffer: the windows handed out stay as they are
        return out

    def _window(self, start: int) -> np.ndarray:
        offset = start - self._buffer_start
        return self._buffer[offset:offset + self.window_samples]

    def _emit(self, start: int) -> np.ndarray:
        """The window starting at absolute sample ``start``: its samples, float32."""
        return self._window(start).astype(np.float32)

    def _trim(self) -> None:
        keep_from = self._next_window  # nothing before the next window is needed again
        drop = keep_from - self._buffer_start
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._buffer_start = keep_from


class StreamingFrontend(StreamingWindows):
    """Features of overlapping windows of a stream, reusing the frames windows share.

    The windows are ``StreamingWindows``'s. A frame that lies wholly inside the stream (not in a
    window's centre padding) depends only on the audio under it, so it is computed once and kept
    while a later window still needs it; only the frames that are new since the last window (and
    the few padded edge frames of a centred front-end) are computed per hop. ``push`` returns
    exactly what ``features`` returns for each window's samples.
    """

    def __init__(self, cfg: FrontendConfig, window_samples: int, hop_samples: int):
        super().__init__(window_samples, hop_samples)  # checks them; reset() needs no cfg
        self.cfg = cfg
        self._rel_starts = frame_starts(cfg, self.window_samples)
        self._interior = (self._rel_starts >= 0) & (
            self._rel_starts + cfg.n_fft <= self.window_samples)
        self._mel = mel_filterbank(cfg).astype(np.float64)

    def reset(self) -> None:
        super().reset()
        self._cache: dict[int, np.ndarray] = {}  # absolute frame start -> mel column

    def _emit(self, start: int) -> np.ndarray:
        return self._window_features(start)

    def _window_features(self, start: int) -> np.ndarray:
        cfg = self.cfg
        window = self._window(start)
        columns = np.empty((len(self._rel_starts), self._mel.shape[0]), dtype=np.float64)
        missing = []
        for j, (rel, inside) in enumerate(zip(self._rel_starts, self._interior)):
            cached = self._cache.get(start + rel) if inside else None
            if cached is None:
                missing.append(j)
            else:
                columns[j] = cached
        self.frames_reused += len(self._rel_starts) - len(missing)
        if missing:
            idx = np.array(missing)
            pad = cfg.n_fft // 2 if cfg.center else 0
            padded = np.pad(window, (pad, pad + cfg.n_fft))
            frames = _gather_frames(padded, self._rel_starts[idx] + pad, cfg.n_fft)
            mel_cols = frames_power(frames, cfg) @ self._mel.T
            columns[idx] = mel_cols
            self.frames_computed += len(missing)
            for j, col in zip(missing, mel_cols):
                if self._interior[j]:
                    self._cache[start + int(self._rel_starts[j])] = col
        return finish(columns.T, cfg)

    def _trim(self) -> None:
        super()._trim()
        for key in [k for k in self._cache if k < self._next_window]:
            del self._cache[key]
