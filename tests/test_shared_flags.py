"""One name per flag across the packages: the model flags of every command that runs a model, and the
feature cache (``--cache-dir``; ``--cache``, train's and evaluate's old name, still read)."""
from __future__ import annotations

import pytest

from edge_genre.cli import build_parser

COMMANDS_WITH_CACHE = {
    "train": ["train", "--data", "D", "--out", "O"],
    "evaluate": ["evaluate", "--data", "D"],
    "export": ["export", "RUN", "--out", "O"],
    "bench": ["bench"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS_WITH_CACHE))
@pytest.mark.parametrize("flag", ["--cache-dir", "--cache"])
def test_cache_flag_has_one_name(name, flag):
    args = build_parser().parse_args(COMMANDS_WITH_CACHE[name] + [flag, "/tmp/x"])
    assert args.cache_dir == "/tmp/x"


@pytest.mark.parametrize("argv", [["predict", "f.wav"], ["listen"], ["tag", "lib", "--out", "t.csv"],
                                  ["serve"]])
def test_model_flags_are_the_same_everywhere(argv):
    args = build_parser().parse_args(argv + ["--model", "music", "--backend", "onnxruntime",
                                             "--threads", "1"])
    assert (args.model, args.backend, args.threads) == ("music", "onnxruntime", 1)
