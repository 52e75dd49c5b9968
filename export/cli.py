"""``edge-genre export``: argparse only at import; the work is in ``pipeline``."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from edge_genre.edge.cli_args import add_cache_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export a trained model to TFLite / ONNX (fp32, int8, int8-weights)",
        description="Convert a training run (model.keras + model_card.json + run.json) to "
                    "self-describing TFLite and ONNX files, fp32 and with --int8 full-integer int8 "
                    "calibrated on the run's training windows, with --int8-weights weights-only "
                    "int8 "
                    "(float activations and I/O), then check every file against the Keras model "
                    "on the run's held-out tracks, or on its training windows when it has none "
                    "(export_report.json).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="training run folder")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--int8", action="store_true",
                   help="also write full-integer int8 files (<STEM>-int8.*)")
    p.add_argument("--int8-weights", action="store_true",
                   help="also write weights-only int8 files (<STEM>-int8w.*: int8 weights, "
                        "float activations and I/O)")
    p.add_argument("--formats", default="tflite,onnx", metavar="LIST",
                   help="comma-separated: tflite, onnx (default both)")
    p.add_argument("--name", metavar="STEM", help="file stem (default: the model's preset)")
    p.add_argument("--data", metavar="DIR", help="dataset folder (default: the one in run.json)")
    p.add_argument("--calibration-windows", type=int, metavar="N",
                   help="training windows in the int8 representative set (default 300)")
    add_cache_arg(p)
    p.add_argument("--cv-record", metavar="FILE.json",
                   help="the output of 'edge-genre evaluate --cv K --preset NAME --out FILE.json' "
                        "for the run's preset: its mean +- std track accuracy (and room figure) "
                        "goes into every file's card (extra.cv), the accuracy 'edge-genre bench' "
                        "quotes")
    p.add_argument("--cv-preset", metavar="NAME",
                   help="with a --cv-record of several presets, the one to take (default: the "
                        "run's preset; another preset is refused)")
    p.add_argument("--allow-degraded", action="store_true",
                   help="keep files whose check misses the bounds (report still says so)")
    p.add_argument("--mediapipe", action="store_true",
                   help="also write <STEM>-mediapipe.tflite (with --int8-weights also "
                        "<STEM>-mediapipe-int8w.tflite): waveform in, the log-mel front-end "
                        "inside, standard TFLite metadata (sample rate, labels) for MediaPipe "
                        "Tasks' AudioClassifier, checked against Keras + the numpy front-end "
                        "(mediapipe_report.json); '--formats mediapipe' writes only it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import sys

    from edge_genre.edge.cli_args import output_folder
    from edge_genre.errors import DataError
    from edge_genre.export.config import ExportConfig

    config = ExportConfig()
    if args.calibration_windows is not None:
        if args.calibration_windows < 1:
            raise DataError("--calibration-windows must be at least 1")
        config = dataclasses.replace(config, calibration_windows=args.calibration_windows)
    output_folder(args.out)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from edge_genre.export.check import format_table
    from edge_genre.export.pipeline import REPORT_FILE, export_model

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    mediapipe = args.mediapipe or "mediapipe" in formats
    formats = [f for f in formats if f != "mediapipe"]
    from edge_genre.errors import ModelError

    if not formats and mediapipe:
        return _mediapipe(args)
    try:
        report = export_model(args.run_dir, args.out, int8=args.int8,
                              int8_weights=args.int8_weights, formats=formats,
                              name=args.name, data_dir=args.data, cache_dir=args.cache_dir,
                              allow_degraded=args.allow_degraded, config=config,
                              cv_record=args.cv_record, cv_preset=args.cv_preset,
                              progress=lambda msg: print(f"export: {msg}", file=sys.stderr))
    except ModelError as exc:
        if getattr(exc, "report", None):  # degraded: show the figures, then the error line
            print(format_table(exc.report))
        raise
    print(format_table(report))
    print(f"report: {Path(args.out) / REPORT_FILE}")
    cv = report.get("cv")
    if cv:
        print(f"card extra.cv: track accuracy {100 * cv['track_accuracy_mean']:.1f} % +- "
              f"{100 * cv['track_accuracy_std']:.1f} ({cv['k']}-fold CV, grouped by "
              f"{cv['grouping']}, {cv['n_tracks']} tracks; {cv['source']})")
    if not report["passed"]:
        print("WARNING: some files miss the bounds (kept because of --allow-degraded)")
    return _mediapipe(args) if mediapipe else 0


def _mediapipe(args: argparse.Namespace) -> int:
    """The MediaPipe file of ``--mediapipe`` (see ``export.mediapipe``)."""
    import sys

    from edge_genre.errors import ModelError
    from edge_genre.export.mediapipe import REPORT_FILE, export_mediapipe
    from edge_genre.export.mediapipe_parity import format_parity

    try:
        report = export_mediapipe(args.run_dir, args.out, name=args.name, data_dir=args.data,
                                  int8_weights=args.int8_weights,
                                  allow_degraded=args.allow_degraded,
                                  progress=lambda msg: print(f"export: {msg}", file=sys.stderr))
    except ModelError as exc:
        if getattr(exc, "report", None):
            print(format_parity(exc.report))
        raise
    print(format_parity(report))
    print(f"report: {Path(args.out) / REPORT_FILE}")
    if not report["passed"]:
        print("WARNING: a MediaPipe file misses the bounds (kept because of --allow-degraded)")
    return 0
