"""The MediaPipe export: a training run in, one waveform-in TFLite file that MediaPipe Tasks'
``AudioClassifier`` runs unchanged (and its ``-int8w`` twin), each checked, and a report out.

Each file is the run's network behind the log-mel front-end in TensorFlow ops
(``export.mediapipe_frontend``), with the standard TFLite model metadata, our card and the label
file (``export.mediapipe_metadata``), checked against the spectrogram-in Keras model on real
windows of the run's held-out tracks (``export.mediapipe_parity``). This module only runs those
steps in order and writes ``mediapipe_report.json``.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from edge_genre import __version__
from edge_genre.errors import ModelError
from edge_genre.export.config import ExportConfig
from edge_genre.export.mediapipe_frontend import FrontendPlan, waveform_tflite, window_samples
from edge_genre.export.mediapipe_metadata import (LABELS_FILE, MIN_PARSER_VERSION,
                                                  TFLITE_METADATA, package, write)
from edge_genre.export.mediapipe_parity import parity, parity_windows, reference_probs

log = logging.getLogger("edge_genre")

#: File-name suffix: ``<stem>-mediapipe.tflite`` (fp32), ``<stem>-mediapipe-int8w.tflite``.
SUFFIX = "mediapipe"
REPORT_FILE = "mediapipe_report.json"


def file_name(stem: str, quantization: str = "fp32") -> str:
    """``<stem>-mediapipe.tflite`` (fp32) or ``<stem>-mediapipe-int8w.tflite``."""
    if quantization == "fp32":
        return f"{stem}-{SUFFIX}.tflite"
    if quantization == "int8-weights":
        return f"{stem}-{SUFFIX}-int8w.tflite"
    raise ModelError(f"a MediaPipe file is fp32 or int8-weights, not {quantization}")


def export_mediapipe(run_dir: str | Path, out_dir: str | Path, name: str | None = None,
                     data_dir: str | Path | None = None, int8_weights: bool = False,
                     dft: str = "auto", parity_tracks: int = 10, allow_degraded: bool = False,
                     progress=None, config: ExportConfig | None = None) -> dict:
    """Write ``<stem>-mediapipe.tflite`` (and with ``int8_weights`` ``<stem>-mediapipe-int8w
    .tflite``) for a training run, check each against the Keras model on real windows of the
    run's held-out tracks (its training tracks when it has none) and write
    ``mediapipe_report.json``. ModelError when a file misses the parity bounds (unless
    ``allow_degraded``); the bounds are ``config``'s."""
    from edge_genre.export import deps, source
    from edge_genre.export.calibration import find_tracks
    from edge_genre.train.run_dir import read_run

    say = progress or (lambda msg: log.info(msg))
    run = read_run(run_dir)  # cheap checks first: no TensorFlow for a wrong path
    deps.require("tflite")
    model, card = source.load_keras(run, lambda msg: say(f"MediaPipe: {msg}"))
    stem = name or card.preset
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)

    part, ids = source.check_tracks(run)
    tracks = find_tracks(run.data_dir(data_dir), ids, card)
    if part == "train":  # one per genre first, so the check covers every genre
        seen, first, rest = set(), [], []
        for t in tracks:
            (rest if t.genre in seen else first).append(t)
            seen.add(t.genre)
        tracks = first + rest
    tracks = tracks[:parity_tracks]
    say(f"MediaPipe: parity windows from {len(tracks)} {part} tracks")
    windows = parity_windows([t.path for t in tracks], card)
    reference = reference_probs(model, card, windows.audio)

    files, timings = [], {}
    for q in ["fp32"] + (["int8-weights"] if int8_weights else []):
        t0 = time.perf_counter()
        path = out / file_name(stem, q)
        say(f"MediaPipe {q} -> {path}")
        data = waveform_tflite(model, card, dft=dft, weights_only=q == "int8-weights")
        write(path, package(data, card, q, stem, dft))
        timings[path.name] = round(time.perf_counter() - t0, 2)
        files.append(parity(path, model, card, windows, q, reference, config))
    report = {"run_dir": str(run.run_dir.resolve()), "out_dir": str(out.resolve()),
              "stem": stem, "preset": card.preset, "labels": list(card.labels),
              "edge_genre_version": __version__,
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "input": {"shape": [1, window_samples(card)],
                        "sample_rate": card.frontend.sample_rate, "channels": 1,
                        "dtype": "float32"},
              "frontend": card.frontend.to_dict(),
              "frontend_in_graph": FrontendPlan.of(card.frontend, window_samples(card),
                                                   dft).to_dict(),
              "metadata": {"standard": TFLITE_METADATA, "min_parser_version": MIN_PARSER_VERSION,
                           "labels_file": LABELS_FILE, "card": "edge_genre"},
              "source": f"{part} tracks of the run: {', '.join(windows.track_ids)}",
              "windows": len(windows), "tracks": len(windows.track_ids),
              "window_kinds": {k: int(np.sum(windows.kind == k))
                               for k in dict.fromkeys(windows.kind.tolist())},
              "convert_seconds": timings, "files": files,
              "passed": all(f["passed"] for f in files)}
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = [f for f in files if not f["passed"]]
    if failed and not allow_degraded:
        exc = ModelError("MediaPipe file misses the parity bounds: " + "; ".join(
            f"{f['file']}: {', '.join(f['problems'])}" for f in failed)
            + f" (report in {out / REPORT_FILE}; --allow-degraded to keep it)")
        exc.report = report
        raise exc
    return report
