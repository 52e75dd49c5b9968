"""YAMNet as a peer: its latency per 4 s of audio and its zero-shot GTZAN genre accuracy.

YAMNet (the model of the TensorFlow Lite Raspberry Pi audio example) takes 0.975 s frames of
15600 samples at 16 kHz and hops 0.48 s between frames; its TFLite file includes its own log-mel
front-end, so its per-frame time covers front-end and network. Covering one 4 s window takes
``frames_per_window(4.0)`` = 8 frames (the last one runs 0.2 s past the window, as YAMNet pads).

Zero-shot: AudioSet has a class for each GTZAN genre. A track's genre is the GTZAN genre whose
AudioSet class(es) score highest, scores averaged over all frames of the track; for a genre with
several classes (rock and its sub-genres) the highest of them counts. ``GENRE_CLASSES`` is the
mapping, and the report prints it.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from edge_genre.benchmarks.latency import LatencyStats, TimingConfig, time_calls
from edge_genre.errors import ModelError

SAMPLE_RATE = 16000
FRAME_SAMPLES = 15600  # 0.975 s
HOP_SAMPLES = 7680  # 0.48 s

#: GTZAN genre (folder name) -> AudioSet display names of YAMNet's classes. "Heavy metal" is a
#: child of "Rock music" in the AudioSet ontology: it goes to metal, the other rock children to rock.
GENRE_CLASSES = {
    "blues": ("Blues",),
    "classical": ("Classical music",),
    "country": ("Country",),
    "disco": ("Disco",),
    "hiphop": ("Hip hop music",),
    "jazz": ("Jazz",),
    "metal": ("Heavy metal",),
    "pop": ("Pop music",),
    "reggae": ("Reggae",),
    "rock": ("Rock music", "Punk rock", "Grunge", "Progressive rock", "Rock and roll",
             "Psychedelic rock"),
}


def frames_per_window(seconds: float) -> int:
    """YAMNet frames needed to cover ``seconds`` of audio at its 0.48 s hop."""
    n = int(round(seconds * SAMPLE_RATE))
    return 1 + max(0, math.ceil((n - FRAME_SAMPLES) / HOP_SAMPLES))


def class_map_path(model_path: str | Path) -> Path:
    """YAMNet's class names ship beside its model file (as in ../shared/peers/yamnet); the .tflite
    does not embed them, and edge-genre does not copy them."""
    beside = Path(model_path).with_name("yamnet_class_map.csv")
    if not beside.is_file():
        raise ModelError(f"{beside} not found: YAMNet's zero-shot mapping needs its class map "
                         "beside the model file")
    return beside


def class_names(model_path: str | Path) -> list[str]:
    with open(class_map_path(model_path), newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["display_name"] for r in sorted(rows, key=lambda r: int(r["index"]))]


def genre_indices(names: list[str], labels) -> dict[str, list[int]]:
    """GTZAN label -> indices of its AudioSet classes in YAMNet's output."""
    where = {n: i for i, n in enumerate(names)}
    out = {}
    for label in labels:
        classes = GENRE_CLASSES.get(label)
        if classes is None:
            raise ModelError(f"no AudioSet class is mapped to the genre {label!r}")
        missing = [c for c in classes if c not in where]
        if missing:
            raise ModelError(f"YAMNet's class map lacks {', '.join(missing)}")
        out[label] = [where[c] for c in classes]
    return out


def frame_signal(y: np.ndarray) -> np.ndarray:
    """(n, 15600) frames at a 0.48 s hop covering all of ``y`` (zero-padded at the end)."""
    n = frames_per_window(len(y) / SAMPLE_RATE)
    need = FRAME_SAMPLES + (n - 1) * HOP_SAMPLES
    y = np.pad(np.asarray(y, np.float32), (0, max(0, need - len(y))))
    return np.stack([y[i * HOP_SAMPLES:i * HOP_SAMPLES + FRAME_SAMPLES] for i in range(n)])


class Yamnet:
    """The YAMNet TFLite file in LiteRT (or tflite-runtime), one frame per call."""

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: no YAMNet model file")
        try:
            from ai_edge_litert.interpreter import Interpreter
            self.backend = "ai-edge-litert"
        except ImportError:
            try:
                from tflite_runtime.interpreter import Interpreter
                self.backend = "tflite-runtime"
            except ImportError:
                raise ModelError("the YAMNet peer needs ai-edge-litert or tflite-runtime") from None
        self._it = Interpreter(model_path=str(self.path), num_threads=threads)
        self._it.allocate_tensors()
        detail = self._it.get_input_details()[0]
        self._in, self._in_shape = detail["index"], tuple(detail["shape"])
        scores = [d for d in self._it.get_output_details() if int(np.prod(d["shape"])) == 521]
        if not scores:
            raise ModelError(f"{self.path}: no 521-class output (is this YAMNet?)")
        self._out = scores[0]["index"]

    def scores(self, frame: np.ndarray) -> np.ndarray:
        self._it.set_tensor(self._in, np.asarray(frame, np.float32).reshape(self._in_shape))
        self._it.invoke()
        return self._it.get_tensor(self._out).reshape(-1)

    def track_scores(self, y: np.ndarray) -> np.ndarray:
        """Mean class scores over all frames of a 16 kHz track."""
        return np.mean([self.scores(f) for f in frame_signal(y)], axis=0)


@dataclass
class YamnetLatency:
    frame: LatencyStats
    per_window: LatencyStats
    frames_per_window: int

    def to_dict(self) -> dict:
        return {"per_frame_ms": self.frame.to_dict(), "per_window_ms": self.per_window.to_dict(),
                "frames_per_window": self.frames_per_window}


def latency(model: Yamnet, y: np.ndarray, window_seconds: float,
            timing: TimingConfig = TimingConfig()) -> YamnetLatency:
    """Per-frame time, and the time of the frames that cover one window (run back to back)."""
    n = frames_per_window(window_seconds)
    frames = frame_signal(y[:int(round(window_seconds * SAMPLE_RATE))])[:n]
    frame_stats = time_calls(lambda: model.scores(frames[0]), timing)

    def window():
        for f in frames:
            model.scores(f)
    return YamnetLatency(frame_stats, time_calls(window, timing), n)


def zero_shot_predictions(model: Yamnet, tracks_audio: Iterable[np.ndarray], labels) -> np.ndarray:
    """Predicted label index per track (audio at 16 kHz, any iterable), by the genre mapping."""
    idx = genre_indices(class_names(model.path), labels)
    preds = []
    for y in tracks_audio:
        s = model.track_scores(y)
        preds.append(int(np.argmax([s[idx[label]].max() for label in labels])))
    return np.asarray(preds, dtype=int)


def mapping_table(model_path: str | Path) -> dict[str, list[str]]:
    """The mapping as the report states it (display names as found in the class map)."""
    return {g: list(c) for g, c in GENRE_CLASSES.items()}
