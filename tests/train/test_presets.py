"""Presets: the paper net's exact size, the scratch net within its Pi budget and int8-friendly,
and the deprecated name ``edge`` still read as ``scratch`` for one release."""
from __future__ import annotations

import os
from dataclasses import replace

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from edge_genre.errors import EdgeGenreError  # noqa: E402
from edge_genre.train import macs  # noqa: E402
from edge_genre.train.presets import (DEPRECATED_NAMES, PI_MAX_MACS,  # noqa: E402
                                      PI_MAX_PARAMS, PRESETS, TRANSFER_PRESETS, Preset,
                                      canonical_name, get_preset)

#: Layers that convert to int8 TFLite/ONNX without float fallbacks (BN folds into the conv).
INT8_FRIENDLY = {"Conv2D", "DepthwiseConv2D", "SeparableConv2D", "BatchNormalization", "ReLU",
                 "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "Dense", "Dropout",
                 "Flatten"}


def test_paper_preset_layer_by_layer():
    p = get_preset("paper")
    assert p.input_shape == (256, 256, 1)
    fe = p.frontend
    assert (fe.sample_rate, fe.n_fft, fe.hop_length, fe.n_mels, fe.power, fe.ref, fe.top_db) == (
        22050, 2048, 512, 128, 2.0, "max", 80.0)
    assert (p.window.seconds, p.window.hop_seconds) == (4.0, 2.0)
    assert (p.train.learning_rate, p.train.batch_size, p.train.epochs, p.train.optimizer) == (
        1e-4, 32, 30, "adam")
    model = p.build(10)
    rows = macs.layer_costs(model)
    convs = [r for r in rows if r.kind == "Conv2D"]
    assert [r.output_shape[-1] for r in convs] == [32, 32, 64, 64, 128, 128, 256, 256, 512, 512]
    assert [r.kind for r in rows if r.kind == "Dropout"] == ["Dropout"] * 3
    dense = [r for r in rows if r.kind == "Dense"]
    assert [r.output_shape for r in dense] == [(1200,), (10,)]
    n_macs, n_params = macs.count(model)
    # 10 'same' 3x3 convs on 256x256 .. 16x16, then Flatten(8*8*512) -> Dense 1200 -> Dense 10.
    assert n_params == 44_046_458
    assert n_macs == 4_286_066_400


def test_scratch_preset_fits_a_pi():
    p = get_preset("scratch")
    assert p.input_shape == (64, 199, 1)
    assert p.frontend.resize is None
    model = p.build(10)
    n_macs, n_params = macs.count(model)
    assert n_macs <= PI_MAX_MACS and n_params <= PI_MAX_PARAMS
    kinds = {r.kind for r in macs.layer_costs(model)}
    assert kinds <= INT8_FRIENDLY, kinds - INT8_FRIENDLY
    assert model.output_shape == (None, 10)


def test_unknown_preset_is_a_user_error():
    assert set(PRESETS) == {"paper", "scratch", "transfer", "student", "music", "room"}
    with pytest.raises(EdgeGenreError, match="unknown preset"):
        get_preset("resnet")


def test_transfer_presets_come_from_their_module():
    """This install has ``train.transfer``: each of its presets is a Preset with its own fit."""
    for name in TRANSFER_PRESETS:
        p = get_preset(name)
        assert isinstance(p, Preset) and p.name == name and p.fit is not None


def test_transfer_presets_without_their_module_are_a_clear_error(monkeypatch):
    """An install without ``train.transfer``: asking for one of its presets is one user error."""
    import sys

    monkeypatch.setitem(sys.modules, "edge_genre.train.transfer", None)  # as if left out
    with pytest.raises(EdgeGenreError, match="preset transfer is not available in this install"):
        get_preset("transfer")
    assert get_preset("scratch").name == "scratch"  # the built-in presets are still there


def test_student_is_within_the_pi_budget():
    """The student keeps YAMNet's first 6 layers on frames every 20 ms: under 100 M MACs and 500 k
    parameters, a fifth of the whole body's MACs."""
    from tests.conftest import YAMNET_TFLITE

    if not YAMNET_TFLITE.is_file():
        pytest.fail(f"YAMNet TFLite file not found at {YAMNET_TFLITE}")
    p = get_preset("student")
    assert p.name == "student" and p.input_shape == (64, 199, 1)  # 4 s every 20 ms
    assert p.frontend == replace(get_preset("transfer").frontend, hop_length=320)
    model = p.build(10)
    n_macs, n_params = macs.count(model)
    assert n_macs <= PI_MAX_MACS and n_params <= PI_MAX_PARAMS
    assert n_macs < macs.count(get_preset("transfer").build(10))[0] / 5
    assert model.output_shape == (None, 10)


def test_the_old_name_edge_is_the_scratch_preset_for_one_release(capsys):
    """``edge`` (the preset's name before ``scratch``) resolves in one place, with one note on
    stderr and nothing on stdout; it is not offered as a choice."""
    assert DEPRECATED_NAMES == {"edge": "scratch"} and "edge" not in PRESETS
    assert get_preset("edge").name == "scratch"
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1
    assert "'edge' is now called 'scratch'" in out.err
    assert canonical_name("edge", note=False) == "scratch" and canonical_name("paper") == "paper"
    assert capsys.readouterr().err == ""


def test_the_cli_reads_the_old_name_and_shows_only_the_new_one(capsys):
    from edge_genre.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["train", "--data", "D", "--out", "O"])
    assert args.preset == "scratch" and capsys.readouterr().err == ""  # the default, no note
    args = parser.parse_args(["train", "--preset", "edge", "--data", "D", "--out", "O"])
    out = capsys.readouterr()
    assert args.preset == "scratch" and out.out == "" and "is now called 'scratch'" in out.err
    args = parser.parse_args(["evaluate", "--data", "D", "--cv", "2", "--preset", "transfer,edge"])
    assert args.preset == ["transfer", "scratch"]
    args = parser.parse_args(["summary", "--preset", "edge"])
    assert args.preset == "scratch"
    capsys.readouterr()
    for command in ("train", "summary"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        text = capsys.readouterr().out
        assert "{paper,scratch,transfer,student,music,room}" in text and "edge," not in text
