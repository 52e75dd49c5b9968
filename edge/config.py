"""Settings that travel inside a model file: the front-end, the windowing and the model card.

One frozen dataclass per concern. Training builds them from a preset, export writes them into
the TFLite / ONNX file as JSON, and the runtime reads them back, so nothing is guessed on a device.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from edge_genre.errors import ModelError

#: Version of the metadata schema written into model files. Bump on incompatible change.
CARD_FORMAT = "edge-genre/1"


@dataclass(frozen=True)
class FrontendConfig:
    """A log-mel front-end, defined once for training and the edge runtime.

    The defaults are librosa's (``librosa.feature.melspectrogram`` then ``power_to_db``), which
    the ``paper`` preset uses unchanged.

    Parameters
    ----------
    sample_rate : audio rate in Hz that the model expects; input is resampled to it.
    n_fft : FFT size in samples.
    win_length : analysis window length (<= n_fft), zero-padded to n_fft in the centre.
    hop_length : samples between frames.
    n_mels : mel bands.
    fmin, fmax : the band's limits in Hz; ``fmax=None`` means sample_rate / 2.
    power : 2.0 for a power spectrogram, 1.0 for magnitude.
    mel_scale : "slaney" (librosa's default) or "htk".
    mel_norm : "slaney" (area normalisation, librosa's default) or None.
    center : pad ``n_fft // 2`` zeros at both ends of a window, as librosa does by default.
    scale : "db" for ``power_to_db`` or "log" for ``log(mel + log_offset)``.
    ref : dB reference, "max" (the window's peak is 0 dB) or a number.
    amin, top_db : power_to_db's floor and dynamic range (``top_db=None`` keeps all).
    log_offset : added before the natural log when ``scale == "log"``.
    resize : (height, width) to resize the (n_mels, frames) image to, bilinear, or None.
    mean, std : input normalisation applied last: ``(x - mean) / std``.
    """

    sample_rate: int = 22050
    n_fft: int = 2048
    win_length: int | None = None
    hop_length: int = 512
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float | None = None
    power: float = 2.0
    mel_scale: str = "slaney"
    mel_norm: str | None = "slaney"
    center: bool = True
    scale: str = "db"
    ref: float | str = "max"
    amin: float = 1e-10
    top_db: float | None = 80.0
    log_offset: float = 1e-3
    resize: tuple[int, int] | None = None
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            problems.append("sample_rate, n_fft, hop_length and n_mels must be positive")
        if self.win_length is not None and not 0 < self.win_length <= self.n_fft:
            problems.append("win_length must be in (0, n_fft]")
        if self.mel_scale not in ("slaney", "htk"):
            problems.append(f"mel_scale {self.mel_scale!r} is not 'slaney' or 'htk'")
        if self.mel_norm not in ("slaney", None):
            problems.append(f"mel_norm {self.mel_norm!r} is not 'slaney' or None")
        if self.scale not in ("db", "log"):
            problems.append(f"scale {self.scale!r} is not 'db' or 'log'")
        if isinstance(self.ref, str) and self.ref != "max":
            problems.append(f"ref {self.ref!r} is not 'max' or a number")
        if self.std <= 0:
            problems.append("std must be positive")
        top = self.fmax if self.fmax is not None else self.sample_rate / 2
        if not 0 <= self.fmin < top <= self.sample_rate / 2:
            problems.append("need 0 <= fmin < fmax <= sample_rate / 2")
        if problems:
            raise ModelError("unsupported front-end settings: " + "; ".join(problems))
        if self.resize is not None:
            object.__setattr__(self, "resize", tuple(int(v) for v in self.resize))

    @property
    def window_length(self) -> int:
        return self.win_length or self.n_fft

    @property
    def max_frequency(self) -> float:
        return self.fmax if self.fmax is not None else self.sample_rate / 2

    def n_frames(self, n_samples: int) -> int:
        """Frames in a window of ``n_samples`` samples."""
        if self.center:
            return 1 + n_samples // self.hop_length
        return 1 + (n_samples - self.n_fft) // self.hop_length

    def feature_shape(self, n_samples: int) -> tuple[int, int, int]:
        """Shape of the model input for one window: (height, width, 1)."""
        if self.resize is not None:
            return (self.resize[0], self.resize[1], 1)
        return (self.n_mels, self.n_frames(n_samples), 1)

    def with_normalization(self, mean: float, std: float) -> "FrontendConfig":
        return dataclasses.replace(self, mean=float(mean), std=float(std))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["resize"] is not None:
            d["resize"] = list(d["resize"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FrontendConfig":
        return _from_dict(cls, d, "front-end")


@dataclass(frozen=True)
class WindowConfig:
    """How a stream is cut into model windows.

    ``hop_seconds`` is rounded to a whole number of STFT hops (see ``hop_samples``) so that a
    streaming front-end can reuse the frames two windows share, and training cuts the same way.
    A track's last partial window is dropped; a track shorter than one window is zero-padded to one
    window when it holds at least ``min_fill`` of it, and refused otherwise. The rule itself is
    ``edge.windowing`` (``window_starts``, ``cut_windows``), which every package calls.
    """

    seconds: float = 4.0
    hop_seconds: float = 2.0
    min_fill: float = 0.5

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.hop_seconds <= 0:
            raise ModelError("window seconds and hop must be positive")
        if not 0 < self.min_fill <= 1:
            raise ModelError("min_fill must be in (0, 1]")

    def window_samples(self, frontend: FrontendConfig) -> int:
        return int(round(self.seconds * frontend.sample_rate))

    def hop_samples(self, frontend: FrontendConfig, hop_seconds: float | None = None) -> int:
        hop = self.hop_seconds if hop_seconds is None else hop_seconds
        frames = max(1, int(round(hop * frontend.sample_rate / frontend.hop_length)))
        return frames * frontend.hop_length

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "WindowConfig":
        return _from_dict(cls, d, "window")


@dataclass(frozen=True)
class ModelCard:
    """Everything the runtime needs to use a model file, embedded in the file itself."""

    labels: tuple[str, ...]
    frontend: FrontendConfig
    window: WindowConfig = field(default_factory=WindowConfig)
    preset: str = "custom"
    model_version: str = "0"
    package_version: str = ""
    input_shape: tuple[int, ...] = ()
    quantization: str = "fp32"  # "fp32", "int8" (full integer) or "int8-weights"
    extra: dict[str, Any] = field(default_factory=dict)
    format: str = CARD_FORMAT

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))
        if self.format != CARD_FORMAT:
            raise ModelError(f"model metadata format {self.format!r} is not supported "
                             f"(this edge-genre reads {CARD_FORMAT!r})")
        if len(self.labels) < 2:
            raise ModelError("model metadata lists fewer than two labels")

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["frontend"] = self.frontend.to_dict()
        d["window"] = self.window.to_dict()
        d["labels"] = list(self.labels)
        d["input_shape"] = list(self.input_shape)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "ModelCard":
        try:
            d = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelError(f"model metadata is not valid JSON ({exc})") from None
        if not isinstance(d, dict):
            raise ModelError("model metadata is not a JSON object")
        d = dict(d)
        try:
            d["frontend"] = FrontendConfig.from_dict(d["frontend"])
            d["window"] = WindowConfig.from_dict(d.get("window", {}))
        except KeyError as exc:
            raise ModelError(f"model metadata lacks {exc}") from None
        return _from_dict(cls, d, "model")


def _from_dict(cls, d: dict[str, Any], what: str):
    if not isinstance(d, dict):
        raise ModelError(f"{what} settings are not a JSON object")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ModelError(f"unsupported {what} settings: {', '.join(unknown)} "
                         "(made by a newer edge-genre?)")
    try:
        return cls(**d)
    except TypeError as exc:
        raise ModelError(f"bad {what} settings: {exc}") from None


@dataclass(frozen=True)
class ClassifierConfig:
    """How windows become decisions.

    Parameters
    ----------
    hop_seconds : seconds between window starts; None keeps the card's (2 s by default). Rounded
        to whole STFT hops so frames are shared between windows.
    smoothing : the smoothed decision is the mean probability of the last ``smoothing`` non-silent
        windows (1 = no smoothing). Silence clears it, so music after a pause starts afresh.
    silence_dbfs : windows with an RMS level below this are "no music" (not classified).
    max_batch : most windows of a track sent to the interpreter at once (``classify``,
        ``classify_file``). The probabilities do not depend on it; the interpreter's memory does
        (it keeps buffers sized for the largest batch it has run: ~4.5 MB a window for the
        default model), and throughput is flat above ~8.
    """

    hop_seconds: float | None = None
    smoothing: int = 3
    silence_dbfs: float = -60.0
    max_batch: int = 8

    def __post_init__(self) -> None:
        if self.smoothing < 1:
            raise ValueError("smoothing must be at least 1 window")
        if self.hop_seconds is not None and self.hop_seconds <= 0:
            raise ValueError("hop must be positive")
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1 window")
        if not math.isfinite(self.silence_dbfs):  # NaN would gate every window
            raise ValueError("silence_dbfs must be a finite level in dBFS")


@dataclass(frozen=True)
class PaceConfig:
    """``listen``'s start-up check that the model keeps up with the hop on this machine
    (``edge.pace``).

    Parameters
    ----------
    budget : share of the hop that one decision (the front-end of a hop's new audio and the model
        on one window) may take; beyond it ``listen`` says so once and names a lighter model.
        Half leaves the rest of the hop to capture, resampling and whatever else the machine runs.
    windows : decisions timed after one untimed warm-up; their median is compared.
    """

    budget: float = 0.5
    windows: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.budget <= 1 or self.windows < 1:
            raise ValueError("the pace budget must be in (0, 1] and at least 1 window timed")
