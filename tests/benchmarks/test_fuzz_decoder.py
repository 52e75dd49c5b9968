"""The decoder fuzz benchmark, short: 100 seeded cases, each in a forked child under limits."""
from __future__ import annotations

import json

from edge_genre.benchmarks import fuzz_decoder

from tests.conftest import GTZAN_MINI


def test_cases_are_seeded_and_start_from_real_wav_and_au():
    sources = fuzz_decoder.load_sources(GTZAN_MINI)
    assert {name.rsplit(".", 1)[1] for name, _ in sources} == {"wav", "au"}
    a = [fuzz_decoder.make_case(sources, 0, i) for i in range(50)]
    b = [fuzz_decoder.make_case(sources, 0, i) for i in range(50)]
    assert a == b
    assert a != [fuzz_decoder.make_case(sources, 1, i) for i in range(50)]
    assert {ext for name, _, _ in a for ext in [name.rsplit(".", 1)[1]]} == {"wav", "au"}
    assert all(1 <= len(ops) <= 3 for _, _, ops in a)


def test_short_fuzz_pass_has_no_tracebacks_or_hangs(tmp_path, capsys):
    out = tmp_path / "fuzz"
    code = fuzz_decoder.main(["--cases", "100", "--seed", "0", "--data", str(GTZAN_MINI),
                              "--timeout", "60", "--out", str(out)])
    r = json.loads((out / "fuzz_decoder.json").read_text())
    md = (out / "fuzz_decoder.md").read_text()
    c = r["counts"]
    assert r["finished"] == r["cases"] == 100 and not r["worker_errors"]
    assert c["traceback"] == 0 and c["hang"] == 0, r["failures"][:3]
    assert c["crash"] == 0 and c["disagreement"] == 0 and c["invariant"] == 0, r["failures"][:3]
    assert c["memory_limit"] == 0, r["failures"][:3]
    assert c["refused"] > 10 and c["decoded"] > 10
    assert sum(c.values()) == 100
    assert 0 < r["peak_rss_mb"] < r["memory_limit_mb"]
    assert code == 0
    assert "| other exceptions (tracebacks) | 0 |" in md and "| hangs (past 60 s) | 0 |" in md
    assert md in capsys.readouterr().out


def test_a_case_past_the_memory_limit_is_counted_not_fatal(tmp_path):
    """With a limit too small for any real work, cases end as 'memory_limit' and the run goes
    on."""
    r = fuzz_decoder.run(6, seed=0, data=GTZAN_MINI, workers=1, memory_mb=60)
    assert r["finished"] == 6
    assert r["counts"]["memory_limit"] > 0
    assert r["counts"]["hang"] == 0 and r["counts"]["crash"] == 0
