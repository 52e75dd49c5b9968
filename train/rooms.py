"""Physical rooms: shoebox geometry, a loudspeaker and a microphone in it, and the impulse response
between them, computed by pyroomacoustics (image sources for the early reflections, ray tracing for
the reverberant tail, air absorption on).

Why physics instead of a synthetic decay: how much of what a microphone hears is reverberation
follows from the room. The direct sound falls off as 1/r while the reverberant field is about
uniform, so past the critical distance ``r_c ~ 0.057 sqrt(V / RT60)`` (0.5-1 m in a living room)
the direct sound is *below* the reverberation: a device on a shelf 4-5 m away hears mostly room
(direct-to-reverberant ratio -10 to -20 dB). A hand-set ratio of 0..10 dB (the simulator before
this one) never reaches that condition; drawing the room, the positions and the RT60 does.

Absorption comes from Sabine's formula for the wanted RT60 (``pyroomacoustics.inverse_sabine``),
uniform over the walls; the loudspeaker is omnidirectional (a real one beams its top forward, which
raises the direct sound by a few dB: omni is the harder case). Every draw is seeded (numpy's and
pyroomacoustics' own ray-tracing generator), so a room's impulse response is the same on every
machine; ``RoomBank`` draws many rooms once and caches their responses on disk.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_genre.errors import DataError

log = logging.getLogger("edge_genre")

Range = tuple[float, float]
Point = tuple[float, float, float]

SPEED_OF_SOUND = 343.0
#: Image-source order for the early part; ray tracing carries the tail (pyroomacoustics' hybrid).
#: A full image-source solution of a small reverberant room takes minutes (order 200+); order 3
#: plus 10,000 rays takes 0.1-0.4 s and gives the RT60 asked for within about 10 %.
ISM_ORDER = 3
N_RAYS = 10_000
#: Bump when the way a response is computed changes, so cached banks and copies are recomputed.
VERSION = 1
#: How often a drawn distance is shortened (by 20 %) to fit the room before the draw gives up.
MAX_SHRINKS = 40


@dataclass(frozen=True)
class Room:
    """One shoebox room with a loudspeaker and a microphone in it (metres, seconds)."""

    dims_m: Point
    rt60_s: float
    speaker_m: Point
    mic_m: Point

    @property
    def volume_m3(self) -> float:
        return float(np.prod(self.dims_m))

    @property
    def distance_m(self) -> float:
        return float(np.linalg.norm(np.subtract(self.speaker_m, self.mic_m)))

    @property
    def critical_distance_m(self) -> float:
        """Where direct and reverberant energy are equal (omni source, Sabine's room)."""
        return 0.057 * math.sqrt(self.volume_m3 / self.rt60_s)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(volume_m3=round(self.volume_m3, 1), distance_m=round(self.distance_m, 2),
                 critical_distance_m=round(self.critical_distance_m, 2))
        return d

    def seed(self) -> int:
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little")

    def impulse_response(self, sample_rate: int) -> np.ndarray:
        """The response from loudspeaker to microphone, float32, peak 1, starting 8 samples before
        the direct sound (the propagation delay is cut: a capture's latency says nothing about
        genre, and the copy stays aligned with the dry track)."""
        import pyroomacoustics as pra

        seed = self.seed()
        pra.random.seed(numpy=seed, libroom=seed)
        try:
            absorption, _ = pra.inverse_sabine(self.rt60_s, list(self.dims_m))
        except ValueError as exc:  # the RT60 asked for needs more than total absorption
            raise DataError(f"room {self.dims_m} cannot have RT60 {self.rt60_s} s: {exc}") from exc
        room = pra.ShoeBox(list(self.dims_m), fs=int(sample_rate),
                           materials=pra.Material(absorption), max_order=ISM_ORDER,
                           ray_tracing=True, air_absorption=True)
        room.set_ray_tracing(receiver_radius=0.5, n_rays=N_RAYS, energy_thres=1e-5)
        room.add_source(list(self.speaker_m))
        room.add_microphone(list(self.mic_m))
        room.compute_rir()
        h = np.asarray(room.rir[0][0], np.float64)
        peak = np.max(np.abs(h))
        first = int(np.argmax(np.abs(h) > 0.05 * peak))
        return (h[max(0, first - 8):] / peak).astype(np.float32)


def direct_to_reverberant_db(h: np.ndarray, sample_rate: int) -> float:
    """Energy within 2.5 ms of the response's peak over the energy of the rest (ISO 3382's
    window), in dB."""
    h = np.asarray(h, np.float64)
    peak = int(np.argmax(np.abs(h)))
    w = int(round(0.0025 * sample_rate))
    direct = float(np.sum(h[max(0, peak - w):peak + w + 1] ** 2))
    return 10 * math.log10(direct / max(float(np.sum(h ** 2)) - direct, 1e-20))


@dataclass(frozen=True)
class RoomRanges:
    """The rooms training copies are drawn from (each range uniform, volume log-uniform).

    volume_m3 : a box room from a bathroom to a hall.
    rt60_s : dead (a furnished room) to live (tiles, a church hall); clipped where a room cannot
        be that dead.
    distance_m : loudspeaker to microphone, drawn uniformly, then shortened until it fits in the
        room with ``wall_margin_m`` to every wall (so small rooms pull the distances down: the
        default bank's median is 2.5 m).
    height_m, aspect : ceiling height and the floor's length/width ratio.
    source_height_m : loudspeaker and microphone height above the floor (a shelf, a table, a
        hand).
    """

    volume_m3: Range = (10.0, 300.0)
    rt60_s: Range = (0.2, 1.5)
    distance_m: Range = (0.3, 8.0)
    height_m: Range = (2.3, 3.5)
    aspect: Range = (1.0, 2.0)
    source_height_m: Range = (0.4, 2.0)
    wall_margin_m: float = 0.25

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def draw(self, rng: np.random.Generator) -> Room:
        """One room with a loudspeaker and a microphone in it."""
        volume = math.exp(rng.uniform(*np.log(self.volume_m3)))
        height = min(rng.uniform(*self.height_m), volume ** (1 / 3) * 1.2)
        area = volume / height
        ratio = rng.uniform(*self.aspect)
        length, width = math.sqrt(area * ratio), math.sqrt(area / ratio)
        dims = np.array([length, width, height])
        m = self.wall_margin_m
        lo_z, hi_z = max(m, self.source_height_m[0]), min(height - m, self.source_height_m[1])
        speaker = np.array([rng.uniform(m, length - m), rng.uniform(m, width - m),
                            rng.uniform(lo_z, hi_z)])
        distance = rng.uniform(*self.distance_m)
        mic = None
        for _ in range(MAX_SHRINKS):
            for _ in range(64):  # a direction in which the microphone fits
                z = rng.uniform(lo_z, hi_z)
                horizontal = distance ** 2 - (z - speaker[2]) ** 2
                if horizontal <= 0:
                    continue
                angle = rng.uniform(0, 2 * math.pi)
                r = math.sqrt(horizontal)
                p = np.array([speaker[0] + r * math.cos(angle), speaker[1] + r * math.sin(angle), z])
                if np.all(p >= m) and np.all(p <= dims - m):
                    mic = p
                    break
            if mic is not None:
                break
            distance = max(distance * 0.8, 0.05)
        if mic is None:
            raise DataError(f"no place for a microphone in a {length:.1f} x {width:.1f} x "
                            f"{height:.1f} m room with these ranges: {self.to_dict()}")
        rt60 = rng.uniform(*self.rt60_s)
        # Sabine: absorption <= 1 means RT60 >= 0.161 V / S; a small room cannot be deader than
        # its walls allow.
        surface = 2 * (length * width + length * height + width * height)
        rt60 = max(rt60, 1.05 * 0.161 * volume / surface)
        r3 = lambda v: tuple(round(float(x), 3) for x in v)  # noqa: E731
        return Room(r3(dims), round(float(rt60), 3), r3(speaker), r3(mic))


@dataclass(frozen=True)
class RoomBank:
    """``size`` rooms drawn from ``ranges`` with ``seed``, with their impulse responses at one
    sample rate: computed once (about 0.2 s a room) and cached under ``cache_dir/rooms``."""

    ranges: RoomRanges = RoomRanges()
    size: int = 128
    seed: int = 0

    def rooms(self) -> list[Room]:
        rng = np.random.default_rng([self.seed, 0x700])
        return [self.ranges.draw(rng) for _ in range(self.size)]

    def key(self, sample_rate: int) -> str:
        blob = json.dumps({"ranges": self.ranges.to_dict(), "size": self.size, "seed": self.seed,
                           "sr": int(sample_rate), "v": VERSION}, sort_keys=True)
        return "bank" + hashlib.sha256(blob.encode()).hexdigest()[:12]

    def impulse_responses(self, sample_rate: int, cache_dir: str | Path | None = None
                          ) -> list[np.ndarray]:
        """Every room's response (float32); read from ``cache_dir`` when there."""
        key = self.key(sample_rate)
        path = Path(cache_dir).expanduser() / "rooms" / f"{key}.npz" if cache_dir else None
        responses = _MEMORY.get(key)
        if responses is not None and (path is None or path.is_file()):
            return responses
        if responses is None and path is not None and path.is_file():
            try:
                with np.load(path) as z:
                    responses = [z[f"h{i}"].astype(np.float32) for i in range(self.size)]
            except (OSError, ValueError, KeyError):
                responses = None  # a torn or foreign file: recompute
        if responses is None:
            log.info("computing %d room impulse responses at %d Hz (once)", self.size,
                     sample_rate)
            # Through float16 at once, so a fresh bank and a cached one are the same numbers.
            responses = [room.impulse_response(sample_rate).astype(np.float16).astype(np.float32)
                         for room in self.rooms()]
        _MEMORY[key] = responses
        if path is not None and not path.is_file():  # also a bank made earlier in this process
            _write_bank(path, responses)
        return responses


def _write_bank(path: Path, responses: list[np.ndarray]) -> None:
    """Cache a bank; a folder that cannot be written (read-only, full) costs only the cache."""
    tmp = path.with_suffix(".tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # float16: peak-normalised responses keep 11 bits of mantissa, far below the room
        # noise the copies get.
        np.savez(tmp, **{f"h{i}": h.astype(np.float16) for i, h in enumerate(responses)})
        tmp.replace(path)
    except OSError as err:
        log.warning("room bank not cached (%s): it is computed again in the next process", err)
        with contextlib.suppress(OSError):
            tmp.unlink()


#: Banks already computed or read in this process, by key.
_MEMORY: dict[str, list[np.ndarray]] = {}
