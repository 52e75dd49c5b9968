"""The run directory: one writer, one reader, one record shape, one-line errors."""
from __future__ import annotations

import json

import pytest

from edge_genre.cli import main
from edge_genre.edge.config import FrontendConfig, ModelCard, WindowConfig
from edge_genre.errors import DataError, ModelError
from edge_genre.train import run_dir as R
from tests.conftest import REPO

CARD = ModelCard(labels=("a", "b"), frontend=FrontendConfig(sample_rate=16000, n_mels=40),
                 window=WindowConfig(seconds=4.0, hop_seconds=2.0), preset="tiny")


class StubModel:
    """Stands in for a Keras model: ``write_run`` only asks it to save itself."""

    def save(self, path):
        path.write_bytes(b"not really keras")


def record(**changes) -> R.RunRecord:
    fields = dict(data={"root": "/data/genres", "fingerprint": "f" * 64},
                  split=R.RunSplit(name="artist", description="by artist",
                                   train=("a.1", "b.1"), valid=("a.2",), test=("b.2",)),
                  history=[{"epoch": 1, "val_accuracy": 0.5}], best_epoch=1, epochs_run=1)
    return R.RunRecord.new("tiny", **{**fields, **changes})


def test_written_run_reads_back(tmp_path):
    rec = record()
    R.write_run(tmp_path / "run", StubModel(), CARD, rec)
    assert R.is_run(tmp_path / "run")
    assert {p.name for p in (tmp_path / "run").iterdir()} == {
        R.MODEL_FILE, R.CARD_FILE, R.RECORD_FILE}
    run = R.read_run(tmp_path / "run")
    assert run.card == CARD and run.record == rec
    assert run.split_ids("train") == ["a.1", "b.1"] and run.split_ids("test") == ["b.2"]
    on_disk = json.loads((tmp_path / "run" / R.RECORD_FILE).read_text())
    assert list(on_disk)[:4] == ["preset", "description", "package_version", "created"]
    assert on_disk["split"] == {"name": "artist", "description": "by artist",
                                "train": ["a.1", "b.1"], "valid": ["a.2"], "test": ["b.2"]}


def test_a_minimal_record_reads_and_unknown_keys_are_kept():
    """Records made by hand (tests, older writers) hold only some sections; keys this version
    does not write survive a round trip in ``extra``."""
    rec = R.RunRecord.from_dict({"split": {"test": ["x"]}, "head": {"c": 0.1}})
    assert rec.split.test == ("x",) and rec.split.train == () and rec.preset == ""
    assert rec.extra == {"head": {"c": 0.1}}
    assert rec.to_dict()["head"] == {"c": 0.1}
    assert R.RunRecord.from_dict(rec.to_dict()) == rec


@pytest.mark.parametrize("data, message", [
    ([1, 2], "is not a JSON object"),
    ({"split": {"test": "b.2"}}, "split.test is not a list"),
    ({"split": ["b.2"]}, "split is not a JSON object"),
    ({"data": "/data"}, "data is not a JSON object"),
])
def test_a_malformed_record_is_one_line(data, message):
    with pytest.raises(ModelError, match=message) as exc:
        R.RunRecord.from_dict(data, "run.json")
    assert "\n" not in str(exc.value)


def test_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ModelError, match=f"is not a model directory: no {R.MODEL_FILE}"):
        R.read_run(tmp_path)
    (tmp_path / R.MODEL_FILE).write_bytes(b"x")
    with pytest.raises(ModelError, match=f"is not a model directory: no {R.CARD_FILE}"):
        R.read_run(tmp_path)
    with pytest.raises(ModelError, match="no such folder"):
        R.read_run(tmp_path / "nope")
    (tmp_path / R.CARD_FILE).write_text(CARD.to_json())
    (tmp_path / R.RECORD_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="is not valid JSON"):
        R.read_run(tmp_path)
    assert not R.is_run(tmp_path / "nope")


@pytest.mark.parametrize("command", [["export", "{run}", "--out", "{run}/o"],
                                     ["evaluate", "{run}", "--data", "{run}"]])
def test_the_cli_says_so_in_one_line(tmp_path, capsys, command):
    argv = [a.format(run=tmp_path) for a in command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"is not a model directory: no {R.MODEL_FILE}" in err[0]


def test_a_run_without_record_reads_with_an_empty_one(tmp_path):
    (tmp_path / R.MODEL_FILE).write_bytes(b"x")
    (tmp_path / R.CARD_FILE).write_text(CARD.to_json())
    run = R.read_run(tmp_path)
    assert run.record == R.RunRecord() and run.split_ids("test", required=False) == []
    with pytest.raises(DataError, match="lists no train tracks"):
        run.split_ids("train")
    with pytest.raises(DataError, match="records no data folder; pass --data DIR"):
        run.data_dir()


def test_data_dir_absolute_beside_the_run_or_from_the_working_directory(tmp_path, monkeypatch):
    data = tmp_path / "data" / "genres"
    data.mkdir(parents=True)
    run_path = tmp_path / "runs" / "r"
    for root in (str(data), "../../data/genres"):  # absolute; relative to the run directory
        R.write_run(run_path, StubModel(), CARD, record(data={"root": root}))
        assert R.read_run(run_path).data_dir() == data
    # Relative to where training ran (the runs written before the root was recorded absolute).
    R.write_run(run_path, StubModel(), CARD, record(data={"root": "data/genres"}))
    monkeypatch.chdir(tmp_path)
    assert R.read_run(run_path).data_dir() == data
    assert R.read_run(run_path).data_dir(tmp_path / "data") == tmp_path / "data"
    monkeypatch.chdir(run_path)
    with pytest.raises(DataError, match="does not exist .pass --data DIR."):
        R.read_run(run_path).data_dir()


@pytest.mark.parametrize("name", ["default", "music", "student"])
def test_the_runs_of_the_project_still_read(name, monkeypatch):
    """The runs docs/models.md exports (not in git: made by ``edge-genre train``)."""
    path = REPO / "runs" / name
    if not path.is_dir():
        pytest.skip(f"{path} has not been trained here")
    monkeypatch.chdir(REPO)  # their data root is relative to where they were trained
    run = R.read_run(path)
    want = "transfer" if name == "default" else name  # runs/default is the transfer preset
    assert run.card.preset == run.record.preset == want
    assert run.split_ids("train") and run.data_dir().is_dir()
