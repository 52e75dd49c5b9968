"""One track through the runtime: the per-track function that ``predict``, ``tag`` (in worker
processes) and the Ray engine all call, so a track gets the same answer and the same error line
whichever of them classifies it."""
from __future__ import annotations

import logging
import os

from edge_genre.edge.audio import AudioStream
from edge_genre.errors import AudioError

log = logging.getLogger("edge_genre.tag")

#: A track's decision in a ``tag`` row: these keys of ``TrackResult.to_dict``, so ``predict
#: --json``, the HTTP API and ``tag`` name the same things alike.
ROW_KEYS = ("genre", "confidence", "probabilities", "duration")


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
    """The classification part of a track's row: ``ROW_KEYS`` of ``TrackResult.to_dict``
    (``genre``, ``confidence``, ``probabilities`` ({label: p}, the card's order), ``duration``
    (seconds of audio); not rounded) and ``error`` (None when classified).

    Any exception from one file (a decoder bug, not only ``AudioError``) becomes that file's
    error: one bad file never ends a batch."""
    result, problem = classify_track_guarded(clf, path)
    if problem is not None:
        return error_fields(problem)
    d = result.to_dict(deprecated_keys=False, rounded=False)
    return {**{k: d[k] for k in ROW_KEYS}, "error": None}


def error_fields(problem: str) -> dict:
    """The classification part of the row of a track that could not be classified."""
    return {**dict.fromkeys(ROW_KEYS), "error": problem}


def usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
