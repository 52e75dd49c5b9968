"""Files that are not regular files, named on the command line (issue 24.2).

``predict /dev/zero`` once read until it was killed at 24 GB, a link to ``/dev/urandom`` did the
same, and a FIFO with no writer hung for ever (``tag --workers 1`` then never reached the next
file). A device, a FIFO or a socket is now refused with one line, before it is opened, and the
batch goes on. Real processes, real devices, a real excerpt; no mocks.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from edge_genre.edge.audio import open_stream, read
from edge_genre.errors import AudioError

from tests.conftest import gtzan_file

#: issue 24's bounds for the whole batch.
SECONDS = 10.0
PEAK_MB = 500


def run_measured(cmd, timeout: float) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, wall seconds) of a child process that must end in time."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"{cmd} did not finish within {timeout:g} s:\n{err[-2000:]}")
    return p.returncode, out, err, time.monotonic() - t0


@pytest.fixture
def specials(tmp_path):
    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)  # nobody ever writes to it
    link = tmp_path / "noise.au"
    link.symlink_to("/dev/urandom")
    return {"/dev/zero": "character device", str(fifo): "pipe (FIFO)",
            str(link): "character device"}


def test_open_refuses_devices_and_fifos_at_once(specials):
    for path, kind in specials.items():
        for opener in (open_stream, read):
            t0 = time.monotonic()
            with pytest.raises(AudioError, match=f"is a {kind.replace('(', '.').replace(')', '.')}"):
                opener(path)
            assert time.monotonic() - t0 < 1.0


@pytest.mark.skipif(not os.path.exists("/usr/bin/time"), reason="needs GNU time for peak RSS")
def test_predict_on_devices_a_fifo_and_a_good_file(specials, tmp_path):
    good = gtzan_file("jazz.00002")
    peak = tmp_path / "peak_kb"
    cmd = ["/usr/bin/time", "-o", str(peak), "-f", "%M", sys.executable, "-m", "edge_genre",
           "predict", *specials, str(good)]
    code, out, err, wall = run_measured(cmd, timeout=60)
    peak_mb = int(peak.read_text().split()[-1]) / 1024
    lines = err.splitlines()
    print(f"predict: {wall:.2f} s, peak {peak_mb:.0f} MB, exit {code}")
    assert code == 1
    assert f"{good}: jazz" in out
    assert len(lines) == len(specials), err  # one line per bad input, no traceback
    for (path, kind), line in zip(specials.items(), lines):
        assert line.startswith(f"{path}: error: is a {kind}, not a regular file"), line
    assert wall < SECONDS
    assert peak_mb < PEAK_MB


def test_tag_one_worker_goes_past_a_fifo(specials, tmp_path):
    good = gtzan_file("jazz.00002")
    out = tmp_path / "tags.csv"
    cmd = [sys.executable, "-m", "edge_genre", "tag", "--workers", "1", "-q", "--out", str(out),
           *specials, str(good)]
    code, _, err, wall = run_measured(cmd, timeout=60)
    print(f"tag: {wall:.2f} s, exit {code}")
    assert code == 1, err
    rows = out.read_text().splitlines()
    assert len(rows) == 1 + len(specials) + 1
    assert sum("not a regular file" in row for row in rows) == len(specials)
    assert any(row.startswith(f"{good},") and ",jazz," in row for row in rows), rows


def test_stdin_is_read_when_it_is_a_file_and_refused_when_it_is_a_pipe():
    good = gtzan_file("jazz.00002")
    cmd = [sys.executable, "-m", "edge_genre", "predict", "/dev/stdin"]
    with open(good, "rb") as f:  # `predict /dev/stdin < x.wav`: stdin is the file itself
        as_file = subprocess.run(cmd, stdin=f, capture_output=True, text=True, timeout=60)
    assert as_file.returncode == 0 and as_file.stdout.startswith("/dev/stdin: jazz"), as_file.stderr
    piped = subprocess.run(cmd, input=good.read_bytes()[:1 << 20], capture_output=True,
                           timeout=60)  # `cat x.wav | predict /dev/stdin`: read whole before
    assert piped.returncode == 1
    assert piped.stderr.decode().strip().splitlines() == [
        "/dev/stdin: error: is a pipe (FIFO), not a regular file: save the audio to a file and "
        "give that"]
