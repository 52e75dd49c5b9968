"""Classifying uploaded files for the web server: a small pool of classifiers and its answers.

A track's and a window's decision have the one shape of every interface (``TrackResult.to_dict``,
``Decision.to_dict``: ``genre``, ``confidence``, ``probabilities``; ``windows`` is the number of
windows, ``window_decisions`` each one's decision).

Interpreters are not thread-safe, so each ``Classifier`` (with its own loaded Runner) serves one
request at a time; requests take one from the pool and wait while all are busy. Decoding happens
while holding one too, which bounds the memory that concurrent large uploads can take to
``workers`` decoded tracks.

What a request takes is given back when it ends. An interpreter sizes its tensors for the largest
batch it has run and keeps them (TFLite's arena and onnxruntime's never shrink): a 10-minute
track classified as one batch of ~300 windows left the server ~1.3 GB larger for good. The
classifier sends at most ``ClassifierConfig.max_batch`` (8) windows per call, which bounds what an
interpreter holds whatever the track's length, and after a large upload the C heap's free pages
are handed back to the system (``release_memory``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edge_genre.edge.audio import open_bytes
from edge_genre.edge.classifier import Classifier, TrackResult
from edge_genre.edge.track import classify_track
from edge_genre.errors import AudioError, AudioTooLong


#: What a 415 answer asks for.
SEND_AUDIO = "send a WAV, AU, FLAC or OGG file"
#: Uploads at least this large are followed by ``release_memory``.
RELEASE_AFTER_BYTES = 4_000_000


_libc_lock = threading.Lock()
_malloc_trim = None


def release_memory() -> bool:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim(0)``).

    numpy buffers of a few MB and the interpreters' arenas come from malloc's heaps; once freed,
    glibc keeps their pages for reuse unless asked. Returns False where there is no glibc."""
    global _malloc_trim
    with _libc_lock:
        if _malloc_trim is None:
            try:
                _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
                _malloc_trim.argtypes, _malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
            except (OSError, AttributeError):
                _malloc_trim = False
        trim = _malloc_trim
    if not trim:
        return False
    trim(0)
    return True


@dataclass(frozen=True)
class Limits:
    """What one upload may be.

    Parameters
    ----------
    max_upload_bytes : largest file accepted (413 beyond it, checked while it arrives).
    max_seconds : longest audio accepted, after decoding (413 beyond it).
    """

    max_upload_bytes: int = 50_000_000
    max_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.max_upload_bytes < 1 or self.max_seconds <= 0:
            raise ValueError("upload limits must be positive")

    def to_dict(self) -> dict:
        return {"max_upload_bytes": self.max_upload_bytes, "max_seconds": self.max_seconds}


class ClassifyError(Exception):
    """A file that cannot be classified; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _r(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


def track_response(name: str, result: TrackResult, model: dict, elapsed_ms: float) -> dict:
    """``POST /api/classify``'s answer: the file's name, the track's decision and every window's
    in the shape ``predict --json --windows`` gives (``TrackResult.to_dict``, without the CLI's
    deprecated keys), the model (``model_dict``) and the time it took."""
    return {"file": name, **result.to_dict(windows=True, deprecated_keys=False), "model": model,
            "elapsed_ms": _r(elapsed_ms, 1)}


def model_dict(clf: Classifier) -> dict:
    """What the page and API clients need to know about the loaded model (no server paths)."""
    card, runner = clf.card, clf.runner
    return {"file": Path(runner.path).name, "backend": runner.backend, "labels": list(card.labels),
            "preset": card.preset, "quantization": card.quantization,
            "model_version": card.model_version, "package_version": card.package_version,
            "input_shape": list(runner.input_shape), "sample_rate": card.sample_rate,
            "window_seconds": _r(clf.window_seconds, 3), "hop_seconds": _r(clf.hop_seconds, 3)}


class GenreService:
    """Classifies uploaded audio bytes with a pool of ``workers`` classifiers of one model file.

    Parameters
    ----------
    model : a model file path, or None for the shipped default (as ``predict`` picks it).
    backend, threads : passed to the edge runtime's ``load_model``.
    workers : classifiers (interpreters) in the pool, i.e. requests run at the same time.
    limits : Limits for uploads.
    """

    def __init__(self, model=None, backend: str = "auto", threads: int | None = None,
                 workers: int = 1, limits: Limits | None = None):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.limits = limits or Limits()
        first = Classifier(model, backend=backend, threads=threads)
        self.model_path, self.backend = Path(first.runner.path), first.runner.backend
        self._pool: queue.Queue[Classifier] = queue.Queue()
        self._pool.put(first)
        for _ in range(workers - 1):
            self._pool.put(Classifier(self.model_path, backend=self.backend, threads=threads))
        self.workers = workers
        self._busy, self._busy_lock = 0, threading.Lock()  # classifications in flight
        self.model = model_dict(first)

    @contextmanager
    def classifier(self):
        clf = self._pool.get()
        try:
            yield clf
        finally:
            self._pool.put(clf)

    def classify_bytes(self, data: bytes, name: str = "upload") -> dict:
        """Decode and classify one uploaded file. Blocking: call it from a worker thread.

        Raises ClassifyError (400 empty, 415 not audio, 413 too long, 422 too short or silent).
        """
        return self.classify_upload([data], name)

    def classify_upload(self, parcel: list, name: str = "upload") -> dict:
        """``classify_bytes`` of ``parcel.pop()``: the caller hands over its only reference to the
        upload's bytes, so that they are freed before the C heap is trimmed (trimmed while still
        held, a 9 MB upload left the server 9 MB larger each time)."""
        data = parcel.pop()
        with self._busy_lock:
            self._busy += 1
        refused = None
        try:
            if not data:
                raise ClassifyError(400, f"{name}: the file is empty")
            return self._classify(data, name)
        except ClassifyError as exc:
            # Without its traceback and context: their frames hold the bytes (and the decoder
            # on them) until a garbage-collection pass, which left the server 9 MB larger per
            # refused 9 MB upload for several uploads in a row.
            refused = exc.with_traceback(None)
            refused.__context__ = refused.__cause__ = None
        finally:
            large = len(data) >= RELEASE_AFTER_BYTES
            del data
            with self._busy_lock:
                self._busy -= 1
                idle = self._busy == 0
            # The decoded track, its windows and the upload are gone by now. Small uploads too
            # once the server is idle: a burst of 50 concurrent 30 s uploads left glibc holding
            # ~210 MB of freed heap (not a leak: a second burst added ~25 MB, not another 210),
            # ~75 MB once trimmed.
            if idle or large:
                release_memory()
        raise refused

    def _classify(self, data: bytes, name: str) -> dict:
        with self.classifier() as clf:
            t0 = time.perf_counter()
            try:
                # Decoded a block at a time and stopped at the length limit: a small compressed
                # file that expands to hours (a decompression bomb) is refused after decoding
                # max_seconds of it, and never held whole.
                stream = open_bytes(data, name, max_seconds=self.limits.max_seconds)
            except AudioTooLong:
                raise ClassifyError(413, self._too_long(name)) from None
            except AudioError as exc:
                raise ClassifyError(415, f"{exc} - {SEND_AUDIO}") from None
            # The per-track function and silence rule of predict and tag.
            result, problem = classify_track(clf, stream)
            if problem is not None:
                if stream.too_long:
                    raise ClassifyError(413, self._too_long(name))
                if stream.failed:
                    raise ClassifyError(415, f"{name}: {problem} - {SEND_AUDIO}")
                raise ClassifyError(422, f"{name}: {problem}")  # too short, or silent
            elapsed_ms = (time.perf_counter() - t0) * 1e3
        return track_response(name, result, self.model, elapsed_ms)

    def _too_long(self, name: str) -> str:
        return f"{name}: the audio is longer than the {self.limits.max_seconds:g} s limit"
