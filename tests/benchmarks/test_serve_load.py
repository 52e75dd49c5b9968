"""The serve load benchmark, short: 2 clients for ~5 s against a real server on loopback."""
from __future__ import annotations

import json

import pytest

from tests.conftest import GTZAN_MINI

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


@pytest.mark.slow
def test_short_load_run_reports_throughput_latency_and_memory(tmp_path, capsys):
    from edge_genre.benchmarks import serve_load

    out = tmp_path / "load"
    code = serve_load.main(["--clients", "2", "--seconds", "5", "--every", "1",
                            "--settle", "1", "--data", str(GTZAN_MINI), "--out", str(out)])
    r = json.loads((out / "serve_load.json").read_text())
    assert code == 0
    assert r["errors"] == 0 and r["error_kinds"] == {}
    assert r["ok"] == r["requests"] >= 2 and r["clients"] == 2
    assert r["requests_per_s"] > 0
    lat = r["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    rss = r["server_rss_mb"]
    assert 0 < rss["start"] <= rss["max"] and rss["end"] > 0
    assert len(rss["samples"]) >= 3
    assert r["server_alive_at_end"]
    assert set(r["labels"]) <= {"blues", "classical", "country", "disco", "hiphop", "jazz",
                                "metal", "pop", "reggae", "rock"}
    md = (out / "serve_load.md").read_text()
    assert "requests/s" in md and "| 0 |" in md
    assert md in capsys.readouterr().out


def test_loopback_only_and_bounded():
    from edge_genre.benchmarks import serve_load

    assert serve_load.HOST == "127.0.0.1"
    budget = serve_load.Budget(3)
    assert [budget.take() for _ in range(5)] == [True, True, True, False, False]
    assert serve_load._percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert serve_load._percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert serve_load._percentile([], 50) is None
