"""``export_model``: a training run in, self-describing TFLite / ONNX files and a checked report out.

Steps: validate the run (card, Keras model, input shape vs front-end: ``source``) -> load the
held-out windows (or, for a run without test tracks, a fixed subset of its training windows; and,
for int8, the calibration windows: ``_windows``) -> convert each requested file (fp32,
full-integer int8, weights-only int8) and embed the card (``_convert``) -> run every file in its
interpreter on those windows against Keras and write ``export_report.json`` (``_report``) ->
raise ModelError when a file misses the bounds (unless allowed).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from edge_genre import __version__
from edge_genre.errors import DataError, ModelError
from edge_genre.export import deps
from edge_genre.export.config import FORMATS, QUANTIZATIONS, ExportConfig
from edge_genre.train.roomsim import DEFAULT_TEST_ROOMS  # light: numpy only

log = logging.getLogger("edge_genre")

REPORT_FILE = "export_report.json"


def file_name(stem: str, quantization: str, fmt: str) -> str:
    """``<stem>-<suffix>.<fmt>``: suffix fp32, int8 or int8w (card quantization "int8-weights")."""
    return f"{stem}-{QUANTIZATIONS[quantization]}.{fmt}"


def export_model(run_dir: str | Path, out_dir: str | Path, int8: bool = True,
                 formats: Iterable[str] = FORMATS, name: str | None = None,
                 data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                 allow_degraded: bool = False, config: ExportConfig = ExportConfig(),
                 progress=None, int8_weights: bool = False,
                 cv_record: str | Path | dict | None = None, cv_preset: str | None = None
                 ) -> dict:
    """Export a training run to TFLite and/or ONNX, fp32, (with ``int8``) full-integer int8 and
    (with ``int8_weights``) weights-only int8, and check them against Keras.

    Parameters
    ----------
    run_dir : training run folder (``model.keras``, ``model_card.json``, ``run.json``).
    out_dir : where ``<name>-{fp32,int8,int8w}.{tflite,onnx}`` and ``export_report.json`` go.
    int8 : also write full-integer int8 files, calibrated on the run's training windows.
    int8_weights : also write weights-only int8 files (``-int8w``, card quantization
        "int8-weights"): int8 weights, float activations and float I/O, no calibration.
    formats : any of "tflite", "onnx".
    name : file stem; default the card's preset name.
    data_dir : dataset folder holding the run's tracks; default the one run.json records.
    cache_dir : feature cache folder (None: no cache).
    allow_degraded : write the report and return even when a file misses the bounds.
    config : conversion and check settings.
    progress : callable(str) told about each step (the CLI prints them).
    cv_record : the output of ``edge-genre evaluate --cv K --preset NAME --out FILE.json`` (its
        path, or the parsed JSON): its summary goes into every card as ``extra["cv"]``
        (``cv_summary``), the accuracy ``edge-genre bench`` quotes. DataError when it is not a
        full cross-validation of the run's preset.
    cv_preset : with a record of several presets (``{"runs": [...]}``), the run to take (default:
        the run's own preset); must be the run's preset.

    Returns the report (also written as JSON). Raises ModelError / DataError / BackendError.
    """
    formats = _check_formats(formats)
    say = progress or (lambda msg: log.info(msg))
    from edge_genre.export import source
    from edge_genre.train.run_dir import read_run

    run = read_run(run_dir)  # cheap checks first: no TensorFlow for a wrong path
    cv = _cv_for(run.card.preset, cv_record, cv_preset)
    deps.require(*formats)  # then fail before any work when a converter is missing
    data = run.data_dir(data_dir)
    part, check_ids = source.check_tracks(run)
    train_ids = run.split_ids("train") if int8 else check_ids if part == "train" else []
    model, card = source.load_keras(run, say)
    stem = name or card.preset
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)

    held, calib = _windows(run, card, data, part, check_ids, train_ids, int8, config, cache_dir,
                           say)
    t0 = time.perf_counter()
    keras_probs = np.asarray(model.predict(held.x, batch_size=config.check_batch, verbose=0),
                             dtype=np.float32)
    keras_seconds = time.perf_counter() - t0
    quantizations = [q for q, on in (("fp32", True), ("int8", int8),
                                     ("int8-weights", int8_weights)) if on]
    written, timings = _convert(model, card, out, stem, formats, quantizations, calib, cv, config,
                                say)

    from edge_genre.export import check

    say("checking every file against Keras on the "
        + ("held-out windows" if part == "test" else "training check windows"))
    checks = [check.check_file(p, fmt, q, keras_probs, held, config) for p, fmt, q in written]
    report = _report(run, card, out, stem, config, int8_weights, keras_seconds, keras_probs, held,
                     calib, cv, timings, checks, allow_degraded)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = [c for c in checks if not c.passed]
    if failed and not allow_degraded:
        exc = ModelError("export degraded the model: " + "; ".join(
            f"{c.file}: {', '.join(c.problems)}" for c in failed)
            + f" (report in {out / REPORT_FILE}; --allow-degraded to accept)")
        exc.report = report  # the CLI prints the table before the error line
        raise exc
    return report


# ----------------------------------------------------------------------------- export_model's steps


def _check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """The requested formats, each once; ModelError for an unknown one or none."""
    formats = tuple(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ModelError(f"unknown export format {', '.join(unknown) or '(none)'}; "
                         f"choose from {', '.join(FORMATS)}")
    return formats


def _cv_for(run_preset: str, cv_record, cv_preset: str | None) -> dict | None:
    """The card's ``extra["cv"]`` from ``--cv-record`` (a path or parsed JSON), or None."""
    if cv_record is None:
        if cv_preset is not None:
            raise DataError("--cv-preset goes with --cv-record FILE.json")
        return None
    if isinstance(cv_record, dict):
        return cv_summary(cv_record, run_preset, cv_preset)
    return read_cv_record(cv_record, run_preset, cv_preset)


def _windows(run, card, data: Path, part: str, check_ids: list[str], train_ids: list[str],
             int8: bool, config: ExportConfig, cache_dir, say):
    """(the windows every file is checked on, the int8 calibration windows or None).

    The check uses the run's held-out tracks, or for a run without any (a model trained on every
    track) a fixed subset of its training windows; calibration draws from its training tracks."""
    from edge_genre.export import calibration as cal

    if part == "test":
        say(f"held-out windows: {len(check_ids)} test tracks from {data}")
        held = cal.held_out_set(check_ids, data, card, cache_dir)
    else:
        say(f"no held-out tracks in {run.record_path}: checking on "
            f"{config.training_check_windows} windows of its {len(check_ids)} training tracks "
            "(agreement only is meaningful)")
        held = cal.training_check_set(check_ids, data, card, config.training_check_windows,
                                      config.seed + 1, cache_dir)
    calib = None
    if int8:
        calib = cal.calibration_set(train_ids, data, card, config.calibration_windows,
                                    config.seed, cache_dir)
        say(f"calibration: {len(calib)} windows of {calib.source['tracks']} training tracks")
    return held, calib


def _convert(model, card, out: Path, stem: str, formats: tuple[str, ...],
             quantizations: list[str], calib, cv: dict | None, config: ExportConfig, say
             ) -> tuple[list[tuple[Path, str, str]], dict[str, float]]:
    """Write every requested (format, quantization) file with its card embedded. Returns
    ([(path, format, quantization)], {file name: seconds})."""
    from edge_genre.export import metadata

    written: list[tuple[Path, str, str]] = []
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="edge-genre-export-") as tmp:
        if "tflite" in formats:
            from edge_genre.export import tflite

            say("TFLite: Keras -> SavedModel")
            saved = tflite.saved_model(model, Path(tmp))
            for q in quantizations:
                t = time.perf_counter()
                path = out / file_name(stem, q, "tflite")
                say(f"TFLite {q} -> {path}")
                data_bytes = tflite.convert(saved, calib.x if q == "int8" else None,
                                            config.tflite_int8_io,
                                            weights_only=q == "int8-weights")
                metadata.write_tflite(path, data_bytes, _card_for(card, q, cv))
                timings[path.name] = time.perf_counter() - t
                written.append((path, "tflite", q))
        if "onnx" in formats:
            from edge_genre.export import onnx as onnx_export

            t = time.perf_counter()
            path = out / file_name(stem, "fp32", "onnx")
            say(f"ONNX fp32 -> {path}")
            fp32 = onnx_export.to_onnx(model, tuple(card.input_shape), config.onnx_opset)
            metadata.write_onnx(path, fp32, _card_for(card, "fp32", cv))
            timings[path.name] = time.perf_counter() - t
            written.append((path, "onnx", "fp32"))
            for q in quantizations[1:]:
                t = time.perf_counter()
                path = out / file_name(stem, q, "onnx")
                say(f"ONNX {q} -> {path}")
                if q == "int8":
                    qm = onnx_export.quantize(fp32, calib.x, config.onnx_per_channel,
                                              config.onnx_reduce_range)
                else:
                    qm = onnx_export.quantize_weights(fp32)
                metadata.write_onnx(path, qm, _card_for(card, q, cv))
                timings[path.name] = time.perf_counter() - t
                written.append((path, "onnx", q))
    return written, timings


def _report(run, card, out: Path, stem: str, config: ExportConfig, int8_weights: bool,
            keras_seconds: float, keras_probs: np.ndarray, held, calib, cv: dict | None,
            timings: dict[str, float], checks: list, allow_degraded: bool) -> dict:
    """``export_report.json``: what was converted from what, with which settings, and how every
    file compares with Keras."""
    from edge_genre.export import check

    keras_window, keras_track = check.accuracies(keras_probs, held)
    return {
        "run_dir": str(run.run_dir.resolve()),
        "out_dir": str(out.resolve()),
        "stem": stem,
        "preset": card.preset,
        "labels": list(card.labels),
        "input_shape": list(card.input_shape),
        "edge_genre_version": __version__,
        "versions": deps.versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": dataclasses.asdict(config),
        "tflite_int8_io": config.tflite_int8_io,
        "onnx_int8_io": "float32",
        "int8_weights_io": "float32" if int8_weights else None,
        "keras": {"file": str(run.model_path), "bytes": run.model_path.stat().st_size,
                  "predict_seconds": round(keras_seconds, 3)},
        "calibration": ({**calib.source, "source": "training tracks of run.json's split",
                         "normalization": {"mean": card.frontend.mean, "std": card.frontend.std}}
                        if calib is not None else None),
        "cv": cv,
        "evaluation": {**held.source, "keras_window_accuracy": keras_window,
                       "keras_track_accuracy": keras_track},
        "thresholds": {"min_agreement": config.min_agreement,
                       "max_track_accuracy_drop_points": config.max_track_accuracy_drop},
        "convert_seconds": {k: round(v, 2) for k, v in timings.items()},
        "files": [c.to_dict() for c in checks],
        "passed": all(c.passed for c in checks),
        "allow_degraded": allow_degraded,
    }


def _card_for(card, quantization: str, cv: dict | None = None):
    extra = {**card.extra, CV_KEY: cv} if cv else card.extra
    return dataclasses.replace(card, quantization=quantization, extra=extra,
                               package_version=card.package_version or __version__)


# ----------------------------------------------------------------------------- CV record

#: The card's ``extra`` key holding the cross-validation the bench quotes.
CV_KEY = "cv"
#: The test rooms of ``evaluate --cv --room`` whose figures a card keeps.
CV_ROOMS = DEFAULT_TEST_ROOMS
#: What the card keeps of an ``edge-genre evaluate --cv`` report (no per-fold details).
#: ``room_track_accuracy_*`` is the single room of reports before the physical rooms (a
#: near-field synthetic room): still read from older records, never written by evaluate now.
CV_FIELDS = ("k", "seed", "grouping", "n_tracks", "track_accuracy_mean", "track_accuracy_std",
             *(f"{room}_track_accuracy_{stat}" for room in CV_ROOMS for stat in ("mean", "std")),
             "room_track_accuracy_mean", "room_track_accuracy_std", "preset", "source")


def read_cv_record(path: str | Path, run_preset: str, cv_preset: str | None = None) -> dict:
    """``cv_summary`` of the JSON file ``edge-genre evaluate --cv K --preset NAME --out`` wrote."""
    from edge_genre.train.run_dir import read_json

    path = Path(path).expanduser()
    return cv_summary(read_json(path, f"--cv-record {path}", DataError), run_preset, cv_preset,
                      where=str(path))


def _grouping(text) -> str:
    text = str(text or "")
    if text.startswith("grouped by artist"):
        return "artist"
    if text.startswith("grouped by track"):
        return "track"
    return text or "unknown"


def _number(rec: dict, key: str, where: str, required: bool = True) -> float | None:
    value = rec.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise DataError(f"{where}: {key} is {value!r}, not a fraction (is it the output of "
                        "edge-genre evaluate --cv K --preset NAME --out FILE.json?)")
    return float(value)


def cv_summary(data, run_preset: str, cv_preset: str | None = None,
               where: str = "--cv-record") -> dict:
    """The card's ``extra["cv"]`` from an ``edge-genre evaluate --cv`` report: one preset's run
    (a single result, or the run of ``cv_preset`` / of ``run_preset`` among ``{"runs": [...]}``),
    reduced to ``CV_FIELDS``. DataError (one line, exit 2) for a record of another preset than the
    run's, a partial run (``--folds``) or anything that is not such a report. A preset named by
    a deprecated name (``presets.DEPRECATED_NAMES``, e.g. an older run's ``edge``) is the preset
    it now names."""
    from edge_genre.train.presets import canonical_name

    def preset_of(rec: dict) -> str:
        return canonical_name(str(rec.get("preset")), note=False)

    run_preset = canonical_name(run_preset, note=False)
    if cv_preset is not None:
        cv_preset = canonical_name(cv_preset, note=False)
    if isinstance(data, dict) and isinstance(data.get("runs"), list):
        runs = [r for r in data["runs"] if isinstance(r, dict)]
    elif isinstance(data, dict) and "track_accuracy_mean" in data:
        runs = [data]
    else:
        raise DataError(f"{where}: not the output of edge-genre evaluate --cv K --preset NAME "
                        "--out FILE.json (no track_accuracy_mean, no runs)")
    if cv_preset is not None and cv_preset != run_preset:
        raise DataError(f"--cv-preset {cv_preset}: the run's preset is {run_preset}; the "
                        "cross-validation of another preset is not this model's accuracy")
    want = cv_preset or run_preset
    if len(runs) > 1:
        found = [r for r in runs if preset_of(r) == want]
        if not found:
            have = ", ".join(str(r.get("preset")) for r in runs)
            raise DataError(f"{where}: no cross-validation of preset {want} in it (it has {have})")
        rec = found[0]
    elif runs:
        rec = runs[0]
    else:
        raise DataError(f"{where}: its runs list is empty")
    if preset_of(rec) != run_preset:
        raise DataError(f"{where}: a cross-validation of preset {rec.get('preset')}, but the run "
                        f"is preset {run_preset}; refusing to put another model's accuracy in "
                        "its card")
    k = rec.get("k")
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise DataError(f"{where}: k is {k!r}, not a fold count >= 2")
    folds_run = rec.get("folds_run", rec.get("track_accuracy_per_fold"))
    if isinstance(folds_run, list) and len(folds_run) != k:
        raise DataError(f"{where}: {len(folds_run)} of {k} folds were run (--folds); quote a "
                        "full cross-validation")
    n_tracks = rec.get("n_tracks")
    if isinstance(n_tracks, bool) or not isinstance(n_tracks, int) or n_tracks < k:
        raise DataError(f"{where}: n_tracks is {n_tracks!r}")
    out = {"k": k, "seed": int(rec.get("seed") or 0), "grouping": _grouping(rec.get("grouping")),
           "n_tracks": n_tracks,
           "track_accuracy_mean": _number(rec, "track_accuracy_mean", where),
           "track_accuracy_std": _number(rec, "track_accuracy_std", where)}
    rooms = []
    for room in CV_ROOMS + ("room",):
        mean = _number(rec, f"{room}_track_accuracy_mean", where, required=False)
        if mean is not None:
            rooms.append(room)
            out[f"{room}_track_accuracy_mean"] = mean
            out[f"{room}_track_accuracy_std"] = _number(rec, f"{room}_track_accuracy_std", where)
    out["preset"] = run_preset
    command = f"edge-genre evaluate --cv {k} --preset {run_preset}"
    if out["seed"]:
        command += f" --seed {out['seed']}"
    if rec.get("limit_per_genre"):
        command += f" --limit {rec['limit_per_genre']}"
    if rooms == ["room"]:
        command += " --room"
    elif rooms:
        command += " --room " + ",".join(rooms)
    name = Path(where).name if where != "--cv-record" else None
    out["source"] = command + (f" --out {name}" if name else "")
    return out
