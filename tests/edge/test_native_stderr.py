"""``native_stderr.divert``: native lines go to DEBUG, but a crash still reaches the terminal."""
from __future__ import annotations

import subprocess
import sys

CODE = """
import faulthandler, os, sys
from edge_genre.edge.native_stderr import divert
with divert():
    os.write(2, b"[src/libmpg123/layer3.c:1] error: noise of a damaged frame\\n")
    if sys.argv[1] == "crash":
        faulthandler._sigsegv()
print("done", faulthandler.is_enabled())
"""


def _run(what: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CODE, what], capture_output=True, text=True,
                          timeout=60)


def test_native_noise_stays_off_the_terminal():
    r = _run("quiet")
    assert r.returncode == 0 and "libmpg123" not in r.stderr
    assert r.stdout.strip() == "done False"  # the fault handler is put back as it was


def test_a_crash_inside_still_prints_where_it_happened():
    r = _run("crash")
    assert r.returncode != 0
    assert "Fatal Python error: Segmentation fault" in r.stderr
    assert "libmpg123" not in r.stderr
