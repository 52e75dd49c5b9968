"""Loose flags of issue 24.3, each refused with one usage line (exit 2) or said once; and the
start-up pace check of ``listen`` (issue 22), with the shipped models for real."""
from __future__ import annotations

import logging

import pytest

from edge_genre.cli import build_parser, main
from edge_genre.edge import pace
from edge_genre.edge.classifier import Classifier
from edge_genre.edge.cli import hop_note
from edge_genre.edge.config import ClassifierConfig, PaceConfig
from edge_genre.edge.tag_output import UsageError, output_format
from edge_genre.edge.tag_cli import local_workers
from edge_genre.errors import EdgeGenreError


@pytest.mark.parametrize("argv", [
    ["serve", "--port", "70000"],          # the OS wrapped it to 4464
    ["serve", "--port", "-1"],
    ["listen", "--silence-dbfs", "nan"],   # every window became "no music"
    ["listen", "--silence-dbfs", "inf"],
    ["predict", "f.wav", "--threads", "0"],
    ["predict", "f.wav", "--threads", "-2"],  # blamed the model file
    ["tag", "lib", "--out", "t.csv", "--threads", "0"],
])
def test_bad_flag_values_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edge-genre ") and "error: argument" in err[-1]


def test_good_flag_values_still_parse():
    args = build_parser().parse_args(["serve", "--port", "65535"])
    assert args.port == 65535
    assert build_parser().parse_args(["listen", "--silence-dbfs", "-45.5"]).silence_dbfs == -45.5


def test_classifier_config_refuses_a_nan_gate():
    with pytest.raises(ValueError, match="finite"):
        ClassifierConfig(silence_dbfs=float("nan"))


def test_tag_format_must_match_the_output_name(tmp_path, capsys):
    with pytest.raises(UsageError, match="does not match"):
        output_format("x.csv", "parquet")
    assert output_format("x.out", "parquet") == "parquet"  # an unknown suffix: --format decides
    assert output_format("x.jsonl", "jsonl") == "jsonl"
    log = logging.getLogger("edge_genre")
    saved = log.handlers[:], log.propagate, log.level
    try:  # main() points the logger at this test's captured stderr: put it back after
        assert main(["tag", str(tmp_path), "--out", str(tmp_path / "x.csv"),
                     "--format", "jsonl"]) == 2
    finally:
        log.handlers[:], log.propagate, log.level = saved
    assert "does not match" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


def test_tag_workers_are_at_most_the_usable_cores(caplog):
    with caplog.at_level(logging.WARNING, logger="edge_genre"):
        assert local_workers(10000, 2) == 2
    assert "--workers 10000 is more than the 2 usable core(s) here: using 2" in caplog.text
    assert local_workers(2, 2) == 2 and local_workers(None, 2) is None


@pytest.fixture(scope="module")
def student():
    return Classifier("student")


def test_a_hop_shorter_than_a_frame_is_refused_and_a_rounded_one_said(student, caplog):
    frame = student.frontend.hop_length / student.sample_rate
    with pytest.raises(EdgeGenreError, match="shorter than the model's frame hop"):
        hop_note(0.0001, Classifier("student", hop_seconds=0.0001))
    rounded = 1.5 * frame + 0.001
    with caplog.at_level(logging.WARNING, logger="edge_genre"):
        hop_note(rounded, Classifier("student", hop_seconds=rounded))
    assert f"--hop {rounded:g} s is rounded to" in caplog.text
    caplog.clear()
    hop_note(2.0, student)
    assert caplog.text == ""


def test_pace_problem_names_the_heaviest_lighter_model_that_fits():
    shipped = {"default": 287_000_000, "music": 1_877_000_000, "student": 50_000_000}
    # music at 400 ms a decision, hop 0.5 s, budget half: default scales to 61 ms, fits.
    line = pace.pace_problem("music.tflite", 0.4, 0.5, 1_877_000_000, shipped, budget=0.5)
    assert "music.tflite takes 400 ms a decision" in line and "--model default" in line
    # at a 0.05 s hop only the student would fit
    line = pace.pace_problem("music.tflite", 0.4, 0.05, 1_877_000_000, shipped, budget=0.5)
    assert "--model student" in line and "longer --hop" not in line
    # the lightest model, too slow: a longer hop is all there is to say
    line = pace.pace_problem("student.tflite", 0.4, 0.05, 50_000_000, shipped, budget=0.5)
    assert line.endswith("give a longer --hop")
    assert pace.pace_problem("music.tflite", 0.2, 0.5, 1_877_000_000, shipped) is None


def test_listen_pace_check_with_the_shipped_models(student):
    """Real models, timed here: the budget is set between what the student and the music model
    measure (38x the MACs), so the check must flag music, naming a lighter model, and pass the
    student, whatever this machine's speed and load (no tiny hop, no forced threshold)."""
    music = Classifier("music")
    config = PaceConfig(windows=3)
    s_student = pace.seconds_per_decision(student, config)
    s_music = pace.seconds_per_decision(music, config)
    print(f"one decision: student {s_student * 1e3:.1f} ms, music {s_music * 1e3:.1f} ms")
    assert s_music > 3 * s_student
    hop = music.hop_seconds
    budget = (s_student * s_music) ** 0.5 / hop  # between the two, a factor of >1.7 from each
    shipped = pace.shipped_macs()
    assert set(shipped) >= {"default", "music", "student"}
    line = pace.pace_problem(music.runner.path.name, s_music, hop, pace.model_macs(music.card),
                             shipped, budget)
    assert line is not None and "lighter --model" in line
    named = line.split("lighter --model ")[1].split()[0]
    assert shipped[named] < shipped["music"]
    assert pace.pace_problem(student.runner.path.name, s_student, hop,
                             pace.model_macs(student.card), shipped, budget) is None
    # and at the default budget the shipped default keeps up with its own 2 s hop here
    assert pace.check(Classifier(), Classifier().hop_seconds) is None
