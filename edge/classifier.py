"""Genre decisions from audio: a streaming ``Classifier`` that ``predict`` and ``listen`` share.

``Classifier.push(samples, sample_rate)`` takes audio in any chunk size at any rate (resampled
to the model's rate with a streaming ``Resampler``), cuts it into the card's windows (4 s every
2 s by default) with a ``StreamingFrontend`` that computes each STFT frame once, runs the model,
and returns one ``Decision`` per completed window. ``Classifier.classify(y, sample_rate)`` does a
whole track the same way (same windows, same features) and averages the windows' probabilities,
as the paper does for a track.

Silence gate: a window whose RMS level is below ``silence_dbfs`` (default -60 dBFS, about the
noise floor of a quiet room through a laptop microphone; music is typically -30 to -10 dBFS) is
not classified: its decision says ``"no music"`` instead of guessing from noise.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from edge_genre.edge.audio import rms_dbfs, to_mono
from edge_genre.edge.backends import Runner, as_runner
from edge_genre.edge.frontend import StreamingFrontend
from edge_genre.edge.resample import Resampler, resample
from edge_genre.errors import AudioError

NO_MUSIC = "no music"


@dataclass(frozen=True)
class ClassifierConfig:
    """How windows become decisions.

    Parameters
    ----------
    hop_seconds : seconds between window starts; None keeps the card's (2 s by default). Rounded
        to whole STFT hops so frames are shared between windows.
    smoothing : the smoothed decision is the mean probability of the last ``smoothing`` non-silent
        windows (1 = no smoothing). Silence clears it, so music after a pause starts afresh.
    silence_dbfs : windows with an RMS level below this are "no music" (not classified).
    """

    hop_seconds: float | None = None
    smoothing: int = 3
    silence_dbfs: float = -60.0

    def __post_init__(self) -> None:
        if self.smoothing < 1:
            raise ValueError("smoothing must be at least 1 window")
        if self.hop_seconds is not None and self.hop_seconds <= 0:
            raise ValueError("hop must be positive")


@dataclass
class Decision:
    """The model's view of one window.

    ``label``/``confidence`` are this window's; ``smoothed_label``/``smoothed_confidence`` the
    mean over the last windows (see ClassifierConfig.smoothing). Silent windows have
    ``silent=True``, label ``"no music"``, zero probabilities and were not run through the model.
    ``latency_ms`` is the wall time of the front-end and the model for this window.
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

    def to_dict(self) -> dict:
        level = self.level_dbfs if np.isfinite(self.level_dbfs) else None
        return {
            "window": self.index, "start": round(self.start, 3), "end": round(self.end, 3),
            "label": self.label, "confidence": round(self.confidence, 4),
            "smoothed_label": self.smoothed_label,
            "smoothed_confidence": round(self.smoothed_confidence, 4),
            "silent": self.silent,
            "level_dbfs": None if level is None else round(float(level), 1),
            "latency_ms": round(self.latency_ms, 2),
            "probs": {k: round(float(p), 4) for k, p in zip(self.labels, self.probs)},
        }


@dataclass
class TrackResult:
    """A whole track: its windows' decisions and their mean probabilities (silent windows left out)."""

    labels: tuple[str, ...]
    decisions: list[Decision]
    duration: float  # seconds of audio given
    padded: bool = False  # shorter than one window and zero-padded to one
    probs: np.ndarray = field(default=None)

    def __post_init__(self) -> None:
        if self.probs is None:
            heard = [d.probs for d in self.decisions if not d.silent]
            self.probs = (np.mean(heard, axis=0).astype(np.float32) if heard
                          else np.zeros(len(self.labels), dtype=np.float32))

    @property
    def silent(self) -> bool:
        """Every window was below the silence gate."""
        return all(d.silent for d in self.decisions)

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

    def to_dict(self, windows: bool = False) -> dict:
        d = {"label": self.label, "confidence": round(self.confidence, 4),
             "probs": {k: round(float(p), 4) for k, p in zip(self.labels, self.probs)},
             "duration": round(self.duration, 3), "windows": len(self.decisions),
             "silent_windows": sum(d.silent for d in self.decisions), "padded": self.padded}
        if windows:
            d["window_decisions"] = [x.to_dict() for x in self.decisions]
        return d


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
    model : a Runner, a model file path, or None for the shipped default model.
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
        self.window_samples = card.window.window_samples(self.frontend)
        self.hop_samples = card.window.hop_samples(self.frontend, cfg.hop_seconds)
        self.reset()

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sample_rate

    @property
    def hop_seconds(self) -> float:
        return self.hop_samples / self.sample_rate

    def reset(self) -> None:
        """Forget the stream: the next push starts at time 0."""
        self._stream = StreamingFrontend(self.frontend, self.window_samples, self.hop_samples)
        self._smoother = _Smoother(self.config.smoothing)
        self._resampler: Resampler | None = None
        self._recent = np.zeros(0, dtype=np.float32)  # the last window's samples, for its level
        self._index = 0

    @property
    def stream_stats(self) -> dict:
        """STFT frames computed and reused so far (frame reuse is what makes a hop cheap)."""
        return {"frames_computed": self._stream.frames_computed,
                "frames_reused": self._stream.frames_reused}

    # ------------------------------------------------------------------ streaming

    def push(self, samples: np.ndarray, sample_rate: int | None = None) -> list[Decision]:
        """Add audio (mono, or (frames, channels) which is averaged) at ``sample_rate`` (default
        the model's); return a Decision for each window it completes (often none)."""
        rate = int(sample_rate or self.sample_rate)
        y = to_mono(np.asarray(samples, dtype=np.float32))
        if rate != self.sample_rate:
            if self._resampler is None or self._resampler.in_rate != rate:
                if self._resampler is not None:
                    raise ValueError(f"the stream's rate changed from {self._resampler.in_rate} "
                                     f"to {rate} Hz; call reset() first")
                self._resampler = Resampler(rate, self.sample_rate)
            y = self._resampler.process(y)
        out = []
        # Feed up to each window's end separately so every window gets its own level and latency.
        while len(y):
            next_end = (self._index * self.hop_samples + self.window_samples
                        - self._stream.samples_seen)
            take = len(y) if next_end <= 0 else min(len(y), next_end)
            t0 = time.perf_counter()
            chunk, y = y[:take], y[take:]
            feats = self._stream.push(chunk)
            self._recent = np.concatenate([self._recent, chunk])[-self.window_samples:]
            for x in feats:
                out.append(self._decide_window(x, self._recent, t0))
                t0 = time.perf_counter()
        return out

    def _decide_window(self, x: np.ndarray, window: np.ndarray, t0: float) -> Decision:
        level = rms_dbfs(window)
        silent = not level >= self.config.silence_dbfs
        probs = (np.zeros(len(self.labels), dtype=np.float32) if silent
                 else self.runner.predict(x[None])[0])
        latency = (time.perf_counter() - t0) * 1e3
        return self._decision(probs, level, silent, latency, self._smoother)

    def _decision(self, probs, level, silent, latency, smoother: _Smoother) -> Decision:
        i = self._index
        self._index += 1
        start = i * self.hop_samples / self.sample_rate
        return Decision(index=i, start=start, end=start + self.window_seconds, labels=self.labels,
                        probs=probs, smoothed=smoother.update(probs, silent),
                        level_dbfs=float(level), silent=silent, latency_ms=latency)

    # ------------------------------------------------------------------ whole tracks

    def classify(self, y: np.ndarray, sample_rate: int, name: str = "audio") -> TrackResult:
        """Classify a whole track: every window (``window`` s every ``hop`` s; the last partial
        window is dropped), probabilities averaged over the non-silent ones.

        A track shorter than one window is zero-padded to one when it holds at least
        ``card.window.min_fill`` of it, and refused with an AudioError otherwise. The stream state
        of ``push`` is left alone.
        """
        y = to_mono(np.asarray(y, dtype=np.float32))
        duration = len(y) / float(sample_rate)
        y = resample(y, int(sample_rate), self.sample_rate)
        n = self.window_samples
        padded = False
        if len(y) < n:
            need = self.card.window.min_fill * n
            if len(y) < need:
                raise AudioError(f"{name}: too short ({duration:.2f} s; the model needs at least "
                                 f"{need / self.sample_rate:.2f} s of its {n / self.sample_rate:g} s "
                                 "window)")
            y = np.pad(y, (0, n - len(y)))
            padded = True
        starts = range(0, len(y) - n + 1, self.hop_samples)
        windows = [y[s:s + n] for s in starts]
        levels = [rms_dbfs(w) for w in windows]
        silent = [not lv >= self.config.silence_dbfs for lv in levels]
        t0 = time.perf_counter()
        heard = [i for i, s in enumerate(silent) if not s]
        probs = np.zeros((len(windows), len(self.labels)), dtype=np.float32)
        if heard:
            # All windows' features in one pass that computes each shared STFT frame once.
            stream = StreamingFrontend(self.frontend, n, self.hop_samples)
            x = np.stack(stream.push(y[:starts[-1] + n]))[heard]
            probs[heard] = self.runner.predict(x)
        per_window_ms = (time.perf_counter() - t0) * 1e3 / max(1, len(heard))
        smoother = _Smoother(self.config.smoothing)
        saved = self._index
        self._index = 0
        try:
            decisions = [self._decision(probs[i], levels[i], silent[i],
                                        0.0 if silent[i] else per_window_ms, smoother)
                         for i in range(len(windows))]
        finally:
            self._index = saved
        return TrackResult(labels=self.labels, decisions=decisions, duration=duration, padded=padded)

    def classify_file(self, path) -> TrackResult:
        """Read an audio file (edge.audio) and classify it."""
        from edge_genre.edge.audio import read

        audio = read(path)
        return self.classify(audio.samples, audio.sample_rate, name=str(path))
