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

from edge_genre.benchmarks.latency import LatencyStats, TimingConfig, time_calls
from edge_genre.edge import frontend as fe
from edge_genre.edge.config import FrontendConfig, WindowConfig


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


def streaming_cost(y: np.ndarray, cfg: FrontendConfig, window_samples: int, hop_samples: int,
                   timing: TimingConfig) -> tuple[LatencyStats, float, float]:
    """Per-hop time of ``StreamingFrontend.push`` in steady state (after the first window).

    Returns (stats, frames computed per hop, frames reused per hop). When the audio runs out the
    stream restarts (untimed) and is primed with one window again."""
    stream = fe.StreamingFrontend(cfg, window_samples, hop_samples)
    pos = 0

    def prime() -> None:
        nonlocal pos
        stream.reset()
        stream.push(y[:window_samples])
        pos = window_samples

    def step() -> None:
        nonlocal pos
        if pos + hop_samples > len(y):
            prime()
        stream.push(y[pos:pos + hop_samples])
        pos += hop_samples

    prime()
    for _ in range(timing.warmup_runs):
        step()
    computed = reused = 0
    samples = []
    deadline = time.perf_counter() + timing.seconds
    while len(samples) < timing.max_runs:
        if pos + hop_samples > len(y):
            prime()
        before = (stream.frames_computed, stream.frames_reused)
        t0 = time.perf_counter()
        out = stream.push(y[pos:pos + hop_samples])
        samples.append(time.perf_counter() - t0)
        pos += hop_samples
        assert len(out) == 1, "one window per hop in steady state"
        computed += stream.frames_computed - before[0]
        reused += stream.frames_reused - before[1]
        if len(samples) >= timing.min_runs and time.perf_counter() >= deadline:
            break
    n = len(samples)
    return LatencyStats.from_seconds(samples), computed / n, reused / n


def _windows(y: np.ndarray, window_samples: int, hop_samples: int) -> list[np.ndarray]:
    starts = range(0, max(1, len(y) - window_samples + 1), hop_samples)
    return [y[s:s + window_samples] for s in starts]


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
    plus a few hops long) at the window's default hop."""
    window_samples = window.window_samples(cfg)
    hop_samples = window.hop_samples(cfg)
    if len(y) < window_samples + hop_samples:
        raise ValueError("need at least one window and one hop of audio")
    y = np.asarray(y, dtype=np.float32)
    stream, computed, reused = streaming_cost(y, cfg, window_samples, hop_samples, timing)
    wins = _windows(y, window_samples, hop_samples)
    scratch = time_calls(lambda nxt=_cycle(wins): fe.features(nxt(), cfg), timing)
    logmel = time_calls(lambda nxt=_cycle(wins): fe.log_mel(nxt(), cfg), timing)
    lib, note = None, ""
    try:
        import librosa  # noqa: F401
    except ImportError:
        note = "librosa is not installed: the peer front-end was skipped"
    else:
        lib = time_calls(lambda nxt=_cycle(wins): librosa_logmel(nxt(), cfg), timing)
        note = (f"librosa {librosa.__version__} melspectrogram + "
                f"{'power_to_db' if cfg.scale == 'db' else 'log'}, same settings, "
                "no resize / normalisation")
    return FrontendCost(stream, scratch, logmel, lib, computed, reused,
                        len(fe.frame_starts(cfg, window_samples)), hop_samples, window_samples,
                        note)
