"""One track through the runtime: the per-track function that ``predict``, ``tag`` (in worker
processes) and the Ray engine all call, so a track gets the same answer and the same error line
whichever of them classifies it."""
from __future__ import annotations

import logging
import os

from edge_genre.edge.audio import AudioStream
from edge_genre.errors import AudioError

log = logging.getLogger("edge_genre.tag")


def silent_problem(clf) -> str:
    return (f"silent (every window below {clf.config.silence_dbfs:g} dBFS): "
            "no music to classify")


def classify_track(clf, path):
    """``(TrackResult, None)`` for a track, or ``(None, problem)`` when it cannot be classified
    (an ``AudioError``: unreadable, corrupt, empty, too short; or every window silent).

    The one per-track function of ``predict``, ``tag`` and ``serve``'s uploads (``path`` may be
    an open ``audio.AudioStream``). ``problem`` is the message without the path in front."""
    name = path.name if isinstance(path, AudioStream) else path
    try:
        result = clf.classify_file(path)
    except AudioError as exc:
        return None, str(exc).removeprefix(f"{name}: ")
    if result.silent:
        return None, silent_problem(clf)
    return result, None


def classify_track_guarded(clf, path):
    """``classify_track``, with any other exception from one file (a decoder bug, a MemoryError
    under a memory limit) as that file's problem: one bad file never ends a batch (the
    traceback is logged at DEBUG)."""
    try:
        return classify_track(clf, path)
    except Exception as exc:  # noqa: BLE001 - a bug on one file must not end the batch
        log.debug("unexpected error on %s", path, exc_info=True)
        return None, f"unexpected error: {type(exc).__name__}: {exc}"


def track_fields(clf, path) -> dict:
    """The classification part of a track's row: ``genre``, ``confidence``, ``probabilities``
    ({label: p}, the card's order, not rounded), ``seconds`` (of audio), ``error`` (None when
    classified). The decision's keys are those of every interface (``TrackResult.to_dict``).

    Any exception from one file (a decoder bug, not only ``AudioError``) becomes that file's
    error: one bad file never ends a batch."""
    result, problem = classify_track_guarded(clf, path)
    if problem is not None:
        return error_fields(problem)
    return {"genre": result.label, "confidence": float(result.confidence),
            "probabilities": {k: float(p) for k, p in zip(result.labels, result.probs)},
            "seconds": float(result.duration),
            "error": None}


def error_fields(problem: str) -> dict:
    """The classification part of the row of a track that could not be classified."""
    return {"genre": None, "confidence": None, "probabilities": None, "seconds": None,
            "error": problem}


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
