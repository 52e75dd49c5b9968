"""Cost of the log-mel front-end per hop: streaming (frames reused), from scratch, and librosa.

Three ways to get one hop's model input from real audio at the model's rate:

- ``streaming``: ``edge.frontend.StreamingFrontend.push(hop samples)``, which computes only the
  STFT frames that are new since the last window (what ``listen`` does);
- ``scratch``: ``edge.frontend.features(window)``, every frame of the window recomputed;
- ``librosa``: ``librosa.feature.melspectrogram`` + ``power_to_db`` (or ``log``) with the same
  settings, the peer. It does not resize or normalise, so against ``scratch_logmel`` (ours,
  also without resize / normalisation) it is like for like; against ``streaming`` it is
  conservative (ours does more work).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edge_genre.benchmarks.latency import LatencyStats, TimingConfig
from edge_genre.edge import frontend as fe
from edge_genre.edge.config import FrontendConfig, WindowConfig
from edge_genre.edge.windowing import cut_windows


@dataclass
class FrontendCost:
    streaming: LatencyStats
    scratch: LatencyStats
    scratch_logmel: LatencyStats
    librosa: LatencyStats | None
    frames_computed_per_hop: float
    frames_reused_per_hop: float
    frames_per_window: int
    hop_samples: int
    window_samples: int
    librosa_note: str = ""

    def to_dict(self) -> dict:
        return {
            "per_hop_ms": {
                "streaming": self.streaming.to_dict(), "scratch": self.scratch.to_dict(),
                "scratch_logmel": self.scratch_logmel.to_dict(),
                "librosa": self.librosa.to_dict() if self.librosa else None},
            "frames_computed_per_hop": round(self.frames_computed_per_hop, 3),
            "frames_reused_per_hop": round(self.frames_reused_per_hop, 3),
            "frames_per_window": self.frames_per_window,
            "hop_samples": self.hop_samples, "window_samples": self.window_samples,
            "librosa_note": self.librosa_note,
        }


class _Stream:
    """A StreamingFrontend fed one hop per ``step()`` in steady state (after one window); when
    the audio runs out it restarts, primed again with one window, outside the timed call."""

    def __init__(self, y: np.ndarray, cfg: FrontendConfig, window_samples: int, hop_samples: int):
        self.y, self.window, self.hop = y, window_samples, hop_samples
        self.stream = fe.StreamingFrontend(cfg, window_samples, hop_samples)
        self.computed = self.reused = self.hops = 0
        self._prime()

    def _prime(self) -> None:
        self.stream.reset()
        self.stream.push(self.y[:self.window])
        self.pos = self.window

    def ready(self) -> None:
        if self.pos + self.hop > len(self.y):
            self._prime()

    def step(self) -> None:
        before = (self.stream.frames_computed, self.stream.frames_reused)
        out = self.stream.push(self.y[self.pos:self.pos + self.hop])
        self.pos += self.hop
        if len(out) != 1:
            raise AssertionError("one window per hop in steady state")
        self.computed += self.stream.frames_computed - before[0]
        self.reused += self.stream.frames_reused - before[1]
        self.hops += 1


def _cycle(items):
    state = {"i": 0}

    def next_item():
        item = items[state["i"] % len(items)]
        state["i"] += 1
        return item
    return next_item


def librosa_logmel(y: np.ndarray, cfg: FrontendConfig):
    """librosa's log-mel with ``cfg``'s settings (the peer; imported lazily)."""
    import librosa

    mel = librosa.feature.melspectrogram(
        y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
        win_length=cfg.win_length, window="hann", center=cfg.center, pad_mode="constant",
        power=cfg.power, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=cfg.fmax,
        htk=cfg.mel_scale == "htk", norm="slaney" if cfg.mel_norm == "slaney" else None)
    if cfg.scale == "log":
        return np.log(mel + cfg.log_offset)
    ref = np.max if cfg.ref == "max" else float(cfg.ref)
    return librosa.power_to_db(mel, ref=ref, amin=cfg.amin, top_db=cfg.top_db)


def measure(y: np.ndarray, cfg: FrontendConfig, window: WindowConfig,
            timing: TimingConfig = TimingConfig()) -> FrontendCost:
    """Front-end cost per hop for audio ``y`` (mono, at ``cfg.sample_rate``, at least one window
    plus a hop long) at the window's default hop.

    The variants are timed round-robin (one call of each per round) so that a busy neighbour on
    a shared machine slows them alike and their ratios stay meaningful."""
    window_samples = window.window_samples(cfg)
    hop_samples = window.hop_samples(cfg)
    if len(y) < window_samples + hop_samples:
        raise ValueError("need at least one window and one hop of audio")
    y = np.asarray(y, dtype=np.float32)
    stream = _Stream(y, cfg, window_samples, hop_samples)
    wins = cut_windows(y, cfg, window)  # the windows the runtime cuts
    calls = {"streaming": stream.step,
             "scratch": lambda nxt=_cycle(wins): fe.features(nxt(), cfg),
             "scratch_logmel": lambda nxt=_cycle(wins): fe.log_mel(nxt(), cfg)}
    note = ""
    try:
        import librosa
    except ImportError:
        note = "librosa is not installed: the peer front-end was skipped"
    else:
        calls["librosa"] = lambda nxt=_cycle(wins): librosa_logmel(nxt(), cfg)
        note = (f"librosa {librosa.__version__} melspectrogram + "
                f"{'power_to_db' if cfg.scale == 'db' else 'log'}, same settings, "
                "no resize / normalisation")
    samples = _round_robin(calls, stream, timing)
    stats = {name: LatencyStats.from_seconds(v) for name, v in samples.items()}
    return FrontendCost(stats["streaming"], stats["scratch"], stats["scratch_logmel"],
                        stats.get("librosa"), stream.computed / stream.hops,
                        stream.reused / stream.hops,
                        len(fe.frame_starts(cfg, window_samples)), hop_samples, window_samples,
                        note)


def _round_robin(calls: dict, stream: _Stream, timing: TimingConfig) -> dict[str, list[float]]:
    for _ in range(timing.warmup_runs):
        for name, fn in calls.items():
            if name == "streaming":
                stream.ready()
            fn()
    stream.computed = stream.reused = stream.hops = 0
    samples: dict[str, list[float]] = {name: [] for name in calls}
    clock = time.perf_counter
    deadline = clock() + timing.seconds * len(calls)
    rounds = 0
    while rounds < timing.max_runs:
        for name, fn in calls.items():
            if name == "streaming":
                stream.ready()
            t0 = clock()
            fn()
            samples[name].append(clock() - t0)
        rounds += 1
        if rounds >= timing.min_runs and clock() >= deadline:
            break
    return samples
