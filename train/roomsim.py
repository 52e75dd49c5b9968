"""A simulated room microphone: what a song sounds like played by a loudspeaker in a room and
picked up by a cheap microphone (a laptop's, a USB mic on a Pi).

``simulate(y, sample_rate, cfg, rng)`` applies, in this order:

1. loudspeaker and microphone band limits: Butterworth high-pass (small speakers lose the bass)
   and low-pass (cheap capsules and 16 kHz paths lose the top), 2nd order each;
2. the room: convolution with a synthetic impulse response, a direct path plus an exponentially
   decaying noise tail whose decay reaches -60 dB at ``rt60`` (Schroeder's statistical model),
   mixed at a direct-to-reverberant ratio ``drr_db``;
3. the level at the microphone: a gain in dB (the YAMNet front-end's log-mel is absolute, so a
   quiet capture shifts its features; the scratch and paper presets' dB re max does not care);
4. room noise: pink noise (1/f power, like ventilation and traffic) at ``snr_db`` below the
   signal's RMS; the result is clipped to [-1, 1] as an ADC would.

Every setting is a (low, high) range drawn uniformly per call, so one config serves both
augmentation (wide ranges) and a fixed test condition (low == high). ``ROOM_TEST`` is the
condition the README's "room mic" figures use; a track's test copy is seeded by its id, so every
model hears the same room.
"""
from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass

import numpy as np

Range = tuple[float, float]


@dataclass(frozen=True)
class RoomConfig:
    """Ranges (low, high) of each effect; drawn uniformly per call."""

    highpass_hz: Range = (80.0, 200.0)
    lowpass_hz: Range = (5000.0, 7800.0)
    rt60_s: Range = (0.2, 0.8)
    drr_db: Range = (0.0, 10.0)
    gain_db: Range = (-24.0, 0.0)
    snr_db: Range = (10.0, 30.0)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: The fixed test condition: a small living room, a laptop-class microphone a few metres away.
ROOM_TEST = RoomConfig(highpass_hz=(150.0, 150.0), lowpass_hz=(6000.0, 6000.0),
                       rt60_s=(0.5, 0.5), drr_db=(3.0, 3.0), gain_db=(-12.0, -12.0),
                       snr_db=(20.0, 20.0))
#: Wider ranges for training copies.
ROOM_AUGMENT = RoomConfig()


def _draw(rng: np.random.Generator, r: Range) -> float:
    return float(r[0]) if r[0] == r[1] else float(rng.uniform(r[0], r[1]))


def impulse_response(sample_rate: int, rt60: float, drr_db: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Direct path (1 at t=0) plus a decaying noise tail of energy ``drr_db`` below it."""
    n = max(2, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.908 * t / rt60)  # 6.908 = ln(1000): -60 dB at rt60
    tail[0] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / max(np.sum(tail ** 2), 1e-12))
    tail[0] = 1.0
    return tail


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with 1/f power, shaped in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def simulate(y: np.ndarray, sample_rate: int, cfg: RoomConfig = ROOM_TEST,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """``y`` (mono float, [-1, 1]) as a room microphone would capture it; same length, float32."""
    from scipy.signal import butter, fftconvolve, sosfilt

    rng = rng if rng is not None else np.random.default_rng(0)
    y = np.asarray(y, np.float64)
    if not len(y):
        return y.astype(np.float32)
    nyq = sample_rate / 2
    hp = min(_draw(rng, cfg.highpass_hz), nyq * 0.9)
    lp = min(_draw(rng, cfg.lowpass_hz), nyq * 0.95)
    x = sosfilt(butter(2, hp, "highpass", fs=sample_rate, output="sos"), y)
    if lp < nyq * 0.95:
        x = sosfilt(butter(2, lp, "lowpass", fs=sample_rate, output="sos"), x)
    rir = impulse_response(sample_rate, _draw(rng, cfg.rt60_s), _draw(rng, cfg.drr_db), rng)
    x = fftconvolve(x, rir)[:len(y)]
    # Keep the level of the dry signal before the gain: reverb adds energy, a room does not
    # make music louder at the source.
    x *= np.sqrt(np.mean(y ** 2) / max(np.mean(x ** 2), 1e-20))
    x *= 10 ** (_draw(rng, cfg.gain_db) / 20)
    rms = np.sqrt(np.mean(x ** 2))
    if rms > 0:
        x += pink_noise(len(x), rng) * rms * 10 ** (-_draw(rng, cfg.snr_db) / 20)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def track_rng(track_id: str, copy: int = 0) -> np.random.Generator:
    """A generator seeded by a track's id (and a copy number): the same room for every model."""
    return np.random.default_rng([zlib.crc32(track_id.encode()), copy])


@dataclass(frozen=True)
class RoomCopy:
    """One room condition for a whole dataset: ``cfg``'s ranges, drawn per track from a
    generator seeded by the track's id and ``copy`` (so copy 1 and copy 2 are different rooms,
    and the same for every run and every model)."""

    cfg: RoomConfig = ROOM_TEST
    copy: int = 0

    def apply(self, y: np.ndarray, sample_rate: int, track_id: str) -> np.ndarray:
        return simulate(y, sample_rate, self.cfg, track_rng(track_id, self.copy))

    def key(self) -> str:
        """A short tag for cache keys."""
        import hashlib
        import json

        blob = json.dumps({"cfg": self.cfg.to_dict(), "copy": self.copy, "v": 1}, sort_keys=True)
        return "room" + hashlib.sha256(blob.encode()).hexdigest()[:10]


def augment_copies(n: int) -> list[RoomCopy]:
    """``n`` training copies in ``ROOM_AUGMENT`` rooms (copy numbers 1..n; 0 is the test room)."""
    return [RoomCopy(ROOM_AUGMENT, i) for i in range(1, n + 1)]
