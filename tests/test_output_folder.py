"""Every command that writes an ``--out`` folder checks it before its work: one error line and
exit 2, never a traceback after the work (``edge.cli_args.output_folder``)."""
from __future__ import annotations

import pytest

from edge_genre.cli import main
from edge_genre.edge.cli_args import output_folder
from edge_genre.errors import EdgeGenreError


def test_a_new_nested_folder_is_made_and_left_clean(tmp_path):
    folder = output_folder(tmp_path / "a" / "b")
    assert folder.is_dir() and not any(folder.iterdir())  # the write probe leaves nothing
    assert output_folder(folder) == folder  # an existing folder is fine


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
