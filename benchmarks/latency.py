"""Timing one callable: warm-up, then repeated calls until a time budget or run count is met.

Figures are wall-clock per call (``time.perf_counter``): median, 90th and 99th percentile. On a
shared machine the tail is noise from other processes as much as the model; the median is the
figure to compare, and only within one run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class TimingConfig:
    """How long to time a callable.

    Parameters
    ----------
    seconds : time budget for the timed calls (after warm-up).
    warmup_runs : untimed calls first (allocations, caches, thread pools, lazy init).
    min_runs : at least this many timed calls, even past the budget.
    max_runs : at most this many timed calls, even inside the budget.
    """

    seconds: float = 2.0
    warmup_runs: int = 5
    min_runs: int = 10
    max_runs: int = 5000

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.min_runs < 1 or self.max_runs < self.min_runs:
            raise ValueError("need seconds > 0 and 1 <= min_runs <= max_runs")


@dataclass(frozen=True)
class LatencyStats:
    """Per-call wall time in milliseconds over ``runs`` timed calls."""

    runs: int
    median_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float

    @classmethod
    def from_seconds(cls, samples) -> "LatencyStats":
        ms = np.asarray(samples, dtype=np.float64) * 1e3
        return cls(int(ms.size), float(np.median(ms)), float(np.percentile(ms, 90)),
                   float(np.percentile(ms, 99)), float(ms.mean()), float(ms.min()))

    def to_dict(self) -> dict:
        return {"runs": self.runs, "median_ms": round(self.median_ms, 4),
                "p90_ms": round(self.p90_ms, 4), "p99_ms": round(self.p99_ms, 4),
                "mean_ms": round(self.mean_ms, 4), "min_ms": round(self.min_ms, 4)}


def time_calls(fn: Callable[[], object], cfg: TimingConfig = TimingConfig()) -> LatencyStats:
    """Call ``fn`` ``cfg.warmup_runs`` times untimed (at least once; at most half the budget for
    slow callables), then time calls until the budget is spent."""
    warm_until = time.perf_counter() + cfg.seconds / 2
    for i in range(max(1, cfg.warmup_runs)):
        fn()
        if time.perf_counter() >= warm_until:
            break
    samples = []
    clock = time.perf_counter
    deadline = clock() + cfg.seconds
    while len(samples) < cfg.max_runs:
        t0 = clock()
        fn()
        samples.append(clock() - t0)
        if len(samples) >= cfg.min_runs and clock() >= deadline:
            break
    return LatencyStats.from_seconds(samples)


def model_input(input_shape: tuple, seed: int = 0, waveform: bool = False) -> np.ndarray:
    """One input (batch 1): normalised-feature-like, standard normal, as ``features`` gives after
    normalisation; or for a waveform-in file one window of audio-like noise (about -20 dBFS).
    Dense CNN latency (and an in-graph FFT's) does not depend on the values."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1,) + tuple(int(d) for d in input_shape))
    return (0.1 * x if waveform else x).astype(np.float32)


def model_latency(runner, cfg: TimingConfig = TimingConfig(), seed: int = 0) -> LatencyStats:
    """Per-window latency of a loaded ``edge.backends.Runner`` alone: no numpy front-end. For a
    waveform-in file (``runner.waveform``) the model computes its log-mel front-end in its
    graph, so this latency includes it."""
    waveform = bool(getattr(runner, "waveform", False))
    x = model_input(runner.input_shape, seed, waveform)
    return time_calls(lambda: runner.predict(x), cfg)
