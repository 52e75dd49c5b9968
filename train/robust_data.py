"""The robust-teacher job's data: the bodies it trains, each track's clean and room versions as a
body hears them (decoded, copied through far-field rooms and turned into features once, in worker
processes, before Keras is imported), two-track mixes, and the crops a step draws: random
(``Crops``, the target computed from the clean crop) or on the teacher's grid (``GridCrops``,
targets computed once). ``robust.py`` runs the job."""
from __future__ import annotations

import os
import zlib
from dataclasses import dataclass

import numpy as np

from edge_genre.errors import DataError

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class RobustBody:
    """What the job needs to know of a body: its 4 s crop in frames, its input's bins and frame
    hop (samples at 16 kHz), the file the trained copy is written to. Its input features,
    weights and networks are ``body_input``, ``read_teacher_weights``, ``build_network`` and
    ``save_body``, which branch on ``name``."""

    name: str
    crop_frames: int
    bins: int
    hop: int
    weights_out: str


#: musicnn hears a 4 s window as 251 frames of its 16 kHz, 256-hop front-end; YAMNet as 397
#: frames of its 10 ms one.
BODIES = {"musicnn": RobustBody("musicnn", 251, 96, 256, "musicnn-robust.npz"),
          "yamnet": RobustBody("yamnet", 397, 64, 160, "yamnet-robust.npz"),
          # The student's body: YAMNet's first 6 layers on frames every 20 ms (199 a window).
          "student": RobustBody("student", 199, 64, 320, "student-robust.npz")}
#: The student's depth (``transfer.CONFIGS["student"]``).
STUDENT_DEPTH = 6


def get_body(name: str) -> RobustBody:
    if name not in BODIES:
        raise DataError(f"body is one of {', '.join(BODIES)}, not {name!r}")
    return BODIES[name]


#: Which room copies the job makes (for the log): the bank's rooms, mostly far field.
ROOM_METHOD = "roomsim.augmenter (rooms of 10-300 m^3, 0.3-8 m, from an impulse-response bank)"


_AUGMENT = None  # the augmenter; forked workers inherit it (a closure does not pickle)


def body_input(body: str, y: np.ndarray) -> np.ndarray:
    """The body's input features of a waveform at 16 kHz, (frames, bins) float32."""
    from edge_genre.edge import frontend as fe

    if body in ("yamnet", "student"):
        from dataclasses import replace

        from edge_genre.train import yamnet as Y

        cfg = replace(Y.yamnet_frontend(), hop_length=BODIES[body].hop)
        return fe.features(y, cfg)[..., 0].T.astype(np.float32)  # time first
    from edge_genre.train import musicnn as M

    return M.to_musicnn_input(fe.features(y, M.musicnn_frontend()))[..., 0]


def track_versions(path: str, track_id: str, copies: int, seed: int,
                   body: str = "musicnn", teacher: str | None = None,
                   mix: tuple[str, float] | None = None):
    """The body's inputs of a whole track and its room copies, (1 + copies, frames, bins)
    float32, or the reason the track cannot be used. Copy i's room is seeded by the track id, i
    and ``seed``: the same rooms in every run. With ``teacher`` (another body), a pair: those
    and the teacher's input of the clean track. ``mix``: (a second track's path, its gain): the
    track heard is the sum, the second at ``gain`` times the first's RMS level."""
    from edge_genre.edge import audio as audio_io
    from edge_genre.errors import AudioError

    b = get_body(body)
    try:
        y = audio_io.load(path, SAMPLE_RATE)
        if mix is not None:
            y = mixed(y, audio_io.load(mix[0], SAMPLE_RATE), mix[1])
    except AudioError as exc:
        return str(exc)
    if len(y) < b.crop_frames * b.hop or audio_io.is_silent(y):
        return f"{path}: silent or shorter than one 4 s crop"
    versions = [y] + [_AUGMENT(y, np.random.default_rng([zlib.crc32(track_id.encode()), seed, i]))
                      for i in range(1, copies + 1)]
    heard = np.stack([body_input(body, v) for v in versions])
    return heard if teacher is None else (heard, body_input(teacher, y))


def mixed(a: np.ndarray, b: np.ndarray, gain: float) -> np.ndarray:
    """``a`` plus ``b`` at ``gain`` times ``a``'s RMS level, at ``a``'s level, cut to the
    shorter."""
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-9  # noqa: E731
    y = a + gain * b * (rms(a) / rms(b))
    return (y * (rms(a) / rms(y))).astype(np.float32)


def mix_pairs(tracks, n: int, seed: int) -> list[tuple[int, int, float]]:
    """``n`` seeded (first, second, gain) triples of tracks of different genres, the second at
    -6..0 dB."""
    rng = np.random.default_rng([seed, 7])
    pairs = []
    while len(pairs) < n and len({t.label for t in tracks}) > 1:
        i, j = (int(k) for k in rng.integers(0, len(tracks), 2))
        if tracks[i].label != tracks[j].label:
            pairs.append((i, j, float(10 ** (rng.uniform(-6, 0) / 20))))
    return pairs


def prepare(tracks, copies: int, seed: int, workers: int | None, cache_dir: str | None,
            body: str = "musicnn", teacher: str | None = None, mixes: int = 0):
    """(list of (1 + copies, frames, bins) arrays, skipped [(track id, why)], the teacher's
    inputs of the clean tracks row for row: empty without ``teacher``), in worker processes.
    ``mixes`` two-track mixes (``mix_pairs``) follow the tracks."""
    import multiprocessing as mp

    from edge_genre.train import roomsim

    global _AUGMENT
    args = [(str(t.path), t.track_id, copies, seed, body, teacher, None) for t in tracks]
    names = [t.track_id for t in tracks]
    for i, j, gain in mix_pairs(tracks, mixes, seed):
        names.append(f"mix:{tracks[i].track_id}+{tracks[j].track_id}")
        args.append((str(tracks[i].path), names[-1], copies, seed, body, teacher,
                     (str(tracks[j].path), gain)))
    workers = max(1, min(int(workers or os.cpu_count() or 1), len(args)))
    # Made once here: reading (or, without a cache, computing) the impulse-response bank.
    _AUGMENT = roomsim.augmenter(SAMPLE_RATE, cache_dir=cache_dir)
    if workers == 1:
        results = [track_versions(*a) for a in args]
    else:
        # fork: the workers inherit the augmenter, and start before Keras and JAX exist here.
        with mp.get_context("fork").Pool(workers) as pool:
            results = pool.starmap(track_versions, args, chunksize=1)
    kept, taught, skipped = [], [], []
    for name, r in zip(names, results):
        if isinstance(r, str):
            skipped.append((name, r))
        elif teacher is None:
            kept.append(r)
        else:
            kept.append(r[0])
            taught.append(r[1])
    # Every version of every track cut to the shortest, so crops index one array.
    frames = min(v.shape[1] for v in kept) if kept else 0
    t_frames = min(v.shape[0] for v in taught) if taught else 0
    return [v[:, :frames] for v in kept], skipped, [v[:t_frames] for v in taught]


class Crops:
    """Random crops: a track, one of its versions (0 = clean), a start frame; the target comes
    from the clean version's same frames."""

    def __init__(self, versions: list[np.ndarray], rng: np.random.Generator,
                 crop_frames: int):
        self.v = np.stack(versions)  # (tracks, 1 + copies, frames, bins)
        self.rng = rng
        self.crop = crop_frames

    def draw(self, n: int, room_only: bool = False):
        t = self.rng.integers(0, self.v.shape[0], n)
        lo = 1 if room_only else 0
        v = self.rng.integers(lo, self.v.shape[1], n)
        s = self.rng.integers(0, self.v.shape[2] - self.crop + 1, n)
        idx = s[:, None] + np.arange(self.crop)[None, :]
        heard = self.v[t[:, None], v[:, None], idx][..., None]
        clean = self.v[t[:, None], 0, idx][..., None]
        return heard, clean


class GridCrops:
    """Crops on a grid, for a teacher that hears another front-end: the targets of every track's
    grid are computed once (``targets``: (tracks, starts, dims)); a crop is a track, one of its
    versions (0 = clean), a grid start."""

    def __init__(self, versions: list[np.ndarray], targets: np.ndarray, rng: np.random.Generator,
                 crop_frames: int, step_frames: int):
        self.v = np.stack(versions)
        self.targets = targets
        self.rng = rng
        self.crop = crop_frames
        self.step = step_frames

    def draw(self, n: int, room_only: bool = False, clean: bool = False):
        """(heard, targets), and with ``clean`` the same crops' clean versions too."""
        t = self.rng.integers(0, self.v.shape[0], n)
        v = self.rng.integers(1 if room_only else 0, self.v.shape[1], n)
        g = self.rng.integers(0, self.targets.shape[1], n)
        idx = (g * self.step)[:, None] + np.arange(self.crop)[None, :]
        heard = self.v[t[:, None], v[:, None], idx][..., None]
        if not clean:
            return heard, self.targets[t, g]
        return heard, self.targets[t, g], self.v[t[:, None], 0, idx][..., None]


def grid_starts(grid: float, student: RobustBody, teacher: RobustBody,
                student_frames: int, teacher_frames: int) -> tuple[int, int, int]:
    """(the grid's step in the student's frames, in the teacher's, starts per track). The step
    must be a whole number of both front-ends' hops, so both cut the same seconds."""
    samples = int(round(grid * SAMPLE_RATE))
    if samples <= 0 or samples % student.hop or samples % teacher.hop:
        raise DataError(f"grid {grid} s is not a positive multiple of both hops "
                        f"({student.hop} and {teacher.hop} samples at {SAMPLE_RATE} Hz)")
    s_step, t_step = samples // student.hop, samples // teacher.hop
    starts = min((student_frames - student.crop_frames) // s_step,
                 (teacher_frames - teacher.crop_frames) // t_step) + 1
    if starts < 1:
        raise DataError("the tracks are shorter than one crop")
    return s_step, t_step, starts
