"""Does MediaPipe's own AudioClassifier say what ``edge-genre predict`` says?

Runs a waveform-in file made by ``edge-genre export RUN --mediapipe`` through MediaPipe Tasks'
Python ``AudioClassifier`` (the client Android, iOS and web apps use; it resamples and cuts 4 s
windows back to back itself) on every excerpt of a dataset, at the files' own rate and resampled
to 44.1 kHz, and compares its genre per track (the mean of its per-window scores) with
``Classifier.classify`` on the spectrogram-in file of the same run (what ``predict`` does: the
numpy front-end, 4 s windows every 2 s)::

    python -m edge_genre.benchmarks.mediapipe_agreement \\
        --model exports/default-mp/default-mediapipe.tflite \\
        --reference edge_genre/models/default-fp32.tflite

Needs ``pip install 'edge-genre[mobile]'``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from edge_genre.edge.windowing import track_mean

REPO_PARENT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = (Path(os.environ.get("EDGE_GENRE_SHARED", REPO_PARENT / "shared"))
                / "data" / "gtzan-mini" / "genres")


def track_scores(classifier, audio_data_cls, y: np.ndarray, rate: int, n_labels: int):
    """MediaPipe's per-window scores of one clip averaged over its windows (``track_mean``, the
    runtime's track rule), and the windows."""
    results = classifier.classify(audio_data_cls.create_from_array(y.astype(np.float64), rate))
    scores = np.zeros((len(results), n_labels))
    for i, r in enumerate(results):
        for c in r.classifications[0].categories:
            scores[i, c.index] = c.score
    return track_mean(scores), len(results)


def agreement(model: Path, reference: Path, data: Path, rates=(None, 44100)) -> dict:
    from mediapipe.tasks.python import audio as mp_audio
    from mediapipe.tasks.python.components.containers.audio_data import AudioData
    from mediapipe.tasks.python.core.base_options import BaseOptions

    from edge_genre.edge import audio as audio_io
    from edge_genre.edge.classifier import Classifier
    from edge_genre.edge.resample import resample
    from edge_genre.edge.walk import walk

    predict = Classifier(reference)
    labels = list(predict.card.labels)
    files = [Path(p) for p in walk([data], suffixes=(".wav", ".au"))]  # sorted, hidden names left out
    options = mp_audio.AudioClassifierOptions(
        base_options=BaseOptions(model_asset_path=str(model)), max_results=-1)
    rows = []
    with mp_audio.AudioClassifier.create_from_options(options) as classifier:
        for path in files:
            clip = audio_io.read(path)
            y0, r0 = audio_io.to_mono(clip.samples), clip.sample_rate
            for rate in rates:
                rate = rate or r0
                y = y0 if rate == r0 else resample(y0, r0, rate)
                mp, _ = track_scores(classifier, AudioData, y, rate, len(labels))
                ref = predict.classify(y, rate)
                rows.append({"file": path.name, "rate": rate, "mediapipe": labels[int(mp.argmax())],
                             "predict": ref.label,
                             "max_prob_diff": float(np.abs(mp - ref.probs).max())})
    out = {"model": str(model), "reference": str(reference), "tracks": len(files), "by_rate": {}}
    for rate in sorted({r["rate"] for r in rows}):
        mine = [r for r in rows if r["rate"] == rate]
        out["by_rate"][str(rate)] = {
            "tracks": len(mine),
            "agreement": float(np.mean([r["mediapipe"] == r["predict"] for r in mine])),
            "max_prob_diff": max(r["max_prob_diff"] for r in mine),
            "mean_prob_diff": float(np.mean([r["max_prob_diff"] for r in mine])),
            "disagree": [f"{r['file']}: MediaPipe {r['mediapipe']}, predict {r['predict']}"
                         for r in mine if r["mediapipe"] != r["predict"]]}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_genre.benchmarks.mediapipe_agreement",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the waveform-in file (export --mediapipe)")
    p.add_argument("--reference", required=True, help="the spectrogram-in file of the same run")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset folder (default ../shared)")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = p.parse_args(argv)
    try:
        result = agreement(Path(args.model), Path(args.reference), Path(args.data))
    except ImportError as exc:
        print(f"mediapipe_agreement: needs pip install 'edge-genre[mobile]' ({exc})", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    for rate, r in result["by_rate"].items():
        print(f"{rate} Hz: {r['agreement']:.1%} of {r['tracks']} tracks agree; track probability "
              f"difference max {r['max_prob_diff']:.3f}, mean {r['mean_prob_diff']:.3f}")
        for line in r["disagree"]:
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
