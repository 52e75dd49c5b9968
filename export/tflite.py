"""Keras -> TFLite: fp32, full-integer int8, and weights-only int8 (dynamic range).

Keras 3's ``TFLiteConverter.from_keras_model`` fails, so the model goes through
``model.export()`` to a SavedModel and ``from_saved_model``. The int8 file is full integer:
int8 weights and activations and only int8 builtin ops (conversion fails rather than leaving a
float op behind), calibrated on real training windows; its I/O type is
``ExportConfig.tflite_int8_io`` (int8 by default: the runtime quantises the normalised features
with the input tensor's scale / zero-point and dequantises the output). The weights-only file
(``Optimize.DEFAULT`` without a representative dataset) stores int8 weights and keeps float
activations and float I/O; LiteRT's hybrid kernels quantise activations per call at run time.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np

from edge_genre.errors import ModelError


def saved_model(model, folder: Path) -> Path:
    """Export ``model`` as a SavedModel under ``folder`` (the converter's input)."""
    out = Path(folder) / "saved_model"
    with contextlib.redirect_stdout(io.StringIO()):  # model.export prints a signature summary
        model.export(str(out), format="tf_saved_model", verbose=False)
    return out


def convert(saved_model_dir: Path, calibration: np.ndarray | None = None,
            io_type: str = "int8", weights_only: bool = False) -> bytes:
    """TFLite flatbuffer of a SavedModel: fp32 when ``calibration`` is None, else full-integer
    int8 calibrated on ``calibration`` ((n, H, W, 1) normalised float32 windows); with
    ``weights_only`` (no ``calibration``), int8 weights with float activations and I/O."""
    import tensorflow as tf

    if weights_only and calibration is not None:
        raise ValueError("weights-only int8 takes no calibration windows")
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    if weights_only:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif calibration is not None:
        if len(calibration) == 0:
            raise ModelError("int8 conversion needs at least one calibration window")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([w[None].astype(np.float32)]
                                                    for w in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io_type == "int8":
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    try:
        return converter.convert()
    except Exception as exc:  # the converter's errors are long MLIR dumps: keep the first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "int8" if calibration is not None else "int8-weights" if weights_only else "fp32"
        raise ModelError(f"TFLite {kind} conversion failed: {first}") from None


def to_tflite(model, calibration: np.ndarray | None = None, io_type: str = "int8",
              workdir: Path | None = None, weights_only: bool = False) -> bytes:
    """Convenience: Keras model -> TFLite bytes through a temporary SavedModel."""
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        return convert(saved_model(model, Path(tmp)), calibration, io_type, weights_only)
