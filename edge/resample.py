"""Sample-rate conversion in numpy: a polyphase windowed-sinc resampler that also streams.

Microphones often open only at 44.1 or 48 kHz, and datasets come at any rate; the model wants
its own. ``Resampler`` converts block by block with carried state, so a stream resampled in pieces
equals the whole signal resampled at once (the streaming front-end relies on that), and
``resample`` does a whole signal.

Bounded cost. The converter multiplies the rate by ``up / down``, the ratio ``out_rate / in_rate``
in lowest terms, with a filter table of ``up`` phases x ``2 * half`` taps, about
``36 * max(up, down)`` numbers. Common rates reduce to small factors (48000 -> 22050 is
147 / 320, 44100 -> 16000 is 160 / 441), but a rate such as 383987 Hz (a prime) does not, and
its exact table would follow the rates rather than the audio (a 2 KB file could take
gigabytes). So:

* Rates are accepted from ``MIN_RATE`` (1 kHz) to ``MAX_RATE`` (384 kHz, the highest rate real
  audio files and interfaces use); others raise ``ValueError`` saying so (``edge.audio`` turns
  that into an ``AudioError`` for a file whose header claims such a rate).
* When ``max(up, down)`` exceeds ``MAX_FACTOR`` (16384), the ratio is replaced by the closest
  fraction whose larger term is at most ``MAX_FACTOR`` (``fractions.Fraction.limit_denominator``).
  The output rate is then ``in_rate * up / down`` instead of ``out_rate``, off by less than
  ``1 / (MAX_FACTOR - 1)``, about 0.006 % (a 30 s track comes out at most 2 ms longer or
  shorter: far below what a log-mel feature or a genre can tell). ``Resampler.rate_error`` gives
  the relative error (0.0 when exact). Every ratio between 1 kHz, 8 kHz, 11.025, 16, 22.05, 32,
  44.1, 48, 88.2, 96, 176.4, 192, 352.8 and 384 kHz reduces to factors below that bound, so those
  conversions stay exact.
* A table therefore holds at most about ``36 * MAX_FACTOR`` float64 numbers (< 5 MB); it is
  built a block of phases at a time, and the tables kept for reuse are bounded in bytes
  (``CACHE_BYTES``), not in count. The work per input sample is bounded by the filter length,
  and ``resample`` works in blocks of at most ``RESAMPLE_BLOCK`` inputs and outputs: memory and
  time follow the audio's length.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from fractions import Fraction
from math import gcd

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Zero crossings of the sinc on each side and the Kaiser window's beta: a -80 dB-class filter,
#: transparent for log-mel features and cheap enough for a Pi (about 40 taps per output at 48k->16k).
ZERO_CROSSINGS = 16
KAISER_BETA = 8.6
ROLLOFF = 0.945
#: Input (and output) samples per block when ``resample`` converts a whole signal (bounds its memory).
RESAMPLE_BLOCK = 1 << 17
#: Accepted sample rates in Hz, inclusive.
MIN_RATE = 1_000
MAX_RATE = 384_000
#: Largest up or down factor used; beyond it the ratio is approximated (see the module docstring).
MAX_FACTOR = 1 << 14
#: Bytes of filter tables kept for reuse (least recently used ones are dropped first).
CACHE_BYTES = 24 << 20
#: Filter-table entries computed at once while building one (bounds the temporaries).
_BUILD_BLOCK = 1 << 16


def check_rate(rate) -> int:
    """``rate`` as an int, or ValueError when it is outside ``MIN_RATE``..``MAX_RATE``."""
    r = int(rate)
    if not MIN_RATE <= r <= MAX_RATE:
        raise ValueError(f"sample rate {rate} Hz is outside the accepted range, "
                         f"{MIN_RATE / 1000:g} kHz to {MAX_RATE / 1000:g} kHz")
    return r


def conversion_factors(in_rate: int, out_rate: int) -> tuple[int, int]:
    """(up, down): ``out_rate / in_rate`` in lowest terms, or its closest fraction with both
    terms at most ``MAX_FACTOR`` when the exact one is larger."""
    g = gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g
    if max(up, down) <= MAX_FACTOR:
        return up, down
    if down >= up:  # downsampling: approximate up/down <= 1 with down <= MAX_FACTOR
        f = Fraction(up, down).limit_denominator(MAX_FACTOR)
        up, down = f.numerator, f.denominator
    else:
        f = Fraction(down, up).limit_denominator(MAX_FACTOR)
        down, up = f.numerator, f.denominator
    if up == 0 or down == 0:
        raise ValueError(f"cannot convert {in_rate} Hz to {out_rate} Hz: the ratio is too extreme")
    return up, down


def _build_table(up: int, down: int) -> tuple[np.ndarray, int]:
    """Filter taps per output phase, shape (up, 2 * half), and half, the one-sided tap count."""
    cutoff = 0.5 * min(1.0, up / down) * ROLLOFF  # cycles per input sample
    half = int(np.ceil(ZERO_CROSSINGS / (2 * cutoff)))
    offsets = np.arange(-half + 1, half + 1)  # input taps relative to floor(t)
    taps = np.empty((up, 2 * half), dtype=np.float64)
    rows = max(1, _BUILD_BLOCK // (2 * half))
    for start in range(0, up, rows):
        phases = np.arange(start, min(up, start + rows)) / up  # fractional output positions
        tau = phases[:, None] - offsets[None, :]  # t - tap
        x = np.clip(tau / half, -1.0, 1.0)
        kaiser = np.i0(KAISER_BETA * np.sqrt(1 - x ** 2)) / np.i0(KAISER_BETA)
        taps[start:start + len(phases)] = 2 * cutoff * np.sinc(2 * cutoff * tau) * kaiser
    taps.setflags(write=False)
    return taps, half


_cache: OrderedDict[tuple[int, int], tuple[np.ndarray, int]] = OrderedDict()
_cache_lock = threading.Lock()


def _polyphase_table(up: int, down: int) -> tuple[np.ndarray, int]:
    """``_build_table`` with a least-recently-used cache of at most ``CACHE_BYTES``."""
    key = (up, down)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    table = _build_table(up, down)
    nbytes = table[0].nbytes
    if nbytes <= CACHE_BYTES:
        with _cache_lock:
            _cache[key] = table
            _cache.move_to_end(key)
            while sum(t.nbytes for t, _ in _cache.values()) > CACHE_BYTES:
                _cache.popitem(last=False)
    return table


def cache_bytes() -> int:
    """Bytes held by the cached filter tables now."""
    with _cache_lock:
        return sum(t.nbytes for t, _ in _cache.values())


class Resampler:
    """Streaming rate converter from ``in_rate`` to ``out_rate`` (integers from ``MIN_RATE`` to
    ``MAX_RATE``).

    ``process(block)`` returns the outputs that the input so far determines; ``flush()`` returns
    the rest as if zeros followed. Output n sits at input time ``n * down / up``: no delay.
    ``up / down`` is ``out_rate / in_rate``, exactly unless a factor would exceed ``MAX_FACTOR``
    (then ``rate_error``, the relative error of the output rate, is below 0.01 %).
    """

    def __init__(self, in_rate: int, out_rate: int):
        if int(in_rate) <= 0 or int(out_rate) <= 0:
            raise ValueError("sample rates must be positive")
        self.in_rate, self.out_rate = check_rate(in_rate), check_rate(out_rate)
        self.up, self.down = conversion_factors(self.in_rate, self.out_rate)
        self.rate_error = abs(self.in_rate * self.up / self.down / self.out_rate - 1.0)
        self.identity = self.up == self.down
        if not self.identity:
            self._taps, self._half = _polyphase_table(self.up, self.down)
        self.reset()

    def inputs_for(self, n_out: int) -> int:
        """Input samples (from the start) after which ``process`` has given ``n_out`` outputs in
        all: a caller may hold input back until then without delaying any of those outputs."""
        if n_out <= 0:
            return 0
        if self.identity:
            return n_out
        # Output n - 1 needs inputs up to floor((n - 1) * down / up) + half (see _emit).
        return (n_out - 1) * self.down // self.up + self._half + 1

    def reset(self) -> None:
        half = 0 if self.identity else self._half
        # Input before the start counts as zeros: keep `half` of them as history.
        self._buf = np.zeros(half, dtype=np.float64)
        self._buf_start = -half  # absolute input index of _buf[0]
        self._n_out = 0
        self._n_in = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, dtype=np.float64).reshape(-1)
        if self.identity:
            self._n_in += len(block)
            return block.astype(np.float32)
        self._buf = np.concatenate([self._buf, block])
        self._n_in += len(block)
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
    """Resample a whole mono signal; the result has ``ceil(len(y) * up / down)`` samples, which is
    ``ceil(len(y) * out_rate / in_rate)`` unless the ratio is approximated (see the module
    docstring)."""
    if int(in_rate) == int(out_rate):
        return np.asarray(y, dtype=np.float32)
    r = Resampler(in_rate, out_rate)
    # In blocks, which give the same samples (streaming == whole), to bound the working memory:
    # at most RESAMPLE_BLOCK inputs, and when upsampling at most about RESAMPLE_BLOCK outputs.
    y = np.asarray(y).reshape(-1)
    block = max(1, min(RESAMPLE_BLOCK, RESAMPLE_BLOCK * r.down // r.up))
    parts = [r.process(y[i:i + block]) for i in range(0, len(y), block)]
    return np.concatenate(parts + [r.flush()])
