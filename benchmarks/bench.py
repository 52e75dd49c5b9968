"""``run_bench``: every figure of ``edge-genre bench`` for every model file, peers included.

For each model file x backend: per-window latency at each thread count, end-to-end streaming
cost per hop; for each file: size, params and MACs from the graph, its accuracy (the CV record
in its card, else held-out tracks its run records, else none: see ``accuracy``), cold start and
peak RSS of ``edge-genre predict``, and a Raspberry Pi estimate; per
front-end: cost per hop streaming / from scratch / librosa. Peers in the same run: the paper
preset's files and YAMNet. Ratios between them are the headline (machines are noisy; ratios from
one run are what carry over).

A waveform-in file (``edge-genre export --mediapipe``: the log-mel front-end is in its graph) is
timed on raw audio windows, so its per-window latency already holds the front-end, and its
streaming cost is ``Classifier.push`` cutting raw windows with no numpy front-end: nothing is
added for a front-end it does not use. It has no row in the front-end table
(``frontend_in_graph`` in its record says why).
"""
from __future__ import annotations

import gc
import logging
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edge_genre import __version__
from edge_genre.benchmarks import accuracy, coldstart, frontend_cost, graph_macs, machine
from edge_genre.benchmarks import pi_estimate, streaming, yamnet_peer
from edge_genre.benchmarks.latency import TimingConfig, model_latency
from edge_genre.errors import BackendError, EdgeGenreError, ModelError

log = logging.getLogger("edge_genre")

#: /2: the files under test have role "tested" (was "edge") and the ratio keys say "tested".
SCHEMA = "edge-genre-bench/2"
#: ``ModelEntry.role``: the files under test, and the paper preset's files as a peer.
TESTED_ROLE, PAPER_ROLE = "tested", "paper"
REPO_PARENT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO_PARENT / "shared" / "data" / "gtzan-mini" / "genres"
DEFAULT_YAMNET = REPO_PARENT / "shared" / "peers" / "yamnet" / "yamnet.tflite"
#: Backends that can run each file format, in order of preference.
FORMAT_BACKENDS = {".tflite": ("ai-edge-litert", "tflite-runtime"), ".onnx": ("onnxruntime",)}


@dataclass(frozen=True)
class BenchConfig:
    """What ``edge-genre bench`` measures and how long it spends.

    Parameters
    ----------
    models : model files; empty means the shipped default files.
    backends : backend names to use (None: every available one that runs the format).
    threads : thread counts for per-window latency (default 1 and all usable cores).
    seconds : time budget of each latency / front-end measurement.
    warmup_runs : untimed calls before each measurement.
    data : dataset folder for accuracy and real audio (default ../shared gtzan-mini).
    max_tracks : score at most this many tracks per measured accuracy (a run's held-out tracks;
        YAMNet zero-shot: all tracks of ``data``), evenly spaced (None: all).
    peer_yamnet : YAMNet TFLite file (None: skip that peer).
    paper : measure the paper preset's files too.
    paper_run : a trained paper run directory (else random weights, accuracy not measured).
    stream_seconds : audio streamed for the end-to-end cost.
    coldstart_repeats : fresh ``predict`` processes per file (0: skip).
    out : output folder (report files; peers cached under ``out/peers``).
    cache_dir : feature cache.
    """

    models: tuple[Path, ...] = ()
    backends: tuple[str, ...] | None = None
    threads: tuple[int, ...] = ()
    seconds: float = 2.0
    warmup_runs: int = 5
    data: Path = DEFAULT_DATA
    max_tracks: int | None = None
    peer_yamnet: Path | None = DEFAULT_YAMNET
    paper: bool = True
    paper_run: Path | None = None
    stream_seconds: float = 60.0
    coldstart_repeats: int = 3
    out: Path = Path("edge-genre-bench")
    cache_dir: Path | None = None

    def timing(self) -> TimingConfig:
        return TimingConfig(seconds=self.seconds, warmup_runs=self.warmup_runs,
                            min_runs=max(5, min(10, int(self.seconds * 10))))

    def thread_counts(self) -> tuple[int, ...]:
        if self.threads:
            return tuple(dict.fromkeys(int(t) for t in self.threads))
        return tuple(dict.fromkeys((1, machine.usable_cores())))


@dataclass
class ModelEntry:
    path: Path
    role: str  # TESTED_ROLE (the files under test) or PAPER_ROLE (peer)
    trained: bool = True
    note: str = ""
    run_dir: Path | None = None
    record: dict = field(default_factory=dict)


def _say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def _backends_for(path: Path, wanted, available: dict[str, str]) -> list[str]:
    names = [b for b in FORMAT_BACKENDS.get(path.suffix.lower(), ()) if b in available]
    if wanted:
        names = [b for b in names if b in wanted]
    return names


def _load(path: Path, backend: str, threads: int | None):
    from edge_genre.edge.backends import load_model

    return load_model(path, backend=backend, threads=threads)


def _card(path: Path, available: dict[str, str]):
    """The card of a model file (TFLite without an interpreter; ONNX through its backend)."""
    if path.suffix.lower() == ".tflite":
        from edge_genre.edge.modelfile import read_card
        return read_card(path)
    backend = _backends_for(path, None, available)
    if not backend:
        raise BackendError(f"{path}: no backend here runs {path.suffix} files")
    return _load(path, backend[0], 1).card


def _stream_audio(tracks, sample_rate: int, seconds: float) -> np.ndarray:
    """Real audio of the held-out tracks, joined, at ``sample_rate``, about ``seconds`` long."""
    parts, total = [], 0
    need = int(seconds * sample_rate)
    for y in accuracy.held_out_audio(tracks, sample_rate):
        parts.append(y)
        total += len(y)
        if total >= need:
            break
    y = np.concatenate(parts)
    return y[:max(need, 1)] if total >= need else y


def run_bench(cfg: BenchConfig, argv: list[str] | None = None, say=_say) -> dict:
    """Measure everything; return the record (``report.write`` saves it)."""
    started = time.perf_counter()
    timing = cfg.timing()
    threads = cfg.thread_counts()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []

    say("machine")
    mach = machine.describe()
    available = mach["backends"]
    if not available:
        raise BackendError("no interpreter is installed (pip install 'edge-genre[edge]' or "
                           "'edge-genre[onnx]')")

    entries = _model_entries(cfg, say, notes)
    say(f"tracks from {cfg.data}")
    default_held = accuracy.default_held_out(cfg.data)  # audio for timing, not for accuracy
    dataset = default_held.dataset
    windows = accuracy.HeldOutWindowCache(cfg.cache_dir)
    predict_audio = default_held.tracks[0].path

    frontends: dict[str, dict] = {}
    for entry in entries:
        say(f"{entry.path.name}: graph")
        rec = _measure_file(entry, cfg, available, threads, timing, default_held, windows,
                            predict_audio, say)
        entry.record = rec
        if rec.get("frontend_in_graph"):
            notes.append(f"{rec['name']}: waveform in, front-end in-graph: its latency and "
                         "streaming figures include its log-mel front-end (no numpy front-end "
                         "is run or added); its MACs and params count the mel matrix, not the FFT")
        key = rec.pop("_frontend_key", None)
        if key and key not in frontends:
            card = rec.pop("_card")
            say(f"front-end of {entry.path.name}: streaming / scratch / librosa")
            y = _stream_audio(default_held.tracks, card.frontend.sample_rate, 30.0)
            cost = frontend_cost.measure(y, card.frontend, card.window, timing)
            frontends[key] = {"key": key, "used_by": [entry.path.name], "preset": card.preset,
                              "sample_rate": card.frontend.sample_rate,
                              "n_mels": card.frontend.n_mels, "n_fft": card.frontend.n_fft,
                              "hop_length": card.frontend.hop_length,
                              "resize": list(card.frontend.resize) if card.frontend.resize else None,
                              "window_seconds": card.window.seconds,
                              "hop_seconds": card.window.hop_samples(card.frontend)
                              / card.frontend.sample_rate,
                              **cost.to_dict()}
        elif key:
            frontends[key]["used_by"].append(entry.path.name)
            rec.pop("_card", None)
        rec["frontend"] = key
        gc.collect()

    yam = _measure_yamnet(cfg, threads, timing, default_held, say, notes)
    floor = coldstart.python_floor(max(1, cfg.coldstart_repeats)).to_dict() \
        if cfg.coldstart_repeats else None

    record = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "edge-genre bench" + ("" if argv is None else " " + " ".join(argv)),
        "edge_genre_version": __version__,
        "machine": mach,
        "settings": {"threads": list(threads), "seconds": cfg.seconds,
                     "warmup_runs": cfg.warmup_runs, "backends": list(cfg.backends or []),
                     "data": str(cfg.data), "max_tracks": cfg.max_tracks,
                     "stream_seconds": cfg.stream_seconds,
                     "coldstart_repeats": cfg.coldstart_repeats,
                     "paper": cfg.paper, "paper_run": str(cfg.paper_run) if cfg.paper_run else None,
                     "peer_yamnet": str(cfg.peer_yamnet) if cfg.peer_yamnet else None},
        "dataset": {"root": str(dataset.root), "n_tracks": len(dataset.tracks)},
        "audio_tracks": {"description": default_held.description + "; the audio of latency, "
                                        "streaming and cold start (not of accuracy)",
                         "tracks": [t.track_id for t in default_held.tracks]},
        "models": [e.record for e in entries],
        "frontends": list(frontends.values()),
        "yamnet": yam,
        "python_floor": floor,
        "pi_estimate": {"method": "MACs per window / published per-core throughput; an "
                                  "ESTIMATE, not a measurement", "rates": pi_estimate.sources()},
        "notes": notes,
    }
    record["ratios"] = ratios(record)
    record["duration_s"] = round(time.perf_counter() - started, 1)
    return record


def _model_entries(cfg: BenchConfig, say, notes: list[str]) -> list[ModelEntry]:
    entries = []
    if cfg.models:
        for p in cfg.models:
            if not Path(p).is_file():
                raise ModelError(f"{p}: no such model file")
            entries.append(ModelEntry(Path(p), TESTED_ROLE))
    else:
        from edge_genre.defaults import shipped_models
        shipped = shipped_models()
        if not shipped:
            raise ModelError("no shipped default model in this install; pass --models FILE...")
        entries += [ModelEntry(p, TESTED_ROLE) for p in shipped]
    if cfg.paper:
        from edge_genre.benchmarks.peers import paper_peer
        say("paper peer files")
        try:
            peer = paper_peer(cfg.out, cfg.data, cfg.paper_run, cfg.cache_dir, progress=say)
        except ImportError as exc:  # no TensorFlow / tf2onnx in this install
            notes.append(f"paper peer skipped: exporting it needs the train/export extras ({exc})")
        else:
            for (q, f), p in peer.files.items():
                entries.append(ModelEntry(p, PAPER_ROLE, peer.trained, peer.note, peer.run_dir))
    return entries


def _measure_file(entry: ModelEntry, cfg: BenchConfig, available, threads, timing,
                  default_held, windows, predict_audio, say) -> dict:
    from edge_genre.edge.backends import is_waveform

    path = entry.path
    card = _card(path, available)
    in_graph = is_waveform(card)  # waveform in: the front-end is inside the timed model
    cost = graph_macs.count(path)
    rec = {"name": path.name, "path": str(path), "role": entry.role, "preset": card.preset,
           "format": path.suffix.lstrip(".").lower(), "quantization": card.quantization,
           "trained": entry.trained, "input_shape": list(card.input_shape),
           "labels": list(card.labels), "file_bytes": path.stat().st_size,
           "params": cost.params, "macs": cost.macs, "ops": cost.ops,
           "pi_estimate_ms": pi_estimate.estimates(cost.macs), "note": entry.note,
           "frontend_in_graph": in_graph, "latency": [], "streaming": [], "accuracy": None}
    acc_plan = accuracy.plan(path, card, default_held.dataset, entry.trained, entry.run_dir,
                             cfg.max_tracks)
    rec["accuracy"], held = acc_plan.accuracy, acc_plan.held
    if acc_plan.note:
        rec["accuracy_note"] = acc_plan.note
    backends = _backends_for(path, cfg.backends, available)
    if not backends:
        rec["skipped"] = f"no selected backend runs {path.suffix} files here"
        return rec
    for backend in backends:
        for n in threads:
            say(f"{path.name} [{backend}, {n} thread{'s' if n > 1 else ''}]: latency")
            runner = _load(path, backend, n)
            stats = model_latency(runner, timing)
            rec["latency"].append({"backend": backend, "threads": n,
                                   "per_window_ms": stats.to_dict()})
            if n == max(threads) and rec["accuracy"] is None and held is not None:
                say(f"{path.name}: accuracy on {len(held.tracks)} held-out tracks")
                rec["accuracy"] = accuracy.evaluate(runner, held, windows)
            del runner
        say(f"{path.name} [{backend}, 1 thread]: streaming end to end")
        runner = _load(path, backend, 1)
        y = _stream_audio(default_held.tracks, card.frontend.sample_rate, cfg.stream_seconds)
        cost_stream = streaming.measure(runner, y, budget_seconds=3 * cfg.seconds)
        rec["streaming"].append({"backend": backend, "threads": 1, **cost_stream.to_dict(),
                                 "frontend": "in-graph" if in_graph else "numpy streaming"})
        del runner
    # Peers get one cold start each: they are there for scale, and a paper-model predict of a
    # whole track takes seconds.
    repeats = cfg.coldstart_repeats if entry.role == TESTED_ROLE else min(1, cfg.coldstart_repeats)
    if repeats:
        say(f"{path.name}: cold start of predict x{repeats}")
        cs = coldstart.measure(coldstart.predict_command(predict_audio, path), repeats)
        rec["cold_start"] = cs.to_dict()
    if in_graph:  # no numpy front-end to measure for it
        return rec
    from edge_genre.train.features import settings_key
    rec["_frontend_key"] = settings_key(card.frontend, card.window)
    rec["_card"] = card
    return rec


def _measure_yamnet(cfg: BenchConfig, threads, timing, held, say, notes) -> dict:
    """YAMNet's latency (on ``held``'s audio) and its zero-shot accuracy over ALL tracks of the
    dataset (it trained on none of them; ``--tracks`` spreads a subset)."""
    path = cfg.peer_yamnet
    if path is None:
        return {"skipped": "not requested (--peer-yamnet none)"}
    path = Path(path)
    if not path.is_file():
        notes.append(f"YAMNet peer skipped: {path} not found")
        return {"skipped": f"{path} not found"}
    try:
        cost = graph_macs.count(path)
        y = accuracy.held_out_audio(held.tracks[:1], yamnet_peer.SAMPLE_RATE)[0]
        window_seconds = 4.0
        lat = []
        for n in threads:
            say(f"YAMNet [{n} thread{'s' if n > 1 else ''}]: latency per frame and per 4 s")
            model = yamnet_peer.Yamnet(path, n)
            lat.append({"backend": model.backend, "threads": n,
                        **yamnet_peer.latency(model, y, window_seconds, timing).to_dict()})
        scored = accuracy.all_tracks(held.dataset, cfg.max_tracks)
        say(f"YAMNet: zero-shot genre accuracy on {len(scored.tracks)} tracks (all: it trained "
            "on none)")
        model = yamnet_peer.Yamnet(path, max(threads))
        labels = held.dataset.labels
        audio = accuracy.iter_audio(scored.tracks, yamnet_peer.SAMPLE_RATE)
        preds = yamnet_peer.zero_shot_predictions(model, audio, labels)
        truth = np.array([labels.index(t.genre) for t in scored.tracks])
        frames = yamnet_peer.frames_per_window(window_seconds)
    except EdgeGenreError as exc:
        notes.append(f"YAMNet peer skipped: {exc}")
        return {"skipped": str(exc)}
    return {
        "path": str(path), "file_bytes": path.stat().st_size, "params": cost.params,
        "macs_per_frame": cost.macs, "macs_per_window": cost.macs * frames,
        "frames_per_window": frames, "window_seconds": window_seconds,
        "frame_seconds": yamnet_peer.FRAME_SAMPLES / yamnet_peer.SAMPLE_RATE,
        "hop_seconds": yamnet_peer.HOP_SAMPLES / yamnet_peer.SAMPLE_RATE,
        "latency": lat,
        "accuracy": {"track_accuracy": float(np.mean(preds == truth)), "tracks": len(truth),
                     "scored_on": scored.description, "zero_shot": True,
                     "source": accuracy.SOURCE_ZERO_SHOT},
        "mapping": yamnet_peer.mapping_table(path),
        "class_map": str(yamnet_peer.class_map_path(path)),
        "pi_estimate_ms": pi_estimate.estimates(cost.macs * frames),
        "note": "its TFLite graph includes its own log-mel front-end (counted in its MACs)",
    }


# ----------------------------------------------------------------------------- ratios


def _median(entry: dict | None, backend: str | None = None, threads: int = 1) -> float | None:
    if not entry:
        return None
    for row in entry.get("latency", []):
        if row["threads"] == threads and (backend is None or row["backend"] == backend):
            return row.get("per_window_ms", {}).get("median_ms")
    return None


def _pick(models: list[dict], role: str, quantization: str, fmt: str = "tflite") -> dict | None:
    """The lightest (fewest MACs) measured model of that role, quantisation and format."""
    found = [m for m in models if m["role"] == role and m["quantization"] == quantization
             and m["format"] == fmt and m.get("latency")]
    return min(found, key=lambda m: m.get("macs") or float("inf")) if found else None


def _ratio(a, b) -> float | None:
    return round(a / b, 3) if a and b else None


def ratios(record: dict) -> dict:
    """Headline ratios from one run (larger = the tested model / streaming front-end wins)."""
    models = record["models"]
    tested = _pick(models, TESTED_ROLE, "int8") or next(
        (m for m in models if m["role"] == TESTED_ROLE and m.get("latency")), None)
    paper = _pick(models, PAPER_ROLE, "int8")
    out: dict = {"tested_file": tested["name"] if tested else None,
                 "paper_file": paper["name"] if paper else None}
    backend = tested["latency"][0]["backend"] if tested else None
    tested_1t = _median(tested, backend, 1)
    paper_1t = _median(paper, backend, 1) if paper else None
    out["paper_int8_over_tested_int8_latency_1thread"] = _ratio(paper_1t, tested_1t)
    fe_key = tested.get("frontend") if tested else None
    fe = next((f for f in record["frontends"] if f["key"] == fe_key), None)
    if fe:
        per_hop = fe["per_hop_ms"]
        lib = per_hop.get("librosa")
        out["librosa_over_streaming_frontend"] = _ratio(lib and lib["median_ms"],
                                                        per_hop["streaming"]["median_ms"])
        out["librosa_over_scratch_logmel"] = _ratio(lib and lib["median_ms"],
                                                    per_hop["scratch_logmel"]["median_ms"])
        out["scratch_over_streaming_frontend"] = _ratio(per_hop["scratch"]["median_ms"],
                                                        per_hop["streaming"]["median_ms"])
    yam = record.get("yamnet") or {}
    yam_1t = next((r["per_window_ms"]["median_ms"] for r in yam.get("latency", [])
                   if r["threads"] == 1), None)
    out["yamnet_over_tested_model_latency_1thread"] = _ratio(yam_1t, tested_1t)
    if tested and tested.get("frontend_in_graph"):
        # A waveform-in file's model latency already holds its front-end.
        out["tested_frontend_in_graph"] = True
        out["yamnet_over_tested_frontend_plus_model_1thread"] = _ratio(yam_1t, tested_1t)
    elif fe and tested_1t:
        # YAMNet's file computes its own log-mel: compare with the tested model plus its front-end.
        total = tested_1t + fe["per_hop_ms"]["scratch"]["median_ms"]
        out["yamnet_over_tested_frontend_plus_model_1thread"] = _ratio(yam_1t, total)
    if (tested and paper and tested.get("accuracy") and paper.get("accuracy")
            and tested["accuracy"].get("source") == paper["accuracy"].get("source")):
        out["track_accuracy_tested_minus_paper"] = round(
            tested["accuracy"]["track_accuracy"] - paper["accuracy"]["track_accuracy"], 4)
    return out
