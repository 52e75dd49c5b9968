"""The library throughput benchmark runs end to end on a tiny library (the figures of record
come from `python -m edge_genre.benchmarks.library_throughput --tracks 300`)."""
from __future__ import annotations

import json

from edge_genre.benchmarks import library_throughput as bench


def test_tiny_library_throughput_record(tmp_path, capsys):
    out = tmp_path / "record.json"
    assert bench.main(["--tracks", "4", "--workers", "2", "--no-ray", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["schema"] == bench.SCHEMA and record["tracks"] == 4
    assert [(r["engine"], r["workers"]) for r in record["runs"]] == [("local", 1), ("local", 2)]
    for r in record["runs"]:
        assert r["tracks"] == 4 and r["errors"] == 0 and r["tracks_per_s"] > 0
        assert r["windows_per_track"] == 14  # 30 s excerpts
    e = record["estimates"]
    assert e["pi4_one_core_100k_hours_model_only"] == round(1e5 * 14 * 0.158 / 3600, 1)
    assert e["pi4_one_core_100k_hours"] >= e["pi4_one_core_100k_hours_model_only"] * 0.5
    assert e["cluster_100k_hours"] < e["pi4_one_core_100k_hours"]
    text = capsys.readouterr().out
    assert "| local | 2 |" in text and "Paper estimate" in text


def test_windows_of_a_track():
    assert bench.windows_of(30.0) == 14
    assert bench.windows_of(4.0) == 1
    assert bench.windows_of(2.5) == 1  # zero-padded to one window
