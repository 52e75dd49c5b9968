"""Keras -> ONNX fp32 (tf2onnx), static int8 (onnxruntime's QDQ quantisation) and weights-only
int8 (onnxruntime's dynamic quantisation).

tf2onnx needs an explicit input signature with Keras 3; the input is named ``features`` with a
free batch dimension. The int8 model is made from the fp32 one: onnxruntime's pre-processing
(shape inference and graph optimisation; symbolic shape inference is skipped because it needs
sympy and the shapes here are static), then ``quantize_static`` in QDQ format with int8
activations and int8 per-channel weights in 7-bit range (see ``ExportConfig.onnx_reduce_range``:
x86 kernels saturate otherwise), calibrated (min/max) on the same training windows as the TFLite
file. Its inputs and outputs stay float32.

The weights-only model is ``quantize_dynamic``: int8 weights of Conv / MatMul / Gemm
(ConvInteger / MatMulInteger), activations quantised per call at run time
(DynamicQuantizeLinear), float I/O, no calibration. onnxruntime's CPU provider runs ConvInteger
with int8 weights (checked with onnxruntime 1.32, depthwise included).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from edge_genre.errors import ModelError

INPUT_NAME = "features"


def to_onnx(model, input_shape: tuple[int, ...], opset: int = 17):
    """``onnx.ModelProto`` of a Keras model taking (batch, *input_shape) float32."""
    import tensorflow as tf
    import tf2onnx

    spec = [tf.TensorSpec((None, *input_shape), tf.float32, name=INPUT_NAME)]
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"ONNX conversion failed: {first}") from None
    return proto


class _Reader:
    """onnxruntime CalibrationDataReader over an array of windows, one window per call."""

    def __init__(self, name: str, windows: np.ndarray):
        self._name, self._windows, self._i = name, windows, 0

    def get_next(self):
        if self._i >= len(self._windows):
            return None
        self._i += 1
        return {self._name: self._windows[self._i - 1][None].astype(np.float32)}

    def rewind(self):
        self._i = 0


def _carry_metadata(model, fp32_model):
    # quantisation keeps metadata_props of its input, but pre-processing may not: carry them.
    have = {p.key for p in model.metadata_props}
    for prop in fp32_model.metadata_props:
        if prop.key not in have:
            model.metadata_props.add(key=prop.key, value=prop.value)
    return model


def quantize_weights(fp32_model, per_channel: bool = True, reduce_range: bool = True):
    """Weights-only (dynamic) int8 ``onnx.ModelProto`` of an fp32 ``onnx.ModelProto``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8w.onnx"))
        onnx.save(fp32_model, str(src))
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        try:
            quantize_dynamic(str(pre), str(out), weight_type=QuantType.QInt8,
                             per_channel=per_channel, reduce_range=reduce_range)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"ONNX int8-weights quantisation failed: {first}") from None
        model = onnx.load(str(out))
    return _carry_metadata(model, fp32_model)


def quantize(fp32_model, calibration: np.ndarray, per_channel: bool = True,
             reduce_range: bool = True):
    """Static int8 QDQ ``onnx.ModelProto`` of an fp32 ``onnx.ModelProto``."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(calibration) == 0:
        raise ModelError("int8 conversion needs at least one calibration window")
    reader_cls = type("WindowReader", (_Reader, CalibrationDataReader), {})
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(fp32_model, str(src))
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        name = fp32_model.graph.input[0].name
        try:
            quantize_static(str(pre), str(out), reader_cls(name, calibration),
                            quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8, per_channel=per_channel,
                            reduce_range=reduce_range)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"ONNX int8 quantisation failed: {first}") from None
        model = onnx.load(str(out))
    return _carry_metadata(model, fp32_model)
