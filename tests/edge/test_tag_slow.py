"""`edge-genre tag` at size: all 161 GTZAN excerpts against `predict`, and `--engine ray` on a
local Ray instance against the in-process run (slow: minutes on two cores)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edge_genre.cli import main
from edge_genre.edge.tag_output import read_rows

from tests.conftest import REPO
from tests.edge.test_tag import make_library

pytestmark = pytest.mark.slow


def test_whole_gtzan_mini_gives_161_rows_with_predicts_genres(gtzan_root, tmp_path, capsys):
    out = tmp_path / "tags.csv"
    done = subprocess.run([sys.executable, "-m", "edge_genre", "tag", str(gtzan_root),
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr
    rows = read_rows(out)
    assert len(rows) == 161 and len({r["path"] for r in rows}) == 161
    assert not [r for r in rows if r["error"]]

    assert main(["predict", "--json", str(gtzan_root)]) == 0
    predicted = {os.path.abspath(d["file"]): d["genre"]
                 for d in map(json.loads, capsys.readouterr().out.splitlines())}
    assert {r["path"]: r["genre"] for r in rows} == predicted


def test_ray_engine_gives_the_same_rows(tmp_path, capsys):
    pytest.importorskip("ray", reason="--engine ray needs ray[data] (the 'scale' extra)")
    pytest.importorskip("ray.data", reason="--engine ray needs ray[data] (the 'scale' extra)")
    lib = make_library(tmp_path / "lib", 12)
    (lib / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    local, ray = tmp_path / "local.csv", tmp_path / "ray.jsonl"
    assert main(["tag", str(lib), "--out", str(local), "--workers", "2", "-q"]) == 1
    # a first Ray run over half the library, then a second one that resumes it
    half = sorted(str(p) for p in lib.iterdir() if p.is_file())[:6]
    assert main(["tag", *half, "--out", str(ray), "--engine", "ray", "--workers", "2"]) == 0
    assert main(["tag", str(lib), "--out", str(ray), "--engine", "ray", "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert "7 classified (1 errors), 6 already in" in err
    a = {r["path"]: r for r in read_rows(local)}
    b = {r["path"]: r for r in read_rows(ray)}
    assert len(a) == len(b) == 13 and set(a) == set(b)
    for path, x in a.items():
        y = b[path]
        assert (x["genre"], x["error"], x["size"], x["mtime"], x["model"],
                x["model_version"]) == \
            (y["genre"], y["error"], y["size"], y["mtime"], y["model"], y["model_version"])
        for k in x:
            if k.startswith("prob_") or k in ("confidence", "duration"):
                assert (x[k] is None and y[k] is None) or abs(x[k] - y[k]) <= 1e-6, (path, k)


def test_ray_engine_keeps_native_lines_off_the_terminal(tmp_path):
    """Ray's C++ core printed its own log line (``core_worker.cc:...``) into `tag`'s stderr, and
    libmpg123 its frame errors; with -q nothing but our lines may reach it (issue 24.4)."""
    pytest.importorskip("ray.data", reason="--engine ray needs ray[data] (the 'scale' extra)")
    from tests.conftest import gtzan_file
    from tests.edge.test_hostile_audio import damaged_mp3

    mp3 = damaged_mp3(tmp_path / "damaged.mp3")
    out = tmp_path / "ray.csv"
    run = subprocess.run([sys.executable, "-m", "edge_genre", "tag", str(gtzan_file("jazz.00002")),
                          str(mp3), "--out", str(out), "--engine", "ray", "--workers", "1", "-q"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    assert len(read_rows(out)) == 2
