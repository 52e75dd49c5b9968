"""A simulated room microphone: what a song sounds like played by a loudspeaker in a room and
picked up by a cheap microphone (a laptop's, a USB mic on a Pi) some metres away.

``simulate(y, sample_rate, condition, rng)`` applies, in this order:

1. the loudspeaker's bass limit: a 2nd-order Butterworth high-pass (a small sealed box rolls off
   at 12 dB per octave below its resonance);
2. the room: convolution with a physical impulse response (``rooms.Room``: a shoebox room by
   pyroomacoustics' image sources and ray tracing), so the direct-to-reverberant ratio follows
   from the room's size, its RT60 and the distance instead of being set by hand;
3. the level at the microphone: the dry track's RMS, then a gain in dB (the YAMNet and musicnn
   front-ends' log-mel is absolute, so a quiet capture shifts their features; the scratch and
   paper presets' dB re max does not care);
4. room noise at ``snr_db`` below the music: pink (1/f: ventilation, traffic), brown (1/f^2:
   rumble) or babble-like (a few speech-shaped noises, each switched on and off at syllable
   rate; not speech);
5. the microphone's top limit: a 2nd-order low-pass (cheap capsules and 16 kHz paths), then a
   clip to [-1, 1] as an ADC would.

Conditions: two fixed test conditions, ``near`` (a loudspeaker 1 m from the microphone in a living
room) and ``far`` (across a living room, 4.9 m), and ``augment``, training copies drawn from a bank
of rooms (10-300 m^3, RT60 0.2-1.5 s, 0.3-8 m) with random band limits, level and noise. A track's
copy is seeded by its id and a copy number, so every model hears the same rooms.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from edge_genre.errors import DataError
from edge_genre.train import rooms as rooms_mod
from edge_genre.train.rooms import Room, RoomBank, RoomRanges, direct_to_reverberant_db

Range = tuple[float, float]
NOISES = ("pink", "brown", "babble")


@dataclass(frozen=True)
class Capture:
    """Everything around the room: loudspeaker and microphone band limits, level, noise."""

    speaker_highpass_hz: float
    mic_lowpass_hz: float
    gain_db: float
    noise: str
    snr_db: float


@dataclass(frozen=True)
class CaptureRanges:
    """Ranges (uniform) of the capture around an augmentation room; ``noises`` drawn evenly."""

    speaker_highpass_hz: Range = (60.0, 250.0)
    mic_lowpass_hz: Range = (4000.0, 8000.0)
    gain_db: Range = (-30.0, 0.0)
    snr_db: Range = (5.0, 30.0)
    noises: tuple[str, ...] = NOISES

    def draw(self, rng: np.random.Generator) -> Capture:
        return Capture(float(rng.uniform(*self.speaker_highpass_hz)),
                       float(rng.uniform(*self.mic_lowpass_hz)), float(rng.uniform(*self.gain_db)),
                       self.noises[int(rng.integers(len(self.noises)))],
                       float(rng.uniform(*self.snr_db)))


@dataclass(frozen=True)
class Condition:
    """A fixed test condition: one room and one capture."""

    name: str
    room: Room
    capture: Capture

    def to_dict(self, sample_rate: int = 16000) -> dict:
        h = room_response(self.room, sample_rate)
        return {"name": self.name, "room": self.room.to_dict(),
                "capture": dataclasses.asdict(self.capture),
                "direct_to_reverberant_db": round(direct_to_reverberant_db(h, sample_rate), 1)}


@dataclass(frozen=True)
class RoomAugment:
    """Where training copies come from: a bank of physical rooms and capture ranges."""

    bank: RoomBank = RoomBank(RoomRanges())
    capture: CaptureRanges = CaptureRanges()

    def to_dict(self) -> dict:
        return {"name": "augment", "rooms": self.bank.ranges.to_dict(), "bank_size": self.bank.size,
                "bank_seed": self.bank.seed, "capture": dataclasses.asdict(self.capture)}


#: A loudspeaker on a sideboard and a microphone 1 m away, in a 52 m^3 living room (RT60 0.5 s;
#: critical distance 0.58 m, so even here the room is as loud as the speaker).
NEAR = Condition("near", Room(dims_m=(5.0, 4.0, 2.6), rt60_s=0.5, speaker_m=(1.0, 2.0, 1.0),
                              mic_m=(1.9, 2.4, 0.9)),
                 Capture(speaker_highpass_hz=120.0, mic_lowpass_hz=7000.0, gain_db=-12.0,
                         noise="pink", snr_db=25.0))
#: A loudspeaker on a shelf and a device on a table across an 88 m^3 living room, 4.9 m away
#: (RT60 0.7 s; critical distance 0.64 m: mostly reverberation), quieter and noisier.
FAR = Condition("far", Room(dims_m=(6.5, 5.0, 2.7), rt60_s=0.7, speaker_m=(0.6, 1.0, 1.2),
                            mic_m=(5.0, 3.0, 0.8)),
                Capture(speaker_highpass_hz=150.0, mic_lowpass_hz=6000.0, gain_db=-24.0,
                        noise="brown", snr_db=15.0))
TEST_CONDITIONS = {c.name: c for c in (NEAR, FAR)}
ROOM_AUGMENT = RoomAugment()
#: What ``evaluate --room`` scores when no condition is named.
DEFAULT_TEST_ROOMS = ("near", "far")


def parse_conditions(text: str) -> tuple[str, ...]:
    """``"near,far"`` -> ("near", "far"); an unknown name is a DataError naming the known ones."""
    names = tuple(n.strip() for n in str(text).split(",") if n.strip())
    unknown = [n for n in names if n not in TEST_CONDITIONS]
    if not names or unknown:
        raise DataError(f"unknown test room {', '.join(unknown) or repr(text)}: choose from "
                        + ", ".join(TEST_CONDITIONS))
    return tuple(dict.fromkeys(names))


@functools.lru_cache(maxsize=16)
def room_response(room: Room, sample_rate: int) -> np.ndarray:
    """A fixed room's impulse response (computed once per process)."""
    return room.impulse_response(sample_rate)


# ----------------------------------------------------------------------------- noise


def _shaped_noise(n: int, rng: np.random.Generator, sample_rate: int, exponent: float
                  ) -> np.ndarray:
    """Unit-RMS Gaussian noise with power falling as 1/f**exponent above 20 Hz (flat below, so
    inaudible rumble does not carry the RMS)."""
    from scipy import fft

    spec = fft.rfft(rng.standard_normal(n))
    f = np.maximum(fft.rfftfreq(n, 1 / sample_rate), 20.0)
    x = fft.irfft(spec / f ** (exponent / 2), n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def _babble(n: int, rng: np.random.Generator, sample_rate: int, talkers: int = 6) -> np.ndarray:
    """Babble-like noise: ``talkers`` speech-shaped noises (100 Hz - 4 kHz, falling above
    500 Hz like the long-term speech spectrum), each gated by a syllable-rate envelope."""
    from scipy import fft

    f = fft.rfftfreq(n, 1 / sample_rate)
    shape = np.where(f < 100, 0.0, 1.0) * np.where(f > 500, 500 / np.maximum(f, 1), 1.0)
    shape *= f < 4000
    out = np.zeros(n)
    env_rate = 100  # envelope samples per second
    n_env = n * env_rate // sample_rate + 2
    t_env = np.arange(n_env) / env_rate
    t = np.arange(n) / sample_rate
    for _ in range(talkers):
        voice = fft.irfft(fft.rfft(rng.standard_normal(n)) * shape, n)
        # Syllables: noise low-passed to about 4 Hz, rectified (negative = a pause).
        e = fft.rfft(rng.standard_normal(n_env))
        e[int(4 * n_env / env_rate) + 1:] = 0
        env = np.maximum(fft.irfft(e, n_env), 0)
        out += voice * np.interp(t, t_env, env)
    return out / (np.sqrt(np.mean(out ** 2)) + 1e-12)


def noise(kind: str, n: int, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """Unit-RMS room noise of ``kind`` ("pink", "brown" or "babble")."""
    if kind == "pink":
        return _shaped_noise(n, rng, sample_rate, 1.0)
    if kind == "brown":
        return _shaped_noise(n, rng, sample_rate, 2.0)
    if kind == "babble":
        return _babble(n, rng, sample_rate)
    raise DataError(f"unknown noise {kind!r}: choose from {', '.join(NOISES)}")


# ----------------------------------------------------------------------------- the capture


def capture(y: np.ndarray, sample_rate: int, response: np.ndarray, cap: Capture,
            rng: np.random.Generator) -> np.ndarray:
    """``y`` played through a loudspeaker into a room with impulse ``response`` and captured as
    ``cap`` says; same length, float32."""
    from scipy.signal import butter, fftconvolve, sosfilt

    y = np.asarray(y, np.float64)
    if not len(y):
        return y.astype(np.float32)
    nyq = sample_rate / 2
    hp = min(cap.speaker_highpass_hz, nyq * 0.9)
    x = sosfilt(butter(2, hp, "highpass", fs=sample_rate, output="sos"), y)
    x = fftconvolve(x, response)[:len(y)]
    # The dry track's level before the gain: reverberation adds energy, a room does not make
    # music louder at the source.
    x *= np.sqrt(np.mean(y ** 2) / max(np.mean(x ** 2), 1e-20))
    x *= 10 ** (cap.gain_db / 20)
    rms = np.sqrt(np.mean(x ** 2))
    if rms > 0:
        x += noise(cap.noise, len(x), rng, sample_rate) * rms * 10 ** (-cap.snr_db / 20)
    lp = min(cap.mic_lowpass_hz, nyq * 0.95)
    if lp < nyq * 0.95:
        x = sosfilt(butter(2, lp, "lowpass", fs=sample_rate, output="sos"), x)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def simulate(y: np.ndarray, sample_rate: int, condition: "str | Condition | RoomAugment" = "far",
             rng: np.random.Generator | None = None, cache_dir=None) -> np.ndarray:
    """``y`` (mono float, [-1, 1]) as a room microphone would capture it; same length, float32.

    ``condition``: a test condition (``"near"``, ``"far"`` or a ``Condition``), or a
    ``RoomAugment`` (``"augment"``: a room from its bank and a capture drawn with ``rng``).
    ``cache_dir``: where an augmentation bank's responses are cached.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    if isinstance(condition, str):
        condition = (ROOM_AUGMENT if condition == "augment"
                     else TEST_CONDITIONS[parse_conditions(condition)[0]])
    if isinstance(condition, RoomAugment):
        bank = condition.bank.impulse_responses(sample_rate, cache_dir)
        response = bank[int(rng.integers(len(bank)))]
        return capture(y, sample_rate, response, condition.capture.draw(rng), rng)
    return capture(y, sample_rate, room_response(condition.room, sample_rate),
                   condition.capture, rng)


def augmenter(sample_rate: int, cache_dir=None,
              augment: RoomAugment = ROOM_AUGMENT) -> Callable[[np.ndarray, np.random.Generator],
                                                               np.ndarray]:
    """A function ``(y, rng) -> room copy of y`` drawing from ``augment``'s bank (computed or
    read from ``cache_dir`` now, so the function itself only needs numpy and scipy)."""
    augment.bank.impulse_responses(sample_rate, cache_dir)
    return lambda y, rng: simulate(y, sample_rate, augment, rng, cache_dir)


def track_rng(track_id: str, copy: int = 0) -> np.random.Generator:
    """A generator seeded by a track's id (and a copy number): the same room for every model."""
    return np.random.default_rng([zlib.crc32(track_id.encode()), copy])


@dataclass(frozen=True)
class RoomCopy:
    """One room condition for a whole dataset: a test condition (``"near"``, ``"far"``) or
    ``"augment"``; its noise (and for ``augment`` its room and capture) drawn per track from a
    generator seeded by the track's id and ``copy``, the same for every run and every model.
    ``cache_dir``: where the augmentation bank is cached (not part of the copy's identity)."""

    condition: str = "far"
    copy: int = 0
    cache_dir: str | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.condition != "augment":
            parse_conditions(self.condition)

    def describe(self, sample_rate: int = 16000) -> dict:
        """What this copy is, for records (a test room's measured ratio at ``sample_rate``)."""
        if self.condition == "augment":
            return ROOM_AUGMENT.to_dict()
        return TEST_CONDITIONS[self.condition].to_dict(sample_rate)

    def apply(self, y: np.ndarray, sample_rate: int, track_id: str) -> np.ndarray:
        return simulate(y, sample_rate, self.condition, track_rng(track_id, self.copy),
                        self.cache_dir)

    def key(self) -> str:
        """A short tag for cache keys: changes with the condition's definition."""
        what = (ROOM_AUGMENT.to_dict() if self.condition == "augment"
                else dataclasses.asdict(TEST_CONDITIONS[self.condition]))
        # The physics' version too: cached copies go stale when the responses are computed
        # another way.
        blob = json.dumps({"what": what, "copy": self.copy, "v": 2,
                           "physics": [rooms_mod.VERSION, rooms_mod.ISM_ORDER, rooms_mod.N_RAYS]},
                          sort_keys=True)
        return "room" + hashlib.sha256(blob.encode()).hexdigest()[:10]


def augment_copies(n: int, cache_dir=None) -> list[RoomCopy]:
    """``n`` training copies in ``ROOM_AUGMENT`` rooms (copy numbers 1..n)."""
    return [RoomCopy("augment", i, None if cache_dir is None else str(cache_dir))
            for i in range(1, n + 1)]
