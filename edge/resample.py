"""Sample-rate conversion in numpy: a polyphase windowed-sinc resampler that also streams.

Microphones often open only at 44.1 or 48 kHz, and datasets come at any rate; the model wants
its own. ``Resampler`` converts chunk by chunk with carried state, so a stream resampled in pieces
equals the whole signal resampled at once (the streaming front-end relies on that), and
``resample`` does a whole signal.
"""
from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Zero crossings of the sinc on each side and the Kaiser window's beta: a -80 dB-class filter,
#: transparent for log-mel features and cheap enough for a Pi (about 40 taps per output at 48k->16k).
ZERO_CROSSINGS = 16
KAISER_BETA = 8.6
ROLLOFF = 0.945
#: Input samples per block when ``resample`` converts a whole signal (bounds its memory).
RESAMPLE_BLOCK = 1 << 17


@lru_cache(maxsize=8)
def _polyphase_table(up: int, down: int) -> tuple[np.ndarray, int]:
    """Filter taps per output phase, shape (up, 2 * half), and half, the one-sided tap count."""
    cutoff = 0.5 * min(1.0, up / down) * ROLLOFF  # cycles per input sample
    half = int(np.ceil(ZERO_CROSSINGS / (2 * cutoff)))
    phases = np.arange(up) / up  # fractional position of an output between input samples
    offsets = np.arange(-half + 1, half + 1)  # input taps relative to floor(t)
    tau = phases[:, None] - offsets[None, :]  # t - tap
    x = np.clip(tau / half, -1.0, 1.0)
    kaiser = np.i0(KAISER_BETA * np.sqrt(1 - x ** 2)) / np.i0(KAISER_BETA)
    taps = (2 * cutoff * np.sinc(2 * cutoff * tau) * kaiser).astype(np.float64)
    taps.setflags(write=False)
    return taps, half


class Resampler:
    """Streaming rate converter from ``in_rate`` to ``out_rate`` (any integers).

    ``process(chunk)`` returns the outputs that the input so far determines; ``flush()`` returns
    the rest as if zeros followed. Output n sits at input time ``n * in_rate / out_rate``: no delay.
    """

    def __init__(self, in_rate: int, out_rate: int):
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError("sample rates must be positive")
        g = gcd(int(in_rate), int(out_rate))
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self.up, self.down = self.out_rate // g, self.in_rate // g
        self.identity = self.up == self.down
        if not self.identity:
            self._taps, self._half = _polyphase_table(self.up, self.down)
        self.reset()

    def reset(self) -> None:
        half = 0 if self.identity else self._half
        # Input before the start counts as zeros: keep `half` of them as history.
        self._buf = np.zeros(half, dtype=np.float64)
        self._buf_start = -half  # absolute input index of _buf[0]
        self._n_out = 0
        self._n_in = 0

    def process(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float64).reshape(-1)
        if self.identity:
            self._n_in += len(chunk)
            return chunk.astype(np.float32)
        self._buf = np.concatenate([self._buf, chunk])
        self._n_in += len(chunk)
        return self._emit(self._n_in)

    def flush(self) -> np.ndarray:
        """Outputs up to the end of the input so far, zeros assumed after it."""
        if self.identity:
            return np.zeros(0, dtype=np.float32)
        total = -(-self._n_in * self.up // self.down)  # ceil(n_in * up / down) outputs in all
        self._buf = np.concatenate([self._buf, np.zeros(self._half + 1)])
        return self._emit(self._n_in + self._half + 1, limit=total)

    def _emit(self, available: int, limit: int | None = None) -> np.ndarray:
        up, down, half = self.up, self.down, self._half
        # Output n needs inputs up to floor(n * down / up) + half, which must be < available.
        last = ((available - half) * up - 1) // down  # largest n with floor(n*down/up)+half < available
        if limit is not None:
            last = min(last, limit - 1)
        n = np.arange(self._n_out, last + 1, dtype=np.int64)
        if len(n) == 0:
            return np.zeros(0, dtype=np.float32)
        base = (n * down) // up
        phase = (n * down) % up
        first_tap = base - half + 1 - self._buf_start  # index in _buf of each output's first tap
        windows = sliding_window_view(self._buf, 2 * half)  # a view: row i = _buf[i:i + 2*half]
        # Outputs n and n + up share a phase and their inputs lie `down` apart: per phase, a
        # strided view times one tap vector, rather than gathering (outputs x taps) samples.
        out = np.empty(len(n))
        for r in range(min(up, len(n))):
            rows = windows[first_tap[r]:first_tap[-1] + 1:down][:len(range(r, len(n), up))]
            out[r::up] = rows @ self._taps[phase[r]]
        self._n_out = int(n[-1]) + 1
        # Keep only the history the next output needs.
        next_base = (self._n_out * down) // up
        drop = next_base - half + 1 - self._buf_start
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop
        return out.astype(np.float32)


def resample(y: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a whole mono signal; the result has ``ceil(len(y) * out_rate / in_rate)`` samples."""
    if int(in_rate) == int(out_rate):
        return np.asarray(y, dtype=np.float32)
    r = Resampler(in_rate, out_rate)
    # In blocks, which give the same samples (streaming == whole), to bound the working memory.
    y = np.asarray(y).reshape(-1)
    parts = [r.process(y[i:i + RESAMPLE_BLOCK]) for i in range(0, len(y), RESAMPLE_BLOCK)]
    return np.concatenate(parts + [r.flush()])
