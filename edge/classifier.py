"""Genre decisions from audio: a streaming ``Classifier`` that ``predict`` and ``listen`` share.

``Classifier.push(samples, sample_rate)`` takes audio in blocks of any size at any rate (resampled
to the model's rate with a streaming ``Resampler``), cuts it into the card's windows (4 s every
2 s by default) with a ``StreamingFrontend`` that computes each STFT frame once, runs the model,
and returns one ``Decision`` per completed window. It is the one place that waits for a window:
blocks are held until they complete the next one, then resampled and cut at once (a microphone's
100 ms blocks cost one resampler pass and one front-end call a hop). ``reset(keep_clock=True)``
starts a new stream after a gap (a capture device reopened) whose windows go on numbering and
counting stream time. ``Classifier.classify(y, sample_rate)`` does a
whole track the same way (same windows, same features) and averages the windows' probabilities,
as the paper does for a track. The window rule and the track mean are ``edge.windowing``'s, the
ones training and evaluation use.

Waveform-in model files (``edge-genre export --mediapipe``: the log-mel front-end inside the
graph) take the same windows as raw mono samples at the card's rate: the stream is cut by
``StreamingWindows``, the window cut ``StreamingFrontend`` is built on, and each window's samples
go to the runner instead of its features. Everything else (resampler, hop, silence gate,
smoothing, batching, decisions) is one code path for both kinds of file.

A whole track streams: ``classify_file`` reads the file block by block (``audio.open_stream``),
resamples each block as it comes, cuts windows as they complete, and sends them to the
interpreter ``max_batch`` (8) at a time. What it holds is one block, one window's frames and one
batch, whatever the track's length; per window it keeps only a compact record (probabilities,
level, silence: about 60 bytes), from which the track's mean probabilities are taken at the end
and ``TrackResult.decisions`` builds each ``Decision`` when it is asked for. An interpreter sizes
its buffers for the largest batch it has run, so the batch bound is also what bounds the
interpreter's memory.

Silence gate: a window whose RMS level is below ``silence_dbfs`` (default -60 dBFS, about the
noise floor of a quiet room through a laptop microphone; music is typically -30 to -10 dBFS) is
not classified: its decision says ``"no music"`` instead of guessing from noise.
"""
from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_genre.edge.audio import rms_dbfs, to_mono
from edge_genre.edge.backends import Runner, as_runner
from edge_genre.edge.config import ClassifierConfig
from edge_genre.edge.frontend import StreamingFrontend, StreamingWindows
from edge_genre.edge.resample import Resampler
from edge_genre.edge.views import with_deprecated_keys
from edge_genre.edge.windowing import padding, track_mean, window_span
from edge_genre.errors import AudioError

NO_MUSIC = "no music"


@dataclass
class Decision:
    """The model's view of one window.

    ``label``/``confidence`` are this window's; ``smoothed_label``/``smoothed_confidence`` the
    mean over the last windows (see ClassifierConfig.smoothing). Silent windows have
    ``silent=True``, label ``"no music"``, zero probabilities and were not run through the model.
    ``latency_ms`` is the wall time of the front-end and the model for this window (for a
    waveform-in file the front-end runs inside the model).
    """

    index: int
    start: float  # seconds from the start of the stream
    end: float
    labels: tuple[str, ...]
    probs: np.ndarray
    smoothed: np.ndarray
    level_dbfs: float
    silent: bool
    latency_ms: float

    def _top(self, probs: np.ndarray) -> tuple[str, float]:
        """(label, probability) of the most likely genre; "no music" for a silent window."""
        if self.silent:
            return NO_MUSIC, 0.0
        i = int(np.argmax(probs))
        return self.labels[i], float(probs[i])

    @property
    def label(self) -> str:
        return self._top(self.probs)[0]

    @property
    def confidence(self) -> float:
        return self._top(self.probs)[1]

    @property
    def smoothed_label(self) -> str:
        return self._top(self.smoothed)[0]

    @property
    def smoothed_confidence(self) -> float:
        return self._top(self.smoothed)[1]

    def to_dict(self, deprecated_keys: bool = True) -> dict:
        """This window as JSON: the one shape of a window's decision in ``listen --json``,
        ``predict --json --windows`` and the HTTP API (an upload's windows, a live event).

        ``genre``, ``confidence``, ``probabilities`` ({label: p}, the card's order) are this
        window's; ``smoothed_genre``, ``smoothed_confidence``, ``smoothed_probabilities`` the
        smoothed decision's. ``deprecated_keys`` adds the old CLI names of those keys
        (``views.DEPRECATED_KEYS``: ``label``, ``smoothed_label``, ``probs``) for one release."""
        level = self.level_dbfs if np.isfinite(self.level_dbfs) else None
        d = {
            "window": self.index, "start": round(self.start, 3), "end": round(self.end, 3),
            "genre": self.label, "confidence": round(self.confidence, 4),
            "probabilities": {k: round(float(p), 4) for k, p in zip(self.labels, self.probs)},
            "smoothed_genre": self.smoothed_label,
            "smoothed_confidence": round(self.smoothed_confidence, 4),
            "smoothed_probabilities": {k: round(float(p), 4)
                                       for k, p in zip(self.labels, self.smoothed)},
            "silent": self.silent,
            "level_dbfs": None if level is None else round(float(level), 1),
            "latency_ms": round(self.latency_ms, 2),
        }
        return with_deprecated_keys(d) if deprecated_keys else d


class WindowLog(Sequence):
    """A track's windows as a read-only sequence of ``Decision``, stored compactly.

    Per window it holds the probabilities (float32), the level and whether it was silent; a
    ``Decision`` is built when an item is asked for, its smoothed probabilities from running
    ``_Smoother`` over the windows in order once they are all in. ``classify`` fills one as the
    windows come, so a two-hour track's log is a few hundred KB where a list of Decision objects
    would be several MB.
    """

    def __init__(self, labels: tuple[str, ...], hop_samples: int, window_samples: int,
                 sample_rate: int, smoothing: int):
        self.labels = tuple(labels)
        self._hop, self._window = int(hop_samples), int(window_samples)
        self._rate = int(sample_rate)
        self._smoothing = int(smoothing)
        self._n = 0
        self._probs = np.zeros((16, len(self.labels)), dtype=np.float32)
        self._levels = np.zeros(16, dtype=np.float64)
        self._silent = np.zeros(16, dtype=bool)
        self._smoothed: np.ndarray | None = None  # filled by _smooth() when first asked for
        self.latency_ms = 0.0  # of each non-silent window (front-end and model time / windows)

    def append(self, level: float, silent: bool) -> int:
        """Record a window (its probabilities are set later by ``set_probs``); its index."""
        i = self._n
        if i == len(self._levels):
            grow = max(16, i)
            self._probs = np.concatenate([self._probs, np.zeros((grow, self._probs.shape[1]),
                                                                dtype=np.float32)])
            self._levels = np.concatenate([self._levels, np.zeros(grow)])
            self._silent = np.concatenate([self._silent, np.zeros(grow, dtype=bool)])
        self._levels[i] = level
        self._silent[i] = silent
        self._n += 1
        self._smoothed = None
        return i

    def set_probs(self, i: int, probs: np.ndarray) -> None:
        self._probs[i] = probs
        self._smoothed = None

    def heard_probs(self) -> np.ndarray:
        """(n_heard, n_labels) probabilities of the non-silent windows, in window order."""
        return self._probs[:self._n][~self._silent[:self._n]]

    def _smooth(self) -> np.ndarray:
        if self._smoothed is None:
            smoother = _Smoother(self._smoothing)
            self._smoothed = np.array([smoother.update(self._probs[i], bool(self._silent[i]))
                                       for i in range(self._n)], dtype=np.float32)
        return self._smoothed

    def __len__(self) -> int:
        return self._n

    @property
    def silent_count(self) -> int:
        return int(np.count_nonzero(self._silent[:self._n]))

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("window index out of range")
        silent = bool(self._silent[i])
        start = i * self._hop / self._rate
        return Decision(index=i, start=start, end=start + self._window / self._rate,
                        labels=self.labels, probs=self._probs[i].copy(),
                        smoothed=self._smooth()[i].copy(),
                        level_dbfs=float(self._levels[i]), silent=silent,
                        latency_ms=0.0 if silent else self.latency_ms)

    def __iter__(self):
        for i in range(self._n):
            yield self[i]

    def __repr__(self) -> str:
        return f"WindowLog({self._n} windows, {self.silent_count} silent)"


@dataclass
class TrackResult:
    """A whole track: its windows' decisions and their mean probabilities (silent windows left out).

    ``decisions`` is a sequence of ``Decision`` (a list, or the compact ``WindowLog`` that
    ``Classifier.classify`` gives)."""

    labels: tuple[str, ...]
    decisions: Sequence[Decision]
    duration: float  # seconds of audio given
    padded: bool = False  # shorter than one window and zero-padded to one
    probs: np.ndarray = field(default=None)

    def __post_init__(self) -> None:
        if self.probs is None:  # the track mean (edge.windowing) of the heard windows
            if isinstance(self.decisions, WindowLog):
                heard = self.decisions.heard_probs()
            else:
                heard = [d.probs for d in self.decisions if not d.silent]
                heard = np.asarray(heard, np.float32).reshape(len(heard), len(self.labels))
            self.probs = track_mean(heard).astype(np.float32)

    @property
    def silent_windows(self) -> int:
        if isinstance(self.decisions, WindowLog):
            return self.decisions.silent_count
        return sum(d.silent for d in self.decisions)

    @property
    def silent(self) -> bool:
        """Every window was below the silence gate."""
        return self.silent_windows == len(self.decisions)

    @property
    def label(self) -> str:
        return NO_MUSIC if self.silent else self.labels[int(np.argmax(self.probs))]

    @property
    def confidence(self) -> float:
        return 0.0 if self.silent else float(np.max(self.probs))

    def ranking(self) -> list[tuple[str, float]]:
        """(label, probability) from the most to the least likely."""
        order = np.argsort(-self.probs, kind="stable")
        return [(self.labels[i], float(self.probs[i])) for i in order]

    def to_dict(self, windows: bool = False, deprecated_keys: bool = True,
                rounded: bool = True) -> dict:
        """This track as JSON: the one shape of a track's decision in ``predict --json``, the
        HTTP API's ``POST /api/classify`` and ``tag``'s rows (``track.track_fields``).

        ``genre``, ``confidence``, ``probabilities`` ({label: p}, the card's order) of the mean
        of the windows; ``windows`` is how many there are, and ``window_decisions`` (with
        ``windows=True``) each one's ``Decision.to_dict``. ``deprecated_keys`` adds the old CLI
        names (``label``, ``probs``, ``views.DEPRECATED_KEYS``) for one release, to the windows
        too. ``rounded=False`` keeps every digit of the numbers (a tagged library's rows are data
        to compute with, not a display)."""
        keep = round if rounded else (lambda x, _digits: float(x))
        d = {"genre": self.label, "confidence": keep(self.confidence, 4),
             "probabilities": {k: keep(float(p), 4) for k, p in zip(self.labels, self.probs)},
             "duration": keep(self.duration, 3), "windows": len(self.decisions),
             "silent_windows": self.silent_windows, "padded": self.padded}
        if windows:
            d["window_decisions"] = [x.to_dict(deprecated_keys) for x in self.decisions]
        return with_deprecated_keys(d) if deprecated_keys else d


class _Smoother:
    """Mean probabilities of the last n non-silent windows; silence clears the history."""

    def __init__(self, n: int):
        self._recent: deque[np.ndarray] = deque(maxlen=n)

    def update(self, probs: np.ndarray, silent: bool) -> np.ndarray:
        if silent:
            self._recent.clear()
            return np.zeros_like(probs)
        self._recent.append(probs)
        return np.mean(self._recent, axis=0).astype(np.float32)


class Classifier:
    """Streaming and whole-track genre classification with one loaded model.

    Parameters
    ----------
    model : a Runner, a model file path, or None for the shipped default model. A waveform-in
        file (``runner.waveform``) gets each window's samples instead of its features.
    backend, threads : passed to ``backends.load_model`` when ``model`` is not a Runner.
    config : ClassifierConfig (hop, smoothing, silence gate); keyword overrides of its fields
        (``hop_seconds=``, ``smoothing=``, ``silence_dbfs=``) are accepted too.
    """

    def __init__(self, model=None, backend: str = "auto", threads: int | None = None,
                 config: ClassifierConfig | None = None, **overrides):
        cfg = config or ClassifierConfig()
        if overrides:
            cfg = ClassifierConfig(**{**cfg.__dict__, **overrides})
        self.config = cfg
        self.runner: Runner = as_runner(model, backend=backend, threads=threads)
        card = self.runner.card
        self.card = card
        self.labels = card.labels
        self.frontend = card.frontend
        self.sample_rate = card.frontend.sample_rate
        #: The card's window rule (``edge.windowing``) with this classifier's hop.
        self.window_config = (card.window if cfg.hop_seconds is None else
                              dataclasses.replace(card.window, hop_seconds=cfg.hop_seconds))
        self.window_samples = self.window_config.window_samples(self.frontend)
        self.hop_samples = self.window_config.hop_samples(self.frontend)
        #: The model takes raw windows (its front-end is in its graph), not features.
        self.waveform = bool(self.runner.waveform)
        self.reset()

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sample_rate

    @property
    def hop_seconds(self) -> float:
        return self.hop_samples / self.sample_rate

    def windows(self) -> StreamingWindows:
        """A fresh window cut of a stream at the model's rate, giving what the model takes: each
        window's features (``StreamingFrontend``), or its samples for a waveform-in file.

        The window rule is ``edge.windowing``'s, applied as the samples come: the cut emits window
        k once the stream reaches the end of its ``window_span`` (so what a whole track gives
        are its ``window_starts``; ``push`` and the decisions' times ask ``window_span`` too).
        Only the zero-padding of a short track needs the track's end: ``classify`` adds
        ``windowing.padding`` zeros when the track is over."""
        if self.waveform:
            return StreamingWindows(self.window_samples, self.hop_samples)
        return StreamingFrontend(self.frontend, self.window_samples, self.hop_samples)

    def reset(self, keep_clock: bool = False) -> None:
        """End the stream: the next push starts a new one, at any rate; held audio is dropped.

        ``keep_clock=False``: window 0 at time 0. ``keep_clock=True`` (a device reopened after
        an outage): no window spans the gap and smoothing starts afresh, but the windows go on
        numbering from the last one and stream time from the end of the audio pushed so far."""
        if keep_clock:
            self._index_offset += self._index
            self._time_offset += self._received / self._rate if self._rate else 0.0
        else:
            self._index_offset, self._time_offset = 0, 0.0
        self._stream = self.windows()
        self._smoother = _Smoother(self.config.smoothing)
        self._resampler: Resampler | None = None
        self._rate: int | None = None  # of this stream's input, set by its first push
        self._index = 0  # windows decided in this stream
        self._received = 0  # input samples pushed in this stream, held ones included
        self._held: list[np.ndarray] = []  # input not yet resampled: short of the next window
        self._held_n = 0

    @property
    def stream_stats(self) -> dict:
        """STFT frames computed and reused so far (frame reuse is what makes a hop cheap; both
        0 for a waveform-in file, whose frames are computed in its graph)."""
        return {"frames_computed": self._stream.frames_computed,
                "frames_reused": self._stream.frames_reused}

    # ------------------------------------------------------------------ streaming

    def push(self, samples: np.ndarray, sample_rate: int | None = None) -> list[Decision]:
        """Add audio (mono, or (frames, channels) which is averaged) at ``sample_rate`` (default
        the model's); return a Decision for each window it completes (often none).

        Input is held until it completes the next window (``Resampler.inputs_for`` its end) and
        is then resampled and cut at once: a live caller pushing 100 ms blocks pays for the
        resampler's products and a front-end call once a hop, not ten times a second, and each
        decision still comes out of the very push that completes its window."""
        rate = int(sample_rate or self.sample_rate)
        if rate != self._rate:
            if self._rate is not None:
                raise ValueError(f"the stream's rate changed from {self._rate} to {rate} Hz; "
                                 "call reset() first")
            self._rate = rate
            if rate != self.sample_rate:
                self._resampler = Resampler(rate, self.sample_rate)
        y = to_mono(np.asarray(samples, dtype=np.float32))
        if len(y):
            self._held.append(y)
            self._held_n += len(y)
            self._received += len(y)
        out = []
        while True:  # a window at a time, so that each gets its own level and latency
            end = window_span(self._index, self.frontend, self.window_config)[1]
            need = (self._resampler.inputs_for(end) if self._resampler is not None else end)
            need = max(1, need - (self._received - self._held_n))  # less what went in
            if self._held_n < need:
                if self._held and isinstance(samples, np.ndarray) and np.may_share_memory(
                        self._held[-1], samples):
                    self._held[-1] = self._held[-1].copy()  # the caller may reuse its buffer
                return out
            x = self._take(need)
            if self._resampler is not None:
                x = self._resampler.process(x)
            t0 = time.perf_counter()
            for window, features in self._stream.push_windows(x):
                out.append(self._decide_window(features, window, t0))
                t0 = time.perf_counter()

    def _take(self, n: int) -> np.ndarray:
        """The first ``n`` held input samples (the rest stay held)."""
        y = self._held[0] if len(self._held) == 1 else np.concatenate(self._held)
        self._held = [y[n:]] if n < len(y) else []
        self._held_n = len(y) - n
        return y[:n]

    def gate(self, window: np.ndarray) -> tuple[float, bool]:
        """A window's RMS level (dBFS) and whether the silence gate holds it back."""
        level = rms_dbfs(window)
        return level, not level >= self.config.silence_dbfs

    def _decide_window(self, x: np.ndarray, window: np.ndarray, t0: float) -> Decision:
        """x: what the model takes for the window (features, or its samples)."""
        level, silent = self.gate(window)
        probs = (np.zeros(len(self.labels), dtype=np.float32) if silent
                 else self.runner.predict(x[None])[0])
        latency = (time.perf_counter() - t0) * 1e3
        i = self._index
        self._index += 1
        start = (window_span(i, self.frontend, self.window_config)[0] / self.sample_rate
                 + self._time_offset)
        return Decision(index=self._index_offset + i, start=start, end=start + self.window_seconds, labels=self.labels,
                        probs=probs, smoothed=self._smoother.update(probs, silent),
                        level_dbfs=float(level), silent=silent, latency_ms=latency)

    # ------------------------------------------------------------------ whole tracks

    def classify(self, y: np.ndarray, sample_rate: int, name: str = "audio") -> TrackResult:
        """Classify a whole track: every window (``window`` s every ``hop`` s; the last partial
        window is dropped), probabilities averaged over the non-silent ones.

        A track shorter than one window is zero-padded to one when it holds at least
        ``card.window.min_fill`` of it, and refused with an AudioError otherwise. The stream state
        of ``push`` is left alone. The windows go to the interpreter ``config.max_batch`` at a
        time (see ``classify_blocks``).
        """
        y = np.asarray(y, dtype=np.float32)
        step = 1 << 16
        return self.classify_blocks((y[i:i + step] for i in range(0, len(y), step)),
                                    sample_rate, name=name)

    def classify_blocks(self, blocks: Iterable[np.ndarray], sample_rate: int,
                        name: str = "audio") -> TrackResult:
        """``classify`` for a track given as consecutive blocks (mono, or (frames, channels)
        which are averaged) at ``sample_rate``: the same windows and probabilities as
        ``classify`` of their concatenation, in memory that does not follow the track's length.
        """
        rate = int(sample_rate)
        track = _TrackRun(self, name)
        resampler = None if rate == self.sample_rate else Resampler(rate, self.sample_rate)
        frames = 0
        for block in blocks:
            block = to_mono(np.asarray(block, dtype=np.float32))
            frames += len(block)
            track.feed(resampler.process(block) if resampler is not None else block)
        if resampler is not None:
            track.feed(resampler.flush())
        return track.finish(frames / float(rate))

    def classify_file(self, path) -> TrackResult:
        """Read an audio file (edge.audio, block by block) and classify it: the same result as
        ``classify`` of the whole decoded file, in memory that does not follow its length.
        ``path`` may also be an open ``audio.AudioStream`` (``open_bytes`` of an upload)."""
        from edge_genre.edge.audio import AudioStream, open_stream

        with (path if isinstance(path, AudioStream) else open_stream(path)) as stream:
            return self.classify_blocks(stream, stream.sample_rate, name=stream.name)


class _TrackRun:
    """One whole-track classification in progress: resampled audio in, windows cut as they
    complete (``Classifier.windows``: the window rule of ``edge.windowing``), their features (or
    samples, for a waveform-in file) batched to the interpreter. It has a window cut of its own,
    so ``classify`` leaves the stream of ``push`` as it was."""

    def __init__(self, clf: Classifier, name: str):
        self.clf, self.name = clf, name
        self.n, self.hop = clf.window_samples, clf.hop_samples
        self.stream = clf.windows()
        self.log = WindowLog(clf.labels, self.hop, self.n, clf.sample_rate, clf.config.smoothing)
        self.heard = 0
        self.pending: list[tuple[int, np.ndarray]] = []  # (window, model input) not yet run
        self.seconds = 0.0  # front-end and model time
        self.samples = 0  # at the model's rate, fed so far

    def feed(self, y: np.ndarray) -> None:
        if not len(y):
            return
        y = np.asarray(y, dtype=np.float32)
        self.samples += len(y)
        t0 = time.perf_counter()
        windows = self.stream.push_windows(y)
        self.seconds += time.perf_counter() - t0
        for window, x in windows:
            level, silent = self.clf.gate(window)
            i = self.log.append(level, silent)
            if not silent:
                self.pending.append((i, x))
                if len(self.pending) >= self.clf.config.max_batch:
                    self._run()

    def _run(self) -> None:
        if not self.pending:
            return
        t0 = time.perf_counter()
        probs = self.clf.runner.predict(np.stack([x for _, x in self.pending]))
        self.seconds += time.perf_counter() - t0
        for (i, _), p in zip(self.pending, probs):
            self.log.set_probs(i, p)
        self.heard += len(self.pending)
        self.pending = []

    def finish(self, duration: float) -> TrackResult:
        pad = padding(self.samples, self.clf.frontend, self.clf.window_config)
        if pad is None:
            n, rate = self.n, self.clf.sample_rate
            need = self.clf.window_config.min_fill * n
            raise AudioError(f"{self.name}: too short ({duration:.2f} s; the model needs at "
                             f"least {need / rate:.2f} s of its {n / rate:g} s window)")
        if pad:  # shorter than one window: zero-padded to one, which completes it
            self.feed(np.zeros(pad, dtype=np.float32))
        self._run()
        self.log.latency_ms = self.seconds * 1e3 / max(1, self.heard)
        return TrackResult(labels=self.clf.labels, decisions=self.log, duration=duration,
                           padded=pad > 0)
