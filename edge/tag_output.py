"""The tag output file (CSV, JSON Lines or Parquet): read back for resuming, written crash-safe.

``open_sink(out, fmt, info)``: the output, what it already holds (for resuming), and a writer
that makes each row durable as it comes: CSV and JSON Lines are appended and flushed row by row
(fsync at most once a second and at the end); a torn last row from a crash is found and dropped
when the file is opened again. Parquet cannot be appended to, so its new rows go to a JSON Lines
journal beside it (``OUT.journal``, the same rules), merged at the end into a new Parquet file
written to a temporary name and renamed over the old one (old + new rows): the Parquet file is
never half-written, and a crash loses no more than with CSV. A track whose row is replaced (its
size or mtime changed), or whose size and mtime changed when tags were written into it, makes
the file be rewritten atomically at the end. pyarrow is imported only for Parquet.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from edge_genre.edge.tag_rows import ModelInfo, columns
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


def other_columns(name, found: list, expected: list) -> UsageError:
    """The refusal to resume an output whose columns are not this run's, saying why if known."""
    if [("duration" if c == "seconds" else c) for c in found] == list(expected):
        why = ("written by an older edge-genre, whose column 'seconds' is now 'duration', as in "
               "predict --json")
    else:
        why = "another model's labels?"
    return UsageError(f"{name} holds rows with other columns ({why}): choose another --out")


INT_COLUMNS = ("size",)
STR_COLUMNS = ("path", "genre", "model", "model_version", "error")


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


def require_pyarrow():
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
                    raise other_columns(name, rec, cols)
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
                raise other_columns(name, list(row), cols)
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
    require_pyarrow()
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
                raise other_columns(out, list(rows[0]), self.cols)
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
        require_pyarrow()
    return Sink(Path(out), fmt, columns(info.labels), info)

