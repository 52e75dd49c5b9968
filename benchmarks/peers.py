"""The paper preset's exported files as a peer, made on demand and cached.

With ``run_dir`` (a trained ``paper`` run) its files are exported once with ``export_model``.
Without it, the paper network is built with random weights: fine for latency, size and MACs,
which do not depend on the weights, but its accuracy means nothing, and the report labels it
"untrained" and does not measure it. Files are cached under ``<out>/peers`` and reused.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("edge_genre")

PEER_STEM = "paper"
QUANTS_FORMATS = (("fp32", "tflite"), ("int8", "tflite"), ("fp32", "onnx"), ("int8", "onnx"))
#: Untrained peers: a handful of windows is enough to calibrate int8 ranges for timing.
UNTRAINED_CALIBRATION_WINDOWS = 16
UNTRAINED_TRAIN_TRACKS = 6
UNTRAINED_TEST_TRACKS = 2


@dataclass
class PaperPeer:
    files: dict[tuple[str, str], Path]  # (quantization, format) -> file
    trained: bool
    run_dir: Path | None
    note: str


def _files(folder: Path) -> dict[tuple[str, str], Path]:
    return {(q, f): folder / f"{PEER_STEM}-{q}.{f}" for q, f in QUANTS_FORMATS}


def paper_peer(out_dir: str | Path, data_dir: str | Path, run_dir: str | Path | None = None,
               cache_dir: str | Path | None = None, formats=("tflite", "onnx"),
               progress=None) -> PaperPeer:
    """The paper preset's fp32 / int8 TFLite and ONNX files, exported now if not cached."""
    say = progress or log.info
    peers = Path(out_dir) / "peers"
    folder = peers / ("paper-trained" if run_dir else "paper-untrained")
    wanted = {k: v for k, v in _files(folder).items() if k[1] in formats}
    if run_dir is None:
        note = ("paper preset with random (untrained) weights: latency, size and MACs only; "
                "accuracy not measured")
    else:
        note = f"paper preset trained in {run_dir}"
    if all(p.is_file() for p in wanted.values()):
        return PaperPeer(wanted, run_dir is not None, Path(run_dir) if run_dir else None, note)

    from edge_genre.export import ExportConfig, export_model

    if run_dir is None:
        run_dir_made = _untrained_run(peers / "paper-untrained-run", data_dir, cache_dir, say)
        say(f"exporting the untrained paper model to {folder} (once; cached)")
        export_model(run_dir_made, folder, int8=True, formats=formats, name=PEER_STEM,
                     data_dir=data_dir, cache_dir=cache_dir, allow_degraded=True,
                     config=ExportConfig(calibration_windows=UNTRAINED_CALIBRATION_WINDOWS),
                     progress=say)
    else:
        say(f"exporting the paper run {run_dir} to {folder} (once; cached)")
        export_model(run_dir, folder, int8=True, formats=formats, name=PEER_STEM,
                     data_dir=data_dir, cache_dir=cache_dir, allow_degraded=True, progress=say)
    missing = [str(p) for p in wanted.values() if not p.is_file()]
    if missing:
        from edge_genre.errors import ModelError
        raise ModelError(f"export of the paper peer did not write {', '.join(missing)}")
    return PaperPeer(wanted, run_dir is not None, Path(run_dir) if run_dir else None, note)


def _untrained_run(run_dir: Path, data_dir, cache_dir, say) -> Path:
    """A run directory (``run_dir.write_run``) of the paper net with random weights."""
    from edge_genre.train.run_dir import RunRecord, RunSplit, is_run, write_run

    if is_run(run_dir):
        return run_dir
    import keras

    from edge_genre.edge.config import ModelCard
    from edge_genre.train.data import discover
    from edge_genre.train.features import load_windows, normalization_stats
    from edge_genre.train.presets import get_preset
    from edge_genre.train.splits import track_split

    preset = get_preset("paper")
    ds = discover(data_dir)
    split = track_split(ds, seed=0, by_artist=True)
    train = _per_genre(split.train, UNTRAINED_TRAIN_TRACKS, ds.labels)
    test = split.test[:UNTRAINED_TEST_TRACKS]
    say(f"building the paper network with random weights ({len(train)} tracks for "
        "input normalisation and int8 calibration)")
    windows = load_windows(train, preset.frontend, preset.window, cache_dir=cache_dir)
    mean, std = normalization_stats(windows.x)
    frontend = preset.frontend.with_normalization(mean, std)
    keras.utils.set_random_seed(0)
    model = preset.build(len(ds.labels))
    card = ModelCard(labels=ds.labels, frontend=frontend, window=preset.window, preset="paper",
                     model_version="untrained", input_shape=preset.input_shape,
                     extra={"untrained": True})
    record = RunRecord.new(
        "paper", description=preset.description,
        data={"root": str(Path(data_dir).resolve())},
        split=RunSplit(name="bench-untrained", train=tuple(t.track_id for t in train),
                       test=tuple(t.track_id for t in test)),
        normalization={"mean": mean, "std": std, "from": "training windows"},
        note="random weights, made by edge-genre bench for latency only")
    write_run(run_dir, model, card, record)
    return run_dir


def _per_genre(tracks, n_total: int, labels) -> list:
    """Up to ``n_total`` tracks spread over the genres (round robin)."""
    by_genre = {g: [t for t in tracks if t.genre == g] for g in labels}
    out, i = [], 0
    while len(out) < n_total and any(len(v) > i for v in by_genre.values()):
        for g in labels:
            if len(by_genre[g]) > i and len(out) < n_total:
                out.append(by_genre[g][i])
        i += 1
    return out
