"""The log-mel front-end in plain numpy: one definition for training and the edge runtime.

Plain functions over arrays, librosa-style: ``mel_filterbank``, ``power_spectrogram``,
``log_mel``, ``features``. librosa is the reference these are tested against
(``tests/edge/test_frontend.py``); nothing here imports it.

``StreamingFrontend`` produces the same features window by window from a live stream: each push
computes the STFT frames of its new samples once, into a preallocated ring of mel columns, and
a window is assembled from the stored frames (with a 4 s window and a 2 s hop, half a window of
frames per hop). ``StreamingWindows`` is its window cut alone, over a preallocated ring of
samples, giving each window's samples (what a waveform-in model file takes).
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


class MirroredRing:
    """The latest ``capacity`` items of a stream (samples, or frames' mel columns) in one
    preallocated buffer, addressed by absolute position in the stream.

    Every item is stored twice, ``capacity`` apart, so any run of up to ``capacity`` recent items
    is one contiguous view (``view``): no wrap-around to stitch and nothing concatenated per push.
    """

    def __init__(self, capacity: int, item_shape: tuple[int, ...] = (), dtype=np.float64):
        self.capacity = int(capacity)
        self._data = np.zeros((2 * self.capacity,) + tuple(item_shape), dtype=dtype)
        self.end = 0  # absolute position one past the newest item

    def append(self, items: np.ndarray, at: int | None = None) -> None:
        """Store ``items`` at positions ``at`` (default ``end``; a later ``at`` leaves a gap
        that is never read) onward; they replace the items ``capacity`` positions older."""
        if at is not None:
            if at < self.end:
                raise ValueError("a ring only appends")
            self.end = at
        n, cap = len(items), self.capacity
        if n > cap:
            raise ValueError(f"{n} items do not fit a ring of {cap}")
        i = self.end % cap
        first = min(n, cap - i)
        for base in (0, cap):  # both copies
            self._data[base + i:base + i + first] = items[:first]
            self._data[base:base + n - first] = items[first:]
        self.end += n

    def view(self, start: int, n: int) -> np.ndarray:
        """Items ``start`` .. ``start + n - 1`` (all still held), a view into the ring: valid
        until more than ``capacity - n`` further items are appended."""
        if n > self.capacity or start < self.end - self.capacity or start + n > self.end:
            raise IndexError(f"items {start}..{start + n} are not all in the ring "
                             f"(it holds {self.end - self.capacity}..{self.end})")
        i = start % self.capacity
        return self._data[i:i + n]


def _check_cut(window_samples: int, hop_samples: int) -> None:
    if hop_samples <= 0 or window_samples <= 0:
        raise ValueError("window and hop must be positive")


def _samples_capacity(window_samples: int, hop_samples: int) -> int:
    """Samples a stream's ring holds: a window, and space for a hop or a window more, whichever
    is longer (so a piece of a push is never shorter than that)."""
    return window_samples + max(window_samples, hop_samples)


class StreamingWindows:
    """Overlapping windows of a stream: the one window cut of the edge runtime.

    Windows start every ``hop_samples`` samples and are ``window_samples`` long; ``push`` returns
    one item per window that the samples so far complete, in order. Here the item is the window's
    samples (float32), what a waveform-in model takes; ``StreamingFrontend`` returns its features
    instead, with the same cut.

    The samples live in a preallocated ``MirroredRing`` of a window plus at least a hop (or a
    window, if longer): a push is written into it in pieces that fit, each followed by the
    windows it completes, so memory does not follow the stream or the push length.
    """

    def __init__(self, window_samples: int, hop_samples: int):
        _check_cut(window_samples, hop_samples)
        self.window_samples = int(window_samples)
        self.hop_samples = int(hop_samples)
        self._capacity = _samples_capacity(self.window_samples, self.hop_samples)
        self.reset()

    def reset(self) -> None:
        self._samples = MirroredRing(self._capacity)
        self._next_window = 0  # absolute start of the next window to emit
        self.frames_computed = 0  # STFT frames (StreamingFrontend); 0 for raw windows
        self.frames_reused = 0

    @property
    def samples_seen(self) -> int:
        return self._samples.end

    def push(self, samples: np.ndarray) -> list[np.ndarray]:
        """Add mono samples; return what ``_emit`` gives for each completed window."""
        return [item for _, item in self._push(samples, keep_windows=False)]

    def push_windows(self, samples: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """``push``, each item paired with its window's samples (a float64 copy: for levels and
        silence gates)."""
        return self._push(samples, keep_windows=True)

    def _push(self, samples, keep_windows: bool) -> list[tuple[np.ndarray | None, np.ndarray]]:
        samples = np.asarray(samples).reshape(-1)
        out = []
        pos = 0
        while pos < len(samples):
            # Every sample from the next window's start on is still needed; the rest of the
            # ring is space for this piece (less than a window is kept, so the space is at least
            # max(window, hop)).
            kept = max(0, self.samples_seen - self._next_window)
            piece = samples[pos:pos + self._capacity - kept]
            pos += len(piece)
            self._samples.append(piece)
            self._on_samples()
            while self._next_window + self.window_samples <= self.samples_seen:
                start = self._next_window
                window = self._samples.view(start, self.window_samples)
                out.append((window.copy() if keep_windows else None, self._emit(start, window)))
                self._next_window += self.hop_samples
        return out

    def _on_samples(self) -> None:
        """Called after each piece of samples is stored, before its windows are emitted."""

    def _emit(self, start: int, window: np.ndarray) -> np.ndarray:
        """The item for the window starting at absolute sample ``start`` (``window``: its
        samples, a view into the ring): its samples, float32."""
        return window.astype(np.float32)


class StreamingFrontend(StreamingWindows):
    """Features of overlapping windows of a stream, each STFT frame computed once.

    The windows are ``StreamingWindows``'s. With a hop that is a whole number of STFT hops (as
    ``WindowConfig.hop_samples`` makes it), window ``m``'s frame ``k`` starts at absolute sample
    ``q * hop_length - pad`` with ``q = m * hop_samples / hop_length + k``, so frame ``q`` is
    the same for every window it lies wholly inside (not in a window's centre padding). Each
    push computes the mel columns of the frames its new samples complete, once, into a
    preallocated ``MirroredRing`` of columns; a window is assembled from its stored columns plus
    the few padded boundary frames of a centred front-end, which depend on where the window starts.
    With a 4 s window and a 2 s hop, a hop computes about half a window of frames. The log,
    resize and normalisation (``finish``) still run once per window, on the whole window.

    ``push`` returns what ``features`` returns for each window's samples: the same arithmetic
    on the same frames (bit-identical in the tests; a BLAS may round the mel product of a batch
    of another size differently in the last bit). ``frames_computed`` counts the STFT frames
    computed, ``frames_reused`` the frames a window took from the previous window's.
    """

    def __init__(self, cfg: FrontendConfig, window_samples: int, hop_samples: int):
        _check_cut(window_samples, hop_samples)
        self.cfg = cfg
        window_samples, hop_samples = int(window_samples), int(hop_samples)
        self._mel = mel_filterbank(cfg).astype(np.float64)
        self._rel_starts = frame_starts(cfg, window_samples)
        self._pad = cfg.n_fft // 2 if cfg.center else 0
        inside = np.flatnonzero((self._rel_starts >= 0)
                                & (self._rel_starts + cfg.n_fft <= window_samples))
        # Frames shared between windows: k_lo <= k < k_hi, on the stream's frame grid.
        self._k_lo = int(inside[0]) if len(inside) else 0
        self._k_hi = int(inside[-1]) + 1 if len(inside) else 0
        self._reuse = len(inside) > 0 and hop_samples % cfg.hop_length == 0
        if not self._reuse:
            self._k_lo = self._k_hi = 0
        self._frames_per_hop = hop_samples // cfg.hop_length
        k = np.arange(len(self._rel_starts))
        self._boundary_k = k[(k < self._k_lo) | (k >= self._k_hi)]  # computed per window
        # Columns of every frame whose samples the sample ring holds, and two to spare.
        self._columns_capacity = (_samples_capacity(window_samples, hop_samples)
                                  // cfg.hop_length + 2)
        super().__init__(window_samples, hop_samples)

    def reset(self) -> None:
        super().reset()
        self._columns = MirroredRing(self._columns_capacity, (self._mel.shape[0],))
        self._next_frame = self._k_lo  # window 0's first shared frame
        self._prev_shared_end = None  # one past the last shared frame of the previous window

    def _mel_columns(self, frames: np.ndarray) -> np.ndarray:
        """Mel power of frames (n, n_fft) -> (n, n_mels); the product ``mel_power`` takes."""
        return frames_power(frames, self.cfg) @ self._mel.T

    # -------------------------------------------------------------- shared frames, per push

    def _next_needed(self, q: int) -> int:
        """The first frame at or after ``q`` that some window shares (all of them unless the
        hop is longer than a window's shared frames)."""
        f, lo, hi = self._frames_per_hop, self._k_lo, self._k_hi
        if q < lo:
            return lo
        m = (q - lo) // f  # the latest window whose shared frames start at or before q
        return q if q < m * f + hi else (m + 1) * f + lo

    def _on_samples(self) -> None:
        if not self._reuse:
            return
        cfg, f = self.cfg, self._frames_per_hop
        contiguous = self._k_hi - self._k_lo >= f  # consecutive windows' shared frames touch
        last = (self.samples_seen + self._pad - cfg.n_fft) // cfg.hop_length  # last complete
        q = self._next_frame
        while True:
            q = self._next_needed(q)
            if q > last:
                break
            stop = last + 1
            if not contiguous:
                stop = min(stop, ((q - self._k_lo) // f) * f + self._k_hi)
            n = stop - q
            start = q * cfg.hop_length - self._pad
            run = self._samples.view(start, (n - 1) * cfg.hop_length + cfg.n_fft)
            frames = np.lib.stride_tricks.sliding_window_view(run, cfg.n_fft)[::cfg.hop_length]
            self._columns.append(self._mel_columns(frames), at=q)
            self.frames_computed += n
            q = stop
        self._next_frame = q

    # -------------------------------------------------------------- a window, per hop

    def _boundary_frames(self, window: np.ndarray, ks: np.ndarray) -> np.ndarray:
        """Frames ``ks`` of ``window`` zero-padded as ``power_spectrogram`` pads it, built from
        a segment just long enough for them (frames near one end only, or all of them)."""
        n_fft = self.cfg.n_fft
        rel = self._rel_starts[ks]
        lo, hi = int(rel[0]), int(rel[-1]) + n_fft
        segment = np.zeros(hi - lo, dtype=np.float64)
        a, b = max(lo, 0), min(hi, len(window))
        if b > a:
            segment[a - lo:b - lo] = window[a:b]
        return _gather_frames(segment, rel - lo, n_fft)

    def _emit(self, start: int, window: np.ndarray) -> np.ndarray:
        columns = np.empty((len(self._rel_starts), self._mel.shape[0]), dtype=np.float64)
        if self._reuse:
            q0 = (start // self.hop_samples) * self._frames_per_hop + self._k_lo
            columns[self._k_lo:self._k_hi] = self._columns.view(q0, self._k_hi - self._k_lo)
            if self._prev_shared_end is not None:
                self.frames_reused += max(0, self._prev_shared_end - q0)
            self._prev_shared_end = q0 + self._k_hi - self._k_lo
        boundary = self._boundary_k
        if len(boundary):
            left, right = boundary[boundary < self._k_lo], boundary[boundary >= self._k_hi]
            frames = [self._boundary_frames(window, ks) for ks in (left, right) if len(ks)]
            columns[boundary] = self._mel_columns(np.concatenate(frames))
            self.frames_computed += len(boundary)
        return finish(columns.T, self.cfg)
