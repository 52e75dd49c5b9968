"""`edge-genre tag`: a library into rows, the same per-track function as `predict`, resumable
after Ctrl-C or a kill, torn rows dropped, bad files as error rows (exit 1), usage errors as
one line (exit 2), a bounded number of tracks in flight, a crashed worker as one error row.

Real GTZAN excerpts throughout (symbolic links into ../shared: nothing is copied); small
libraries, so the file stays fast on two cores. The 161-track run is in test_tag_slow.py."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge_genre.cli import main
from edge_genre.edge import tag_output, tag_pool, tag_progress, tag_rows, walk
from edge_genre.edge.audio import read
from edge_genre.edge.track import classify_track
from edge_genre.edge.tag_output import read_rows

from tests.edge.test_cli import write_wav

from tests.conftest import GTZAN_MINI, REPO, gtzan_file

#: Twelve excerpts over ten genres, one of them GTZAN's .au.
TRACKS = ("blues.00001", "classical.00001", "country.00003", "disco.00002", "hiphop.00001",
          "jazz.00002", "jazz.00003", "metal.00002", "pop.00000", "reggae.00001", "rock.00001",
          "metal.00004")


def excerpt(track_id: str) -> Path:
    try:
        return gtzan_file(track_id)
    except FileNotFoundError:  # an id not in gtzan-mini: the first file of that genre
        genre = track_id.split(".")[0]
        return sorted((GTZAN_MINI / genre).iterdir())[0]


def make_library(folder: Path, n: int, sub: bool = True) -> Path:
    """n symbolic links to real excerpts, some in a subfolder."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, tid in enumerate(TRACKS[:n]):
        src = excerpt(tid)
        where = folder / "sub" if (sub and i % 3 == 2) else folder
        where.mkdir(exist_ok=True)
        (where / f"{i:02d}-{src.name}").symlink_to(src)
    return folder


def by_path(rows):
    return {r["path"]: r for r in rows}


def labels_of(row):
    return [k[len("prob_"):] for k in row if k.startswith("prob_")]


def tag_cmd(*args):
    return [sys.executable, "-m", "edge_genre", "tag", *map(str, args)]


def still_running(pids, timeout: float) -> list[int]:
    """Wait for processes that are not our children (so no ``wait``: a killed parent's workers)
    to exit, on the event itself: a pidfd (Linux >= 5.3) becomes readable when its process
    exits. Returns those still running after ``timeout`` s (a bound for a hang, not a wait)."""
    import select

    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            pass  # already gone
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    left = dict(fds)
    deadline = time.monotonic() + timeout
    try:
        while left and (remaining := deadline - time.monotonic()) > 0:
            for fd, _ in poller.poll(remaining * 1e3):
                poller.unregister(fd)
                left.pop(fd)
        return sorted(left.values())
    finally:
        for fd in fds:
            os.close(fd)


def default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background shell may have it ignored


# ----------------------------------------------------------------------------- rows


def test_rows_match_predict_and_the_per_track_function(tmp_path, capsys):
    lib = make_library(tmp_path / "lib", 6)
    out = tmp_path / "rows.csv"
    assert main(["tag", str(lib), "--out", str(out), "--workers", "2", "-q"]) == 0
    rows = read_rows(out)
    assert len(rows) == 6 and len({r["path"] for r in rows}) == 6
    labels = labels_of(rows[0])
    assert list(rows[0]) == tag_rows.columns(labels)

    # predict --json on the same files (the same default model)
    files = sorted(str(p) for p in lib.rglob("*.*"))
    capsys.readouterr()
    assert main(["predict", "--json", *files]) == 0
    predicted = {os.path.abspath(d["file"]): d for d in
                 map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(predicted) == {r["path"] for r in rows}

    from edge_genre.edge.classifier import Classifier

    clf = Classifier(threads=1)
    for r in rows:
        p = predicted[r["path"]]
        assert r["genre"] == p["genre"]
        assert r["model"] == p["model"] and r["model_version"] == clf.card.model_version
        assert r["error"] is None
        st = os.stat(r["path"])
        assert (r["size"], r["mtime"]) == (st.st_size, st.st_mtime)
        assert abs(r["duration"] - p["duration"]) < 1e-3
        for label in labels:
            assert abs(r[f"prob_{label}"] - p["probabilities"][label]) <= 5e-5  # predict rounds to 4
        # the very function predict calls, in this process: the same probabilities
        result, problem = classify_track(clf, r["path"])
        assert problem is None
        assert np.allclose([r[f"prob_{x}"] for x in labels], result.probs, atol=1e-6, rtol=0)
        assert abs(sum(r[f"prob_{x}"] for x in labels) - 1) < 1e-3


def test_broken_files_are_error_rows_and_exit_1(tmp_path, capsys):
    lib = make_library(tmp_path / "lib", 2, sub=False)
    (lib / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (lib / "empty.flac").write_bytes(b"")
    write_wav(lib / "silent.wav", np.zeros(22050 * 6), 22050)
    write_wav(lib / "short.wav", np.random.default_rng(0).uniform(-.3, .3, 22050), 22050)
    (lib / "gone.mp3").symlink_to(tmp_path / "no-such-target.mp3")
    (lib / "notes.txt").write_text("not audio")
    out = tmp_path / "rows.jsonl"
    assert main(["tag", str(lib), "--out", str(out), "--workers", "2"]) == 1
    err = capsys.readouterr().err
    rows = by_path(read_rows(out))
    assert len(rows) == 7  # notes.txt is not a track
    errors = {Path(p).name: r["error"] for p, r in rows.items() if r["error"]}
    assert set(errors) == {"corrupt.wav", "empty.flac", "silent.wav", "short.wav", "gone.mp3"}
    assert "empty" in errors["empty.flac"]
    assert "silent" in errors["silent.wav"]
    assert "too short" in errors["short.wav"]
    assert "broken symbolic link" in errors["gone.mp3"]
    for p, r in rows.items():
        if r["error"]:
            assert r["genre"] is None and r["prob_jazz"] is None
            assert f"{p}: error: {r['error']}" in err
        else:
            assert r["genre"] and r["duration"] > 29
    assert "Traceback" not in err

    # Again: nothing new to do, the same rows, and still exit 1 (the output holds errors).
    before = out.read_bytes()
    assert main(["tag", str(lib), "--out", str(out)]) == 1
    assert out.read_bytes() == before
    assert "0 classified" in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_killed_halfway_then_resumed(tmp_path, sig):
    lib = make_library(tmp_path / "lib", 10)
    out = tmp_path / "rows.csv"
    proc = subprocess.Popen(tag_cmd(lib, "--out", out, "--workers", "1"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)
    # A deadline poll (tag says nothing per row on a pipe, and the rows file is the event):
    # look every 50 ms until the file holds a header and 3 rows, tag ends, or 120 s pass.
    # The interval only sets how often we look; nothing waits for time to pass.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_text().count("\n") >= 4:  # header + 3 rows
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    children = [int(x) for x in subprocess.run(["ps", "--ppid", str(proc.pid), "-o", "pid="],
                                               capture_output=True, text=True).stdout.split()]
    assert children  # the worker (and multiprocessing's helper)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL), err
    if sig == signal.SIGINT:
        assert "interrupted" in err and "Traceback" not in err
    first = read_rows(out)
    assert 3 <= len(first) < 10
    # no worker left behind, even when the parent was killed outright
    assert not still_running(children, timeout=30)

    done = subprocess.run(tag_cmd(lib, "--out", out), cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    rows = read_rows(out)
    assert len(rows) == 10 and len({r["path"] for r in rows}) == 10
    assert rows[:len(first)] == first  # what was written before the kill is kept as it was
    assert f"{10 - len(first)} classified" in done.stderr
    assert f"{len(first)} already in" in done.stderr


def test_torn_rows_dropped_and_formats_agree(tmp_path, capsys):
    lib = make_library(tmp_path / "lib", 3, sub=False)
    first_two = sorted(str(p) for p in lib.iterdir())[:2]
    results = {}
    for fmt in ("csv", "jsonl", "parquet"):
        out = tmp_path / f"rows.{fmt}"
        assert main(["tag", *first_two, "--out", str(out), "-q"]) == 0
        if fmt == "csv":
            with open(out, "ab") as f:  # a crash in the middle of a row
                f.write(b"/x/y.wav,1234,17")
        elif fmt == "jsonl":
            with open(out, "ab") as f:
                f.write(b'{"path": "/x/y.wav", "size": 12')
        else:  # Parquet: a crash leaves its journal: one row in it (the CSV run's row for
            # the third track, a real one), then a torn one
            third = sorted(str(p) for p in lib.iterdir())[2]
            row = by_path(read_rows(tmp_path / "rows.csv"))[os.path.abspath(third)]
            journal = tag_output.journal_path(out)
            journal.write_text(json.dumps(row) + "\n" + '{"path": "/torn', encoding="utf-8")
        capsys.readouterr()
        assert main(["tag", str(lib), "--out", str(out)]) == 0
        err = capsys.readouterr().err
        assert "dropped an incomplete last row" in err
        rows = read_rows(out)
        assert len(rows) == 3 and "/x/y.wav" not in {r["path"] for r in rows}
        if fmt == "parquet":
            assert "0 classified" in err and "3 already" in err  # the journal row was kept
            assert not tag_output.journal_path(out).exists()
        else:
            assert "1 classified" in err
        results[fmt] = by_path(rows)
    assert results["csv"] == results["jsonl"] == results["parquet"]


def test_damaged_row_before_good_rows_is_refused(tmp_path, capsys):
    lib = make_library(tmp_path / "lib", 1, sub=False)
    out = tmp_path / "rows.jsonl"
    assert main(["tag", str(lib), "--out", str(out), "-q"]) == 0
    good = out.read_text()
    out.write_text("garbage\n" + good)
    before = out.read_bytes()
    assert main(["tag", str(lib), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "line 1 is damaged" in err[0]
    assert out.read_bytes() == before  # never truncated

    # Someone else's CSV given as --out: refused, not touched (only a torn last row is dropped)
    notes = tmp_path / "notes.csv"
    notes.write_text("name,phone\nann,123\n")
    assert main(["tag", str(lib), "--out", str(notes)]) == 2
    err = capsys.readouterr().err
    assert "is not a row that edge-genre tag writes" in err
    assert notes.read_text() == "name,phone\nann,123\n"


def test_usage_errors_are_one_line_exit_2(tmp_path, capsys):
    lib = make_library(tmp_path / "lib", 1, sub=False)
    cases = [
        ([str(tmp_path / "nope"), "--out", str(tmp_path / "a.csv")], "no such file or folder"),
        ([str(lib), "--out", str(tmp_path / "a.txt")], "cannot tell the output format"),
        ([str(lib), "--out", str(tmp_path / "no-dir" / "a.csv")], "does not exist"),
        ([str(lib), "--out", str(tmp_path / "a.csv"), "--address", "ray://h:1"],
         "--address needs --engine ray"),
        ([str(lib), "--out", str(tmp_path / "a.csv"), "--model", "no-such-model"],
         "no model file or shipped model"),
    ]
    other = tmp_path / "other.csv"
    other.write_text("path,size,mtime,genre,confidence,prob_a,prob_b,model,model_version,"
                     "seconds,error\n")
    cases.append(([str(lib), "--out", str(other)], "other columns (another model's labels?)"))
    # A file of the shipped model's labels from before 'seconds' became 'duration'.
    from edge_genre.defaults import shipped_models
    from edge_genre.edge.modelfile import read_card
    labels = read_card(shipped_models("default")[0]).labels
    older = tmp_path / "older.csv"
    older.write_text("path,size,mtime,genre,confidence," + ",".join(f"prob_{g}" for g in labels)
                     + ",model,model_version,seconds,error\n")
    cases.append(([str(lib), "--out", str(older)], "older edge-genre, whose column 'seconds'"))
    for argv, message in cases:
        assert main(["tag", *argv]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and err[0].startswith("edge-genre tag: error:")
    with pytest.raises(SystemExit) as exc:
        main(["tag", str(lib)])  # --out is required
    assert exc.value.code == 2


def test_walk_is_streamed_sorted_and_skips_hidden(tmp_path):
    lib = tmp_path / "lib"
    (lib / "b").mkdir(parents=True)
    (lib / ".hidden").mkdir()
    for name in ("b/2.wav", "b/1.FLAC", "a.mp3", "._a.mp3", ".hidden/x.wav", "c.txt",
                 "d.m4a", "e.ogg"):
        (lib / name).write_bytes(b"x")
    (lib / "dangling.wav").symlink_to(lib / "missing.wav")
    os.mkfifo(lib / "pipe.wav")
    report = walk.WalkReport()
    walked = walk.walk([str(lib)], report=report)
    assert iter(walked) is walked  # a generator, not a list
    names = [os.path.relpath(p, lib) for p in walked]
    assert names == ["a.mp3", "b/1.FLAC", "b/2.wav", "dangling.wav", "e.ogg"]
    assert report.undecodable == (0 if ".m4a" in walk.library_suffixes() else 1)
    report = walk.WalkReport()
    assert list(walk.walk([str(tmp_path / "empty-missing")], report=report)) == []
    assert report.problems and "no such file" in report.problems[0][1]


def test_pool_keeps_tracks_in_flight_bounded(tmp_path):
    info = tag_rows.ModelInfo.load(None, "auto", 1)
    lib = make_library(tmp_path / "lib", 5, sub=False)
    consumed = [0]

    def tracks():
        for p in walk.walk([str(lib)]):
            consumed[0] += 1
            yield tag_rows.Track.stat(p)

    pool = tag_pool.LocalPool(info, workers=2)
    got = 0
    try:
        for track, fields in pool.map(tracks()):
            got += 1
            assert consumed[0] - got <= 2  # at most one per worker in flight, never the list
            assert fields["error"] is None
        assert pool.started == 2
    finally:
        pool.close()
    assert got == 5


def test_a_worker_that_dies_gives_one_error_row_and_is_replaced(tmp_path):
    info = tag_rows.ModelInfo.load(None, "auto", 1)
    # A long track keeps the worker busy for seconds (a FIFO did, until FIFOs were refused).
    src = read(excerpt("jazz.00002"))
    y = np.tile(src.samples[:, 0], 20)  # 10 minutes
    long_track = write_wav(tmp_path / "long.wav", y, src.sample_rate)
    good = tag_rows.Track.stat(str(excerpt("jazz.00002")))
    pool = tag_pool.LocalPool(info, workers=1)

    def kill_when_reading():
        # The event: the worker has the track open (model loaded, track received). /proc is
        # polled with a deadline: there is no notification of another process opening a file.
        deadline = time.monotonic() + 60
        target = os.path.realpath(long_track)
        while time.monotonic() < deadline:
            for w in list(pool.workers):
                try:
                    fds = os.listdir(f"/proc/{w.proc.pid}/fd")
                    if any(os.path.realpath(f"/proc/{w.proc.pid}/fd/{fd}") == target
                           for fd in fds):
                        w.proc.kill()
                        return
                except OSError:
                    pass
            time.sleep(0.01)

    threading.Thread(target=kill_when_reading, daemon=True).start()
    try:
        got = list(pool.map([tag_rows.Track.stat(str(long_track)), good]))
    finally:
        pool.close()
    assert [t.path for t, _ in got] == [os.path.abspath(long_track), good.path]
    assert "worker process stopped" in got[0][1]["error"] and "SIGKILL" in got[0][1]["error"]
    assert got[1][1]["error"] is None and got[1][1]["genre"]
    assert pool.started == 2


def test_progress_bar_only_on_a_terminal():
    import io

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    bar = tag_progress.Progress(tty, enabled=tag_progress.isatty(tty))
    bar.total = 10
    bar.start -= 2.0
    bar.show(4, 1, 3, force=True)
    text = tty.getvalue()
    assert "4/10" in text and "tracks/s" in text and "ETA 0:03" in text and "1 errors" in text
    plain = io.StringIO()
    bar = tag_progress.Progress(plain, enabled=tag_progress.isatty(plain))
    bar.show(4, 0, 0, force=True)
    bar.finish(4, 0, 0)
    assert plain.getvalue() == ""


def test_runtime_stays_light(tmp_path):
    """Tagging to CSV imports no Ray, mutagen, pyarrow, TensorFlow or librosa in the CLI."""
    src = excerpt("jazz.00002")
    code = f"""
import sys
from edge_genre.cli import main
import edge_genre.edge.tag_run, edge_genre.edge.tag_files, edge_genre.edge.tag_ray
import edge_genre.edge.tag_cli
rc = main(["tag", {str(src)!r}, "--out", {str(tmp_path / "rows.csv")!r}, "-q", "--workers", "1"])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in
               ("tensorflow", "keras", "librosa", "tf_keras", "ray", "mutagen", "pyarrow"))
print("HEAVY", heavy)
sys.exit(rc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout
