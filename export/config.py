"""Export settings: one frozen dataclass, so no threshold or size is a scattered literal."""
from __future__ import annotations

from dataclasses import dataclass

#: Formats ``export`` can write, in the order it writes them.
FORMATS = ("tflite", "onnx")

#: Card ``quantization`` value -> file-name suffix, in the order files are written.
#: "int8": full integer (int8 weights and activations, calibrated). "int8-weights": dynamic-range
#: quantisation (int8 weights, float activations and float I/O, as YAMNet's own TFLite file):
#: a quarter of the fp32 size without per-tensor activation ranges, which some bodies (the
#: YAMNet MobileNet of the "transfer" preset) do not survive.
QUANTIZATIONS = {"fp32": "fp32", "int8": "int8", "int8-weights": "int8w"}


@dataclass(frozen=True)
class ExportConfig:
    """How files are converted, calibrated and checked.

    Parameters
    ----------
    calibration_windows : training windows in the representative set (int8 only). A few hundred
        cover the activation ranges of every genre; more only costs conversion time.
    seed : which training windows are drawn for calibration.
    tflite_int8_io : "int8" (the file takes and returns int8 tensors: integer-only end to end,
        what microcontrollers and integer accelerators need; the runtime quantises the input with
        the file's scale / zero-point) or "float32" (a quantize / dequantize op at each end).
    onnx_opset : ONNX opset tf2onnx writes (17: onnxruntime >= 1.11 runs it everywhere).
    onnx_per_channel : per-channel weight scales in the QDQ and weights-only ONNX models (closer
        to fp32 for convs).
    onnx_reduce_range : 7-bit weights in the QDQ and weights-only ONNX models. onnxruntime's x86
        AVX2 / AVX-512 int8 kernels multiply with VPMADDUBSW, whose 16-bit sums saturate with full-range weights:
        measured on the export tests' model, S8S8 without it agreed with Keras on 59% of held-out
        windows on x86 while the same file's un-fused reference agreed on 96%; with it, 95%
        on both paths. ARM (the Pi) has no such problem, but one file must be right everywhere.
    max_track_accuracy_drop : points of held-out track accuracy an exported file may lose against
        the Keras model before export fails.
    min_agreement : fraction of held-out windows whose top-1 label must match Keras.
    mediapipe_max_prob_diff : the fp32 MediaPipe (waveform-in) file's largest probability
        difference from the spectrogram-in Keras model fed by the numpy front-end: the in-graph
        front-end is float32 against numpy's float64 (about 1e-5 in normalised log-mel units,
        1e-5 in probability, measured). Its ``-int8w`` file has the bound every ``-int8w`` file
        has (``min_agreement``; the difference is reported, not bounded, as there): the
        front-end stays float, so it is as close to Keras as the network's own int8-weights file.
    mediapipe_min_agreement : fraction of parity windows whose top-1 label the fp32 MediaPipe file
        must share with that Keras model.
    check_batch : windows per interpreter call in the check.
    training_check_windows : when the run has no held-out (test) tracks (a model trained on
        every track), the check runs on this many training windows drawn with ``seed + 1``
        instead; the report labels it so (agreement with Keras is meaningful there, accuracy
        is not: the model has seen those tracks).
    """

    calibration_windows: int = 300
    seed: int = 0
    tflite_int8_io: str = "int8"
    onnx_opset: int = 17
    onnx_per_channel: bool = True
    onnx_reduce_range: bool = True
    max_track_accuracy_drop: float = 2.0
    min_agreement: float = 0.95
    mediapipe_max_prob_diff: float = 1e-3
    mediapipe_min_agreement: float = 1.0
    check_batch: int = 32
    training_check_windows: int = 400

    def __post_init__(self) -> None:
        if self.calibration_windows < 1:
            raise ValueError("calibration_windows must be at least 1")
        if self.training_check_windows < 1:
            raise ValueError("training_check_windows must be at least 1")
        if self.tflite_int8_io not in ("int8", "float32"):
            raise ValueError("tflite_int8_io must be 'int8' or 'float32'")
