"""edge-genre bench: a seconds-long run on real files and audio, and its record's schema."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edge_genre.benchmarks import graph_macs, machine, yamnet_peer
from edge_genre.benchmarks.cli import parse_threads
from edge_genre.errors import EdgeGenreError

from tests.conftest import YAMNET_TFLITE


def test_threads_parse():
    assert parse_threads("1,N", 4) == (1, 4)
    assert parse_threads("1,1,2", 4) == (1, 2)
    with pytest.raises(EdgeGenreError):
        parse_threads("0", 4)


def test_machine_description():
    d = machine.describe()
    assert d["cpu_model"] and d["usable_cores"] >= 1 and d["logical_cores"] >= 1
    assert d["simd"], "expected at least one SIMD flag (AVX2 / NEON) on a supported CPU"
    info = machine.cpuinfo("processor : 0\nFeatures : fp asimd asimddp\nModel : Raspberry Pi 5\n")
    assert "NEON dot product" in machine.simd_flags(info)


@pytest.mark.slow
def test_macs_from_the_graph_match_keras(tiny_export):
    """MACs counted from each exported file equal the Keras-graph count (BN folded: 0 MACs)."""
    from edge_genre.train.macs import count

    folder, model = tiny_export
    keras_macs, _ = count(model)
    for name in ("tiny-fp32.tflite", "tiny-int8.tflite", "tiny-fp32.onnx", "tiny-int8.onnx"):
        cost = graph_macs.count(folder / name)
        assert cost.macs == keras_macs, name
        assert 0 < cost.params <= model.count_params(), name


def test_yamnet_frames_and_mapping():
    assert yamnet_peer.frames_per_window(4.0) == 8  # 0.975 s frames at a 0.48 s hop
    assert yamnet_peer.frames_per_window(0.975) == 1
    names = yamnet_peer.class_names(YAMNET_TFLITE)
    assert len(names) == 521
    idx = yamnet_peer.genre_indices(names, ["blues", "metal", "rock"])
    assert [names[i] for i in idx["metal"]] == ["Heavy metal"]
    assert names[idx["rock"][0]] == "Rock music"
    cost = graph_macs.count(YAMNET_TFLITE)
    # MobileNet v1 body (69 M MACs per patch, 3.7 M params) plus its in-graph DFT matrices.
    assert 69e6 < cost.macs < 100e6 and 3.7e6 < cost.params < 4.1e6


def _positive(value, where):
    assert value is not None, f"{where} is missing"
    assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, \
        f"{where} = {value!r} is not positive"


@pytest.mark.slow
def test_short_bench_record(bench_models, tmp_path, gtzan_root):
    from edge_genre.cli import main

    out = tmp_path / "bench"
    rc = main(["bench", "--models", *map(str, bench_models), "--seconds", "0.3",
               "--threads", "1,N", "--no-paper", "--tracks", "2", "--stream-seconds", "10",
               "--coldstart-repeats", "1", "--data", str(gtzan_root), "--out", str(out)])
    assert rc == 0
    rec = json.loads((out / "bench.json").read_text())
    assert (out / "bench.md").read_text().startswith("# edge-genre bench")
    assert (out / "bench.png").stat().st_size > 1000

    assert rec["schema"] == "edge-genre-bench/2"
    assert {m["role"] for m in rec["models"]} == {"tested"}
    for key in ("cpu_model", "architecture", "usable_cores", "simd", "backends", "packages"):
        assert rec["machine"][key], key
    threads = rec["settings"]["threads"]
    assert len(rec["models"]) == len(bench_models)
    for m in rec["models"]:
        name = m["name"]
        for key in ("file_bytes", "params", "macs"):
            _positive(m[key], f"{name}.{key}")
        for pi in ("raspberry_pi_4", "raspberry_pi_5"):
            _positive(m["pi_estimate_ms"][pi], f"{name}.pi_estimate_ms.{pi}")
        assert {r["threads"] for r in m["latency"]} == set(threads)
        for row in m["latency"]:
            for key in ("median_ms", "p90_ms", "p99_ms"):
                _positive(row["per_window_ms"][key], f"{name}.latency.{key}")
        assert m["streaming"], f"{name}: no streaming figures"
        for row in m["streaming"]:
            for key in ("real_time_factor", "core_percent", "cpu_ms_per_hop"):
                _positive(row[key], f"{name}.streaming.{key}")
        acc = m["accuracy"]  # every file here has a figure: "not measured" is a failure
        assert acc is not None, f"{name}: no accuracy ({m.get('accuracy_note')})"
        if name.startswith("tiny-"):  # its run records 2 held-out tracks: measured on them
            assert acc["source"] == "held-out", name
            assert acc["tracks"] == 2 and acc["windows"] > 0, acc
            for key in ("track_accuracy", "window_accuracy"):
                assert 0 <= acc[key] <= 1, (name, key, acc[key])
        else:  # the shipped files' cards carry their CV record: quoted
            assert acc["source"] == "card cv", name
            assert acc["cv"]["k"] >= 2 and 0 <= acc["track_accuracy"] <= 1
        cs = m["cold_start"]
        assert cs["ok"], f"{name}: predict failed: {cs.get('error')}"
        _positive(cs["median_s"], f"{name}.cold_start.median_s")
        _positive(cs["peak_rss_mib"], f"{name}.cold_start.peak_rss_mib")
    for fe in rec["frontends"]:
        for key in ("streaming", "scratch", "scratch_logmel", "librosa"):
            _positive(fe["per_hop_ms"][key]["median_ms"], f"frontend.{key}")
        assert fe["frames_computed_per_hop"] < fe["frames_per_window"]
    yam = rec["yamnet"]
    assert yam["frames_per_window"] == 8
    for row in yam["latency"]:
        _positive(row["per_window_ms"]["median_ms"], "yamnet.per_window")
        _positive(row["per_frame_ms"]["median_ms"], "yamnet.per_frame")
    assert 0 <= yam["accuracy"]["track_accuracy"] <= 1
    assert yam["accuracy"]["source"] == "zero-shot all tracks"
    assert yam["accuracy"]["tracks"] == 2  # --tracks 2 of all tracks
    header = next(ln for ln in (out / "bench.md").read_text().splitlines()
                  if ln.startswith("| model |"))
    assert [c.strip() for c in header.split("|") if "thread" in c] == [
        f"{n} thread{'s' if n != 1 else ''} ms" for n in threads]
    for key in ("yamnet_over_tested_model_latency_1thread", "librosa_over_streaming_frontend",
                "scratch_over_streaming_frontend"):
        _positive(rec["ratios"][key], f"ratios.{key}")
    _positive(rec["python_floor"]["median_s"], "python_floor")
    assert np.isfinite(rec["duration_s"])
