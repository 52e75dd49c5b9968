"""The tag run, top to bottom: walk, skip what is done, classify, write rows (``edge-genre tag``).

``tag_library(options)``: walk the library (``walk``), skip what the output already holds,
classify the rest (``tag_pool.LocalPool``, or Ray with ``engine="ray"``: ``tag_ray``), write the
genre into the files when asked (``tag_files``), write rows (``tag_output``), show progress
(``tag_progress``).

Resume rule: a track is skipped when the output holds a row with its path (absolute), size and
mtime; error rows count (the same bytes give the same error; exit status 1 reports them again).
A track whose size or mtime changed is classified again and its old row replaced (the file is
rewritten atomically at the end). A row records the file's size and mtime *after* its tags were
written, so writing tags does not make the next run classify it again.

Nothing heavy at import: Ray, mutagen and pyarrow are imported inside the functions that need
them, numpy and the interpreter only where a model is loaded.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edge_genre.edge.tag_output import (Done, Sink, UsageError, open_sink, output_format,
                                        require_pyarrow)
from edge_genre.edge.tag_pool import LocalPool
from edge_genre.edge.tag_progress import Progress, isatty
from edge_genre.edge.tag_rows import ModelInfo, Track, make_row
from edge_genre.edge.track import usable_cores
from edge_genre.edge.walk import WalkReport, library_suffixes, walk


@dataclass
class TagOptions:
    paths: list[str]
    out: str
    fmt: str | None = None
    workers: int | None = None
    engine: str = "local"  # "local" or "ray"
    address: str | None = None
    model: str | None = None
    backend: str = "auto"
    threads: int | None = None
    write_tags: bool = False
    dry_run: bool = False
    overwrite: bool = False
    quiet: bool = False


@dataclass
class TagSummary:
    classified: int = 0  # new rows this run (errors included)
    errors: int = 0  # new error rows
    skipped: int = 0  # already in the output
    skipped_errors: int = 0  # of which error rows
    walk_problems: int = 0
    tag_failures: int = 0
    tags_written: int = 0
    tags_planned: int = 0  # --dry-run: would be written
    tags_kept: int = 0
    tags_unsupported: int = 0
    seconds: float = 0.0
    workers: int = 0

    @property
    def failed(self) -> int:
        return self.errors + self.skipped_errors + self.walk_problems + self.tag_failures

    @property
    def rate(self) -> float:
        return self.classified / self.seconds if self.seconds > 0 else 0.0


def tag_library(opts: TagOptions, stdout=None, stderr=None,
                on_row: Callable[[dict], None] | None = None) -> TagSummary:
    """Run ``edge-genre tag``. Raises UsageError (or another EdgeGenreError) for what the user
    must fix; returns the summary (``failed`` > 0 means exit status 1)."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    fmt = _check_options(opts)
    workers = opts.workers or usable_cores()
    info = ModelInfo.load(opts.model, opts.backend, opts.threads)
    sink = open_sink(opts.out, fmt, info)
    summary = TagSummary(workers=workers)
    progress = Progress(stderr, enabled=not opts.quiet and isatty(stderr))
    suffixes = library_suffixes()
    report = WalkReport()
    stop_count = threading.Event()
    tagger = _Tagger(opts, sink, summary, stdout, stderr, progress) \
        if (opts.write_tags or opts.dry_run) else None

    def todo() -> Iterator[Track]:
        for p in walk(opts.paths, suffixes, report):
            track = Track.stat(p)
            prev = sink.done.get(track.path)
            if prev is not None and (prev.size, prev.mtime) == (track.size, track.mtime):
                summary.skipped += 1
                if prev.error:
                    summary.skipped_errors += 1
                elif tagger is not None and prev.genre:
                    tagger.apply(track, prev.genre, skipped=True)
                progress.show(summary.classified, summary.failed, summary.skipped)
                continue
            if prev is not None:
                sink.superseded.add(track.path)
            yield track

    def handle(track: Track, fields: dict) -> None:
        if fields["error"] is None and tagger is not None:
            track = tagger.apply(track, fields["genre"], skipped=False)
        row = make_row(track, fields, info)
        sink.write(row)
        summary.classified += 1
        if fields["error"] is not None:
            summary.errors += 1
            progress.clear()
            print(f"{track.path}: error: {fields['error']}", file=stderr, flush=True)
        if on_row is not None:
            on_row(row)
        progress.show(summary.classified, summary.failed, summary.skipped)

    if progress.enabled:
        threading.Thread(target=_count_todo, daemon=True, name="edge-genre-count",
                         args=(opts.paths, suffixes, sink.done, progress, stop_count)).start()
    t0 = time.monotonic()
    old_term = _raise_on_sigterm()
    try:
        if opts.engine == "ray":
            from edge_genre.edge import tag_ray

            for track, fields in tag_ray.classify(
                    todo(), info, workers=opts.workers or (None if opts.address else workers),
                    address=opts.address,
                    threads=opts.threads or 1, show_progress=False):
                handle(track, fields)
        else:
            pool = LocalPool(info, workers, opts.threads)
            clean = False
            try:
                for track, fields in pool.map(todo()):
                    handle(track, fields)
                clean = True
            finally:
                pool.close(kill=not clean)
    except KeyboardInterrupt:
        progress.clear()
        print(f"edge-genre tag: interrupted: {summary.classified} row(s) written this run are "
              f"kept in {opts.out}; run the same command again to resume", file=stderr,
              flush=True)
        raise
    finally:
        stop_count.set()
        summary.seconds = time.monotonic() - t0
        _restore_sigterm(old_term)
        progress.finish(summary.classified, summary.failed, summary.skipped)
        sink.close()
    summary.walk_problems = len(report.problems)
    _report(opts, summary, report, tagger, workers, stderr)
    return summary


def _check_options(opts: TagOptions) -> str:
    """The output format, once the options, the paths and the extras they need are checked
    (one line, exit 2, before any model is loaded). The same path given twice is dropped."""
    if opts.engine not in ("local", "ray"):
        raise UsageError(f"unknown --engine {opts.engine!r} (choose local or ray)")
    if opts.address and opts.engine != "ray":
        raise UsageError("--address needs --engine ray")
    if opts.workers is not None and opts.workers < 1:
        raise UsageError("--workers must be at least 1")
    fmt = output_format(opts.out, opts.fmt)
    opts.paths = list(dict.fromkeys(opts.paths))  # the same folder twice is walked once
    if fmt == "parquet":
        require_pyarrow()
    for raw in opts.paths:
        if not (os.path.exists(raw) or os.path.islink(raw)):
            raise UsageError(f"{raw}: no such file or folder")
    if opts.engine == "ray":
        from edge_genre.edge import tag_ray

        tag_ray.require()
    if opts.write_tags or opts.dry_run:
        from edge_genre.edge import tag_files

        tag_files.require()
    return fmt


class _Tagger:
    """``--write-tags`` / ``--dry-run``: the genre into each classified file's own tags."""

    def __init__(self, opts: TagOptions, sink: Sink, summary: TagSummary, stdout, stderr,
                 progress: Progress):
        from edge_genre.edge import tag_files

        self.tag_files = tag_files
        self.opts, self.sink, self.summary = opts, sink, summary
        self.stdout, self.stderr, self.progress = stdout, stderr, progress
        self.unsupported_suffixes: set[str] = set()

    def apply(self, track: Track, genre: str, skipped: bool) -> Track:
        """Plan (and unless --dry-run, write) the genre tag; the track as it is afterwards."""
        tag_files = self.tag_files
        try:
            change = tag_files.plan(track.path, genre, overwrite=self.opts.overwrite)
        except tag_files.TagError as exc:
            self.summary.tag_failures += 1
            self._say(f"{track.path}: error: cannot read tags: {exc}", err=True)
            return track
        if change.action == "unsupported":
            self.summary.tags_unsupported += 1
            self.unsupported_suffixes.add(Path(track.path).suffix.lower())
            return track
        if change.action == "keep":
            self.summary.tags_kept += 1
            self._say(f"{track.path}: genre {change.old!r} kept (not {change.new!r}; "
                      "--overwrite replaces it)", dry=True)
            return track
        if change.action == "same":
            return track
        if self.opts.dry_run:
            self.summary.tags_planned += 1
            self._say(f"{track.path}: genre {change.old or '(none)'!s} -> {change.new} "
                      "(dry run: not written)", dry=True)
            return track
        try:
            tag_files.write_genre(track.path, change.new)
        except tag_files.TagError as exc:
            self.summary.tag_failures += 1
            self._say(f"{track.path}: error: cannot write tags: {exc}", err=True)
            return track
        self.summary.tags_written += 1
        self._say(f"{track.path}: genre {change.old or '(none)'!s} -> {change.new}")
        after = Track.stat(track.path)
        if skipped:
            self.sink.update_stat(track.path, after.size, after.mtime)
        return after

    def _say(self, text: str, err: bool = False, dry: bool = False) -> None:
        if self.opts.quiet and not err and not (dry and self.opts.dry_run):
            return
        self.progress.clear()
        print(text, file=self.stderr if err else self.stdout, flush=True)

    def report(self) -> None:
        s = self.summary
        if self.opts.quiet and not self.opts.dry_run:
            return
        if self.opts.dry_run:
            what = f"would write {s.tags_planned}"
        else:
            what = f"wrote {s.tags_written}"
        print(f"edge-genre tag: genre tags: {what}, kept {s.tags_kept} existing"
              + (f"; {s.tags_unsupported} file(s) of a type without genre tags "
                 f"({', '.join(sorted(self.unsupported_suffixes))}) left alone"
                 if s.tags_unsupported else ""),
              file=self.stderr, flush=True)


def _count_todo(paths, suffixes, done: dict[str, Done], progress: Progress,
                stop: threading.Event) -> None:
    """Background: how many tracks this run will classify, for the progress bar's total."""
    n = 0
    for p in walk(paths, suffixes):
        if stop.is_set():
            return
        t = Track.stat(p)
        d = done.get(t.path)
        if d is None or (d.size, d.mtime) != (t.size, t.mtime):
            n += 1
    progress.total = n


def _raise_on_sigterm():
    """SIGTERM runs the same clean-up as Ctrl-C (rows flushed, Parquet merged)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        return None


def _restore_sigterm(old) -> None:
    if old is not None:
        try:
            signal.signal(signal.SIGTERM, old)
        except (ValueError, OSError):
            pass


def _report(opts: TagOptions, summary: TagSummary, report: WalkReport, tagger: _Tagger | None,
            workers: int, stderr) -> None:
    """The lines after the run: the walk's problems, the tags written, the summary."""
    for path, problem in report.problems:
        print(f"{path}: error: {problem}", file=stderr, flush=True)
    if report.undecodable and not opts.quiet:
        print(f"edge-genre tag: {report.undecodable} .m4a/.aac file(s) left out: this "
              "decoder (libsndfile) cannot read MPEG-4 audio", file=stderr, flush=True)
    if tagger is not None:
        tagger.report()
    if not opts.quiet:
        print(f"edge-genre tag: {summary.classified} classified ({summary.errors} errors), "
              f"{summary.skipped} already in {opts.out}"
              + (f" ({summary.skipped_errors} of them errors)" if summary.skipped_errors else "")
              + f"; {summary.rate:.2f} tracks/s with "
              + (f"the Ray cluster at {opts.address}" if opts.address and not opts.workers
                 else f"{workers} Ray worker(s)" if opts.engine == "ray"
                 else f"{workers} worker(s)")
              + f" in {summary.seconds:.1f} s", file=stderr, flush=True)
