"""A whole music library through the edge runtime: ``edge-genre tag``.

What is here, in the order a run uses it:

- ``classify_track(clf, path)``: the per-track function, ``Classifier.classify_file`` and the
  rule that makes a result an error (unreadable, too short, silent). ``predict`` calls it for
  each file and ``tag`` for each track, so the two cannot disagree.
- ``walk(paths)``: the library's audio files, streamed (``os.scandir``, one folder's listing at
  a time, names sorted within a folder): never the whole library as a list.
- ``open_sink(out, fmt, ...)``: the output (CSV, JSON Lines or Parquet), what it already holds
  (for resuming), and a writer that makes each row durable as it comes: CSV and JSON Lines are
  appended and flushed row by row (fsync at most once a second and at the end); a torn last row
  from a crash is found and dropped when the file is opened again. Parquet cannot be appended
  to, so its new rows go to a JSON Lines journal beside it (``OUT.journal``, the same rules),
  merged at the end into a new Parquet file written to a temporary name and renamed over the
  old one (old + new rows): the Parquet file is never half-written, and a crash loses no more
  than with CSV.
- ``LocalPool``: N worker processes (spawned; one interpreter thread each; each loads the model
  once), one path in flight per worker, so memory does not follow the library's length. A
  worker that dies on a file (a decoder crash) gives that file an error row and is replaced.
- ``tag_library(options)``: the run: walk, skip what the output already holds (same path, size
  and mtime), classify (``LocalPool``, or Ray with ``engine="ray"``: ``ray_engine``), write
  tags into the files when asked (``tags``), write rows, show progress.

Resume rule: a track is skipped when the output holds a row with its path (absolute), size and
mtime; error rows count (the same bytes give the same error; exit status 1 reports them again).
A track whose size or mtime changed is classified again and its old row replaced (the file is
rewritten atomically at the end). A row records the file's size and mtime *after* its tags were
written, so writing tags does not make the next run classify it again.

Nothing heavy at import: Ray, mutagen and pyarrow are imported inside the functions that need
them, numpy and the interpreter only where a model is loaded.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edge_genre.edge.track import error_fields, track_fields, usable_cores
from edge_genre.edge.walk import WalkReport, library_suffixes, walk
from edge_genre.errors import EdgeGenreError


log = logging.getLogger("edge_genre.tag")

#: Output formats by file suffix.
FORMAT_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
                   ".parquet": "parquet", ".pq": "parquet"}
FORMATS = ("csv", "jsonl", "parquet")
#: Seconds between fsyncs of the output (each row is flushed to the OS as it is written).
FSYNC_EVERY_S = 1.0


class UsageError(EdgeGenreError):
    """A bad option, output file or library path: one line, exit 2."""


# ----------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class ModelInfo:
    """What a run's rows say about the model, and what workers need to load it."""

    path: str  # the model file the parent resolved (workers load exactly this file)
    backend: str
    name: str  # file name, e.g. default-int8w.tflite
    version: str  # the card's model_version
    labels: tuple[str, ...]

    @classmethod
    def load(cls, model, backend: str, threads: int | None) -> ModelInfo:
        """Resolve and load the model once in the parent: a bad model is one line (exit 2)
        before any worker starts."""
        from edge_genre.edge.backends import as_runner

        runner = as_runner(model, backend=backend, threads=threads or 1)
        return cls(str(runner.path), runner.backend, runner.path.name,
                   str(runner.card.model_version), tuple(runner.card.labels))


def prob_column(label: str) -> str:
    return f"prob_{label}"


def columns(labels: Iterable[str]) -> list[str]:
    """The output's columns: path, size, mtime, genre, confidence, one probability per label,
    model, model_version, duration, error."""
    return (["path", "size", "mtime", "genre", "confidence"]
            + [prob_column(x) for x in labels]
            + ["model", "model_version", "duration", "error"])


INT_COLUMNS = ("size",)
STR_COLUMNS = ("path", "genre", "model", "model_version", "error")


@dataclass(frozen=True)
class Track:
    """A file of the library as the walk found it: absolute path, size and mtime (None when it
    cannot be stat'ed: a broken link, no permission; the reader then says why)."""

    path: str
    size: int | None
    mtime: float | None

    @classmethod
    def stat(cls, path: str) -> Track:
        path = os.path.abspath(path)
        try:
            st = os.stat(path)
        except OSError:
            return cls(path, None, None)
        return cls(path, int(st.st_size), float(st.st_mtime))


def make_row(track: Track, fields: dict, info: ModelInfo) -> dict:
    row = {"path": track.path, "size": track.size, "mtime": track.mtime,
           "genre": fields["genre"], "confidence": fields["confidence"]}
    probabilities = fields["probabilities"]  # {label: p} (track.track_fields), None on an error
    for label in info.labels:
        row[prob_column(label)] = None if probabilities is None else float(probabilities[label])
    row.update(model=info.name, model_version=info.version, duration=fields["duration"],
               error=fields["error"])
    return row


def _typed(name: str, text: str):
    """A CSV cell back to its type ('' is None)."""
    if text == "":
        return None
    if name in STR_COLUMNS:
        return text
    if name in INT_COLUMNS:
        return int(text)
    return float(text)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    return str(value)


# ----------------------------------------------------------------------------- output files


def output_format(out: str, fmt: str | None) -> str:
    suffix = Path(out).suffix.lower()
    if fmt:
        if fmt not in FORMATS:
            raise UsageError(f"unknown --format {fmt!r} (choose from {', '.join(FORMATS)})")
        if FORMAT_SUFFIXES.get(suffix, fmt) != fmt:  # Parquet into x.csv misleads every reader
            raise UsageError(f"--format {fmt} does not match --out {out!r} (a "
                             f"{FORMAT_SUFFIXES[suffix]} name): rename the output or drop --format")
        return fmt
    if suffix not in FORMAT_SUFFIXES:
        raise UsageError(f"cannot tell the output format from {out!r}: name it .csv, .jsonl or "
                         ".parquet, or pass --format")
    return FORMAT_SUFFIXES[suffix]


def _require_pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UsageError("Parquet output needs pyarrow: pip install pyarrow "
                         "(or: pip install 'edge-genre[scale]'); or write .csv / .jsonl") from None
    return pyarrow


class DamagedOutput(UsageError):
    pass


def _split_records_csv(text: str, cols: list[str], name: str):
    """(rows, good_chars): the complete, valid records of a CSV text after its header, and the
    length of the text they (and the header) occupy. A torn or invalid tail is left out; a bad
    record followed by good ones is refused (DamagedOutput): never dropped silently."""
    pieces = text.split("\n")
    lines = [p + "\n" for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    ends = []
    total = 0
    for line in lines:
        total += len(line)
        ends.append(total)
    reader = csv.reader(iter(lines), strict=True)
    rows, good, bad_at = [], 0, None
    header_done = False
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            break
        except csv.Error:
            bad_at = reader.line_num
            break
        end = ends[reader.line_num - 1]
        complete = text[end - 1:end] == "\n"
        if not header_done:
            if not complete or rec != cols:
                if complete and rec and rec[0] == "path":
                    raise UsageError(
                        f"{name} holds rows with other columns (another model's labels?): "
                        f"choose another --out")
                bad_at = reader.line_num
                break
            header_done, good = True, end
            continue
        try:
            if not complete or len(rec) != len(cols):
                raise ValueError
            row = {c: _typed(c, v) for c, v in zip(cols, rec)}
        except ValueError:
            bad_at = reader.line_num
            break
        rows.append(row)
        good = end
    if bad_at is not None:
        # Torn: the bad record runs to the end of the text without its newline (rows are
        # written whole, newline last, so a crash can only cut the last one short).
        torn = ends[min(reader.line_num, len(ends)) - 1] == len(text) and \
            not text.endswith("\n")
        if torn and not header_done:
            torn = _csv_line(cols).startswith(text[good:])  # a torn header of ours
        _check_droppable(text[good:], name, bad_at, torn,
                         lambda t: _csv_has_good_record(t, cols))
    return rows, good, header_done


def _csv_has_good_record(text: str, cols: list[str]) -> bool:
    """Whether a text (the tail after a bad record) still holds a complete valid row."""
    lines = text.split("\n")[1:-1]  # skip the bad line itself; the last piece is not complete
    for line in lines:
        try:
            rec = next(csv.reader([line], strict=True))
            if len(rec) == len(cols):
                [_typed(c, v) for c, v in zip(cols, rec)]
                return True
        except (csv.Error, ValueError, StopIteration):
            continue
    return False


def _check_droppable(tail: str, name: str, line_no: int, torn: bool,
                     has_good: Callable[[str], bool]) -> None:
    """A bad record may be dropped only when it is a torn last row; anything else is refused
    (DamagedOutput), and the file is left as it is."""
    if has_good(tail):
        raise DamagedOutput(f"{name}: line {line_no} is damaged and good rows follow it; "
                            "repair or remove that line (or choose another --out)")
    if not torn:
        raise DamagedOutput(f"{name}: line {line_no} is not a row that edge-genre tag writes "
                            "(another file?); choose another --out, or repair it")


def _split_records_jsonl(text: str, cols: list[str] | None, name: str):
    """(rows, good_chars) of a JSON Lines text, as ``_split_records_csv``; ``cols`` None takes
    any object."""
    rows, good = [], 0
    pos = 0
    line_no = 0
    while pos < len(text):
        nl = text.find("\n", pos)
        line_no += 1
        end = len(text) if nl < 0 else nl + 1
        line = text[pos:end]
        row = None
        if nl >= 0:
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if isinstance(row, dict) and cols is not None and list(row) != cols:
                raise UsageError(f"{name} holds rows with other columns (another model's "
                                 "labels?): choose another --out")
        if not isinstance(row, dict):
            if line.strip() == "" and nl >= 0:  # a blank line: harmless
                pos = good = end
                continue
            _check_droppable(text[pos:], name, line_no, nl < 0,
                             lambda t: _jsonl_has_good(t, cols))
            break
        rows.append(row)
        pos = good = end
    return rows, good


def _jsonl_has_good(text: str, cols: list[str] | None) -> bool:
    for line in text.split("\n")[1:-1]:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and (cols is None or list(row) == cols):
            return True
    return False


def _read_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="surrogateescape")


def _byte_len(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogateescape"))


def read_rows(out, fmt: str | None = None, labels: Iterable[str] | None = None) -> list[dict]:
    """Every complete row of an output file (typed: None for empty cells), in file order; a
    Parquet output's journal rows too (the last row per path wins). A torn last row is left
    out. ``labels`` defaults to those the file's columns name."""
    out = Path(out)
    fmt = output_format(str(out), fmt)
    if fmt == "parquet":
        rows = _read_parquet(out) if out.exists() else []
        journal = journal_path(out)
        if journal.exists():
            cols = list(rows[0]) if rows else None
            text = _read_text(journal)
            rows = _last_per_path(rows + _split_records_jsonl(text, cols, str(journal))[0])
        return rows
    if not out.exists():
        return []
    text = _read_text(out)
    if fmt == "jsonl":
        first = text.split("\n", 1)[0]
        try:
            cols = list(json.loads(first)) if labels is None else columns(labels)
        except ValueError:
            return []
        return _split_records_jsonl(text, cols, str(out))[0]
    if labels is None:
        try:
            cols = next(csv.reader([text.split("\n", 1)[0]]))
        except StopIteration:
            return []
    else:
        cols = columns(labels)
    return _split_records_csv(text, cols, str(out))[0]


def _last_per_path(rows: list[dict]) -> list[dict]:
    last = {}
    for row in rows:
        last.pop(row["path"], None)
        last[row["path"]] = row
    return list(last.values())


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".journal")


def _read_parquet(path: Path) -> list[dict]:
    _require_pyarrow()
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
        raise UsageError(f"{path}: cannot read it as Parquet ({exc}); choose another --out") \
            from None


def _parquet_schema(cols: list[str]):
    import pyarrow as pa

    def kind(c):
        if c in STR_COLUMNS:
            return pa.string()
        if c in INT_COLUMNS:
            return pa.int64()
        return pa.float64()

    return pa.schema([(c, kind(c)) for c in cols])


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(out: Path, write: Callable[[Path], None]) -> None:
    """Write to a temporary file beside ``out``, fsync it, rename it over ``out``."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if out.exists():
            shutil.copymode(out, tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(out.parent)


@dataclass
class Done:
    """What the output already holds for a path."""

    size: int | None
    mtime: float | None
    genre: str | None
    error: str | None


class Sink:
    """An output file being written: ``done`` (path -> Done) from the rows it held, ``write``
    a row (durable when it returns, up to the fsync interval), ``update_stat`` a row's size and
    mtime (after tags were written into a skipped track), ``close`` (merge / compact)."""

    def __init__(self, out: Path, fmt: str, cols: list[str], info: ModelInfo):
        self.out, self.fmt, self.cols, self.info = out, fmt, cols, info
        self.done: dict[str, Done] = {}
        self.dropped_torn = 0
        self.superseded: set[str] = set()  # paths with an old row that a new row replaces
        self.stat_updates: dict[str, tuple[int | None, float | None]] = {}
        self.written = 0
        self._file = None
        self._last_sync = time.monotonic()
        self._open()

    # -- opening: read what is there, drop a torn tail, lock, open for appending

    def _open(self) -> None:
        out = self.out
        if not out.parent.is_dir():
            raise UsageError(f"cannot write {out}: folder {out.parent} does not exist")
        if out.is_dir():
            raise UsageError(f"cannot write {out}: it is a folder")
        append_to = journal_path(out) if self.fmt == "parquet" else out
        try:
            self._file = open(append_to, "a+b")
        except OSError as exc:
            raise UsageError(f"cannot write {append_to}: {exc.strerror or exc}") from None
        try:
            self._lock()
            self._load(out, append_to)
        except BaseException:
            if self._file is not None:
                self._file.close()
                self._file = None
            raise

    def _load(self, out: Path, append_to: Path) -> None:
        rows = []
        if self.fmt == "parquet" and out.exists():
            rows = _read_parquet(out)
            if rows and list(rows[0]) != self.cols:
                raise UsageError(f"{out} holds rows with other columns (another model's "
                                 "labels?): choose another --out")
        self._file.seek(0)
        text = self._file.read().decode("utf-8", errors="surrogateescape")
        if self.fmt == "csv":
            new, good, has_header = _split_records_csv(text, self.cols, str(append_to))
        else:
            new, good = _split_records_jsonl(text, self.cols, str(append_to))
            has_header = True
        good_bytes = _byte_len(text[:good])
        size = self._file.seek(0, os.SEEK_END)
        if good_bytes < size:  # a torn row from a crash: drop it before appending
            self.dropped_torn = 1
            log.warning("%s: dropped an incomplete last row (%d bytes) left by an interrupted "
                        "run", append_to, size - good_bytes)
            self._file.truncate(good_bytes)
            self._file.seek(good_bytes)
            os.fsync(self._file.fileno())
        if self.fmt == "csv" and not has_header:
            self._append_text(_csv_line(self.cols))
            self._sync(force=True)
        rows.extend(new)
        models = {(r.get("model"), r.get("model_version")) for r in rows}
        mine = (self.info.name, self.info.version)
        others = sorted(m for m in models if m != mine)
        if others:
            raise UsageError(f"{out} holds rows made with model {others[0][0]} "
                             f"(version {others[0][1]}), not {mine[0]} (version {mine[1]}): "
                             "choose another --out")
        for r in rows:
            self.done[r["path"]] = Done(r["size"], r["mtime"], r["genre"], r["error"])
        self.existing_rows = len(rows)

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock
            return
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(f"{self.out} is being written by another edge-genre tag run") \
                from None

    # -- writing

    def _append_text(self, text: str) -> None:
        self._file.write(text.encode("utf-8", errors="surrogateescape"))
        self._file.flush()

    def _sync(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_sync >= FSYNC_EVERY_S:
            os.fsync(self._file.fileno())
            self._last_sync = now

    def write(self, row: dict) -> None:
        if self.fmt == "csv":
            line = _csv_line([_cell(row[c]) for c in self.cols])
        else:
            line = json.dumps(row, ensure_ascii=True, allow_nan=False) + "\n"
        self._append_text(line)
        self._sync()
        self.written += 1

    def update_stat(self, path: str, size, mtime) -> None:
        self.stat_updates[path] = (size, mtime)

    # -- closing

    def close(self) -> None:
        """Make everything durable; merge the journal into Parquet, or rewrite a CSV/JSONL
        output whose old rows were replaced or whose size/mtime changed (atomic renames)."""
        if self._file is None:
            return
        try:
            self._sync(force=True)
            if self.fmt == "parquet":
                self._merge_parquet()
            elif self.superseded or self.stat_updates:
                self._rewrite_text()
        finally:
            self._file.close()
            self._file = None

    def _final_rows(self, rows: list[dict]) -> list[dict]:
        rows = _last_per_path(rows)
        for row in rows:
            if row["path"] in self.stat_updates:
                row["size"], row["mtime"] = self.stat_updates[row["path"]]
        return rows

    def _rewrite_text(self) -> None:
        rows = self._final_rows(read_rows(self.out, self.fmt, self.info.labels))

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                if self.fmt == "csv":
                    f.write(_csv_line(self.cols).encode())
                for row in rows:
                    text = (_csv_line([_cell(row[c]) for c in self.cols]) if self.fmt == "csv"
                            else json.dumps(row, ensure_ascii=True, allow_nan=False) + "\n")
                    f.write(text.encode("utf-8", errors="surrogateescape"))

        _atomic_write(self.out, write)

    def _merge_parquet(self) -> None:
        journal = journal_path(self.out)
        text = _read_text(journal)
        new, _ = _split_records_jsonl(text, self.cols, str(journal))
        if not new and not self.stat_updates and self.out.exists():
            self._remove_journal()
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        old = _read_parquet(self.out) if self.out.exists() else []
        rows = self._final_rows(old + new)
        table = pa.Table.from_pylist(rows, schema=_parquet_schema(self.cols))
        _atomic_write(self.out, lambda tmp: pq.write_table(table, tmp))
        self._remove_journal()

    def _remove_journal(self) -> None:
        # Truncate, then unlink: the lock is on this file, so another run cannot be appending.
        self._file.truncate(0)
        journal_path(self.out).unlink(missing_ok=True)
        _fsync_dir(self.out.parent)


def _csv_line(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue()


def open_sink(out, fmt: str, info: ModelInfo) -> Sink:
    if fmt == "parquet":
        _require_pyarrow()
    return Sink(Path(out), fmt, columns(info.labels), info)


# ----------------------------------------------------------------------------- workers


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


# ----------------------------------------------------------------------------- progress


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """One line on a terminal (stderr), redrawn at most 5 times a second: a bar (once the
    total is known), tracks done, rate and ETA. Nothing at all when ``enabled`` is false."""

    def __init__(self, stream, enabled: bool):
        self.stream, self.enabled = stream, enabled
        self.start = time.monotonic()
        self.total: int | None = None  # tracks to classify (known when the count finishes)
        self._last = 0.0
        self._shown = False

    def _line(self, done: int, failed: int, skipped: int) -> str:
        elapsed = max(1e-9, time.monotonic() - self.start)
        rate = done / elapsed
        parts = []
        if self.total:
            frac = min(1.0, done / self.total)
            width = 20
            fill = int(frac * width)
            parts.append(f"[{'#' * fill}{'.' * (width - fill)}] {done}/{self.total}")
        else:
            parts.append(f"{done} tracks")
        parts.append(f"{rate:.2f} tracks/s")
        if self.total and rate > 0:
            parts.append(f"ETA {_clock(max(0, self.total - done) / rate)}")
        elif not self.total:
            parts.append("ETA: counting")
        if failed:
            parts.append(f"{failed} errors")
        if skipped:
            parts.append(f"{skipped} already done")
        return "  ".join(parts)

    def show(self, done: int, failed: int, skipped: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        cols = shutil.get_terminal_size((100, 20)).columns
        line = self._line(done, failed, skipped)[:max(10, cols - 1)]
        self.stream.write("\r\x1b[K" + line)
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Clear the line before another message is printed."""
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def finish(self, done: int, failed: int, skipped: int) -> None:
        if self.enabled and self._shown:
            self.show(done, failed, skipped, force=True)
            self.stream.write("\n")
            self.stream.flush()


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


# ----------------------------------------------------------------------------- the run


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
    if opts.engine not in ("local", "ray"):
        raise UsageError(f"unknown --engine {opts.engine!r} (choose local or ray)")
    if opts.address and opts.engine != "ray":
        raise UsageError("--address needs --engine ray")
    if opts.workers is not None and opts.workers < 1:
        raise UsageError("--workers must be at least 1")
    fmt = output_format(opts.out, opts.fmt)
    opts.paths = list(dict.fromkeys(opts.paths))  # the same folder twice is walked once
    if fmt == "parquet":
        _require_pyarrow()
    for raw in opts.paths:
        if not (os.path.exists(raw) or os.path.islink(raw)):
            raise UsageError(f"{raw}: no such file or folder")
    if opts.engine == "ray":
        from edge_genre.edge import ray_engine

        ray_engine.require()
    if opts.write_tags or opts.dry_run:
        from edge_genre.edge import tags

        tags.require()
    workers = opts.workers or usable_cores()
    info = ModelInfo.load(opts.model, opts.backend, opts.threads)
    sink = open_sink(opts.out, fmt, info)
    summary = TagSummary(workers=workers)
    progress = Progress(stderr, enabled=not opts.quiet and _isatty(stderr))
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
            from edge_genre.edge import ray_engine

            for track, fields in ray_engine.classify(
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
    return summary


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


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


class _Tagger:
    """``--write-tags`` / ``--dry-run``: the genre into each classified file's own tags."""

    def __init__(self, opts: TagOptions, sink: Sink, summary: TagSummary, stdout, stderr,
                 progress: Progress):
        from edge_genre.edge import tags

        self.tags = tags
        self.opts, self.sink, self.summary = opts, sink, summary
        self.stdout, self.stderr, self.progress = stdout, stderr, progress
        self.unsupported_suffixes: set[str] = set()

    def apply(self, track: Track, genre: str, skipped: bool) -> Track:
        """Plan (and unless --dry-run, write) the genre tag; the track as it is afterwards."""
        tags = self.tags
        try:
            change = tags.plan(track.path, genre, overwrite=self.opts.overwrite)
        except tags.TagError as exc:
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
            tags.write_genre(track.path, change.new)
        except tags.TagError as exc:
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
