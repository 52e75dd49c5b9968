"""The tag run's worker processes: each loads the model once and classifies one track at a time.

``LocalPool``: N worker processes (spawned; one interpreter thread each; each loads the model
once), one path in flight per worker, so memory does not follow the library's length. A worker
that dies on a file (a decoder crash) gives that file an error row and is replaced.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterable, Iterator

from edge_genre.edge.tag_rows import ModelInfo, Track
from edge_genre.edge.track import error_fields, track_fields
from edge_genre.errors import EdgeGenreError


_ONE_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def _worker_main(conn, model_path: str, backend: str, threads: int) -> None:
    """A worker process: load the model once, then classify the paths it is sent, one at a time,
    until it is sent None or the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # Warnings (a clipped file) as the CLI prints them: one plain line on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("edge-genre: %(levelname)s: %(message)s"))
    root = logging.getLogger("edge_genre")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    try:
        from edge_genre.edge.classifier import Classifier

        clf = Classifier(model_path, backend=backend, threads=threads)
    except EdgeGenreError as exc:
        conn.send(("fatal", str(exc)))
        return
    except Exception as exc:  # noqa: BLE001
        conn.send(("fatal", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            path = conn.recv()
        except (EOFError, OSError):  # the parent went away
            return
        if path is None:
            return
        fields = track_fields(clf, path)
        try:
            conn.send(("row", fields))
        except (BrokenPipeError, OSError):  # the parent went away while this track ran
            return


class _Worker:
    def __init__(self, ctx, model: ModelInfo, threads: int):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, name="edge-genre-tag-worker",
                                args=(child, model.path, model.backend, threads), daemon=True)
        # One interpreter thread, one BLAS thread, and Ctrl-C blocked until the worker ignores it.
        saved = {k: os.environ.get(k) for k in _ONE_THREAD_ENV}
        os.environ.update({k: "1" for k in _ONE_THREAD_ENV})
        blocked = hasattr(signal, "pthread_sigmask")
        if blocked:
            old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self.proc.start()
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        child.close()
        self.task = None

    def died(self) -> str:
        code = self.proc.exitcode
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"

    def stop(self, kill: bool = False) -> None:
        if self.proc.is_alive():
            if kill:
                self.proc.kill()
            else:
                try:
                    self.conn.send(None)
                except OSError:
                    pass
        self.proc.join(timeout=5 if not kill else 2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=2)
        self.conn.close()


class LocalPool:
    """``workers`` processes that classify tracks with the per-track function, one track in
    flight per worker. Started lazily (never more workers than tracks)."""

    def __init__(self, model: ModelInfo, workers: int, threads: int | None = None):
        import multiprocessing

        self.ctx = multiprocessing.get_context("spawn")
        self.model, self.size, self.threads = model, int(workers), int(threads or 1)
        self.workers: list[_Worker] = []
        self.started = 0

    def _spawn(self) -> _Worker:
        w = _Worker(self.ctx, self.model, self.threads)
        self.workers.append(w)
        self.started += 1
        return w

    def map(self, tracks: Iterable[Track]) -> Iterator[tuple[Track, dict]]:
        """(track, fields) for each track, in the order they finish."""
        from multiprocessing.connection import wait

        it = iter(tracks)
        exhausted = False
        idle: list[_Worker] = []
        busy: list[_Worker] = []
        while True:
            while not exhausted and (idle or len(self.workers) < self.size):
                track = next(it, None)
                if track is None:
                    exhausted = True
                    break
                # A worker that died while idle is not this track's doing: replace it quietly.
                while idle and not idle[-1].proc.is_alive():
                    gone = idle.pop()
                    self.workers.remove(gone)
                    gone.stop(kill=True)
                w = idle.pop() if idle else self._spawn()
                w.task = track
                try:
                    w.conn.send(track.path)
                except OSError:
                    pass  # it died: found below through its sentinel
                busy.append(w)
            if not busy:
                return
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for w in list(busy):
                if w.conn not in ready and w.proc.sentinel not in ready:
                    continue
                msg = None
                try:
                    while w.conn.poll():
                        msg = w.conn.recv()
                        if msg[0] == "ready":
                            msg = None
                            continue
                        break
                except (EOFError, OSError):
                    msg = None
                if msg is None:
                    if w.proc.is_alive() or w.proc.exitcode is None:
                        if w.proc.sentinel not in ready:
                            continue  # a "ready" note only
                        w.proc.join(timeout=1)
                    busy.remove(w)
                    self.workers.remove(w)
                    w.stop(kill=True)
                    yield w.task, error_fields(
                        f"the worker process stopped while classifying this file ({w.died()})")
                    continue
                if msg[0] == "fatal":
                    raise EdgeGenreError(f"a worker could not load the model: {msg[1]}")
                busy.remove(w)
                track, w.task = w.task, None
                idle.append(w)
                yield track, msg[1]

    def close(self, kill: bool = False) -> None:
        for w in self.workers:
            w.stop(kill=kill)
        self.workers = []

