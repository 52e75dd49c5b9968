"""The parity check of a MediaPipe file: the waveform-in file against the spectrogram-in Keras
model fed by the numpy front-end, on real windows, including windows that straddle the regular
window grid and a zero-padded last window (what MediaPipe feeds at the end of a clip).

The file runs and is compared as ``export.check`` runs and compares every exported file
(``load_runner``, ``against_keras``, ``bound_problems``; ``train.scores.predict_batches``); its bounds are
``ExportConfig``'s ``mediapipe_*`` fields (fp32) and ``min_agreement`` (int8 weights).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_genre.edge.config import ModelCard
from edge_genre.errors import DataError
from edge_genre.export.check import against_keras, bound_problems, load_runner
from edge_genre.export.config import ExportConfig
from edge_genre.export.mediapipe_frontend import window_samples
from edge_genre.train.scores import predict_batches

log = logging.getLogger("edge_genre")


@dataclass
class ParityWindows:
    """Raw audio windows at the card's rate for the parity check, and what each one is."""

    audio: np.ndarray  # (n, window_samples) float32
    kind: np.ndarray  # (n,) "grid" | "boundary" | "end" | "padded"
    track: np.ndarray  # (n,) index into track_ids
    track_ids: list[str]

    def __len__(self) -> int:
        return len(self.audio)


def parity_windows(paths: list[Path], card: ModelCard, per_track: int = 3,
                   seed: int = 0) -> ParityWindows:
    """Real windows of each file: ``per_track`` windows on the runtime's grid (start = k * hop),
    one straddling the boundary between two grid windows (start half a hop plus an odd sample
    later), the track's last whole window (ending on its last sample) and its zero-padded tail
    (the partial window MediaPipe pads and feeds at the end of a clip)."""
    from edge_genre.edge import audio as audio_io
    from edge_genre.edge.windowing import window_starts

    n = window_samples(card)
    hop = card.window.hop_samples(card.frontend)
    rng = np.random.default_rng(seed)
    audio, kinds, owners, ids = [], [], [], []
    for path in paths:
        y = audio_io.load(path, card.frontend.sample_rate)
        if len(y) < 2 * n:
            log.warning("parity: %s is shorter than two windows; skipped", path)
            continue
        starts = window_starts(len(y), card.frontend, card.window)
        grid = sorted(rng.choice(starts, size=min(per_track, len(starts)), replace=False))
        picks = [(int(s), "grid") for s in grid]
        mid = int(rng.integers(0, len(starts) - 1))
        picks.append((starts[mid] + hop // 2 + 1, "boundary"))
        picks.append((len(y) - n, "end"))
        for s, kind in picks:
            audio.append(y[s:s + n])
            kinds.append(kind)
            owners.append(len(ids))
        tail = len(y) - (len(y) // n) * n  # MediaPipe's last, partial window
        if tail == 0:
            tail = n // 3
        audio.append(np.pad(y[len(y) - tail:], (0, n - tail)))
        kinds.append("padded")
        owners.append(len(ids))
        ids.append(Path(path).stem)
    if not audio:
        raise DataError("parity: no usable audio files")
    return ParityWindows(np.stack(audio).astype(np.float32), np.array(kinds),
                         np.array(owners), ids)


def reference_probs(model, card: ModelCard, audio: np.ndarray, batch: int = 16) -> np.ndarray:
    """The spectrogram-in Keras model fed by the numpy front-end (``features_batch``)."""
    from edge_genre.edge.frontend import features_batch

    return predict_batches(lambda a: model.predict(features_batch(a, card.frontend), verbose=0),
                           audio, batch, len(card.labels))


def parity(path: str | Path, model, card: ModelCard, windows: ParityWindows,
           quantization: str = "fp32", reference: np.ndarray | None = None,
           config: ExportConfig | None = None) -> dict:
    """The waveform-in file against the spectrogram-in Keras model + numpy front-end on the same
    windows: top-1 agreement and largest probability difference, overall and per window kind,
    and whether they hold the bounds for ``quantization``."""
    config = config or ExportConfig()
    runner = load_runner(Path(path), "tflite")  # the edge runtime: one window per invoke
    ref = reference if reference is not None else reference_probs(model, card, windows.audio)
    agree, diff = against_keras(predict_batches(runner.predict, windows.audio,
                                                config.check_batch), ref)
    max_diff, min_agree = ((config.mediapipe_max_prob_diff, config.mediapipe_min_agreement)
                           if quantization == "fp32" else (None, config.min_agreement))
    kinds = {}
    for kind in dict.fromkeys(windows.kind.tolist()):
        m = windows.kind == kind
        kinds[kind] = {"windows": int(m.sum()), "agreement": float(agree[m].mean()),
                       "max_prob_diff": float(diff[m].max())}
    result = {"file": Path(path).name, "quantization": quantization,
              "bytes": Path(path).stat().st_size, "windows": len(windows),
              "tracks": len(windows.track_ids), "agreement": float(agree.mean()),
              "max_prob_diff": float(diff.max()), "mean_prob_diff": float(diff.mean()),
              "by_kind": kinds,
              "bounds": {"min_agreement": min_agree, "max_prob_diff": max_diff}}
    problems = bound_problems(result["agreement"], min_agree, result["max_prob_diff"], max_diff)
    result["passed"] = not problems
    result["problems"] = problems
    return result


def format_parity(report: dict) -> str:
    """The parity report as a few plain-text lines."""
    lines = [f"waveform-in file vs spectrogram-in Keras + numpy front-end on "
             f"{report['windows']} windows of {report['tracks']} tracks "
             f"({report['source']})"]
    for f in report["files"]:
        kinds = ", ".join(f"{k} {v['agreement']:.0%}/{v['max_prob_diff']:.1e}"
                          for k, v in f["by_kind"].items())
        bound = f["bounds"]["max_prob_diff"]
        lines.append(f"  {f['file']}: {f['bytes'] / 1e6:.2f} MB, agreement "
                     f"{f['agreement']:.1%} (>= {f['bounds']['min_agreement']:.0%}), max prob "
                     f"diff {f['max_prob_diff']:.1e}"
                     + (f" (<= {bound:g})" if bound is not None else "")
                     + f" {'ok' if f['passed'] else 'FAILED'}; per window kind "
                     f"(agreement / max diff): {kinds}")
    return "\n".join(lines)
