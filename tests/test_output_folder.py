"""Every command that writes an ``--out`` folder checks it before its work: one error line and
exit 2, never a traceback after the work (``edge.cli_args.output_folder``)."""
from __future__ import annotations

import pytest

from edge_genre.cli import main
from edge_genre.edge.cli_args import output_folder
from edge_genre.errors import EdgeGenreError


def test_a_folder_that_can_be_made_passes_and_nothing_is_made(tmp_path):
    assert output_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not any(tmp_path.iterdir())  # the command makes it when it writes
    assert output_folder(tmp_path) == tmp_path  # an existing folder is fine


def test_a_folder_that_cannot_be_written_is_named(tmp_path):
    import os

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user writes anywhere (root): the blocked-by-a-file case covers it")
        with pytest.raises(EdgeGenreError, match="locked is not writable"):
            output_folder(locked / "out")
    finally:
        locked.chmod(0o700)


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(EdgeGenreError, match=r"cannot write --out .*/f/out: .*/f is a file"):
        output_folder(tmp_path / "f" / "out")
    assert (tmp_path / "f").read_text() == "x"


@pytest.mark.parametrize("argv", [
    ["train", "--preset", "student", "--data", "DATA", "--out", "BLOCKED/run"],
    ["export", "RUN", "--out", "BLOCKED/x"],
    ["evaluate", "--cv", "2", "--preset", "baseline", "--data", "DATA", "--out",
     "BLOCKED/cv.json"],
    ["bench", "--models", "M.tflite", "--no-paper", "--out", "BLOCKED/b"],
])
def test_commands_refuse_an_out_they_cannot_write_before_any_work(argv, tmp_path, capsys):
    """Nothing else in these command lines exists: the --out check comes first."""
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder")
    argv = [a.replace("BLOCKED", str(blocked)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot write --out {blocked}/" in err[0]
    assert "is a file, not a folder" in err[0] and "Traceback" not in err[0]


def test_a_command_refused_for_another_reason_leaves_no_out_folder(tmp_path, capsys):
    assert main(["export", str(tmp_path / "no-run"), "--out", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "o").exists()
