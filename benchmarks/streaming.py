"""End-to-end streaming cost per hop: front-end (frames reused) + model + decision.

Real audio at the model's rate is pushed one hop at a time, as ``listen`` does, after one
window has primed the stream. Per hop: wall time and process CPU time. The real-time factor is
wall time / hop duration; the share of one core is CPU time / hop duration (run the model with
one thread so that CPU time is one core's).

The path is ``edge.classifier.Classifier.push`` (what ``listen`` runs) when that module is
present; otherwise ``StreamingFrontend.push`` + ``Runner.predict`` + argmax, the same work.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edge_genre.benchmarks.latency import LatencyStats
from edge_genre.edge.frontend import StreamingFrontend


@dataclass
class StreamingCost:
    per_hop: LatencyStats
    cpu_ms_per_hop: float
    hop_seconds: float
    hops: int
    path: str

    @property
    def real_time_factor(self) -> float:
        return self.per_hop.mean_ms / 1e3 / self.hop_seconds

    @property
    def core_percent(self) -> float:
        return 100.0 * self.cpu_ms_per_hop / 1e3 / self.hop_seconds

    def to_dict(self) -> dict:
        return {"per_hop_ms": self.per_hop.to_dict(), "cpu_ms_per_hop": round(self.cpu_ms_per_hop, 4),
                "hop_seconds": self.hop_seconds, "hops": self.hops, "path": self.path,
                "real_time_factor": self.real_time_factor,
                "core_percent": self.core_percent}


def _pipeline(runner):
    """(push(samples) -> decisions, description) for a loaded Runner."""
    card = runner.card
    try:
        from edge_genre.edge.classifier import Classifier
    except ImportError:
        Classifier = None
    if Classifier is not None:
        clf = Classifier(runner)
        rate = card.frontend.sample_rate
        return (lambda block: clf.push(block, rate)), "edge.classifier.Classifier.push"
    fr = card.frontend
    stream = StreamingFrontend(fr, card.window.window_samples(fr), card.window.hop_samples(fr))

    def push(block):
        out = []
        for x in stream.push(block):
            probs = runner.predict(x[None])[0]
            out.append((int(np.argmax(probs)), float(np.max(probs))))
        return out
    return push, "StreamingFrontend.push + Runner.predict + argmax"


#: Hops always streamed, however slow the model, before a time budget may stop the stream.
MIN_HOPS = 5


def measure(runner, y: np.ndarray, max_hops: int | None = None,
            budget_seconds: float | None = None) -> StreamingCost:
    """Stream ``y`` (mono, at the model's rate) hop by hop through ``runner``'s pipeline; stop at
    the end of ``y``, after ``max_hops``, or once ``budget_seconds`` of wall time are spent
    (never before ``MIN_HOPS`` hops)."""
    card = runner.card
    fr = card.frontend
    window = card.window.window_samples(fr)
    hop = card.window.hop_samples(fr)
    if len(y) < window + hop:
        raise ValueError("need at least one window and one hop of audio")
    push, path = _pipeline(runner)
    y = np.asarray(y, dtype=np.float32)
    push(y[:window])  # prime: the first window (and the interpreter's first call)
    walls, cpus = [], []
    pos = window
    deadline = None if budget_seconds is None else time.perf_counter() + budget_seconds
    while pos + hop <= len(y) and (max_hops is None or len(walls) < max_hops):
        if deadline is not None and len(walls) >= MIN_HOPS and time.perf_counter() >= deadline:
            break
        c0, t0 = time.process_time(), time.perf_counter()
        push(y[pos:pos + hop])
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        pos += hop
    return StreamingCost(LatencyStats.from_seconds(walls), 1e3 * float(np.mean(cpus)),
                         hop / fr.sample_rate, len(walls), path)
