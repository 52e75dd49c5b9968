"""Keras -> ONNX fp32 (tf2onnx), static int8 (onnxruntime's QDQ quantisation) and weights-only
int8 (onnxruntime's dynamic quantisation).

tf2onnx needs an explicit input signature with Keras 3; the input is named ``features`` with a
free batch dimension. The int8 model is made from the fp32 one: onnxruntime's pre-processing
(shape inference and graph optimisation; symbolic shape inference is skipped because it needs
sympy and the shapes here are static), then ``quantize_static`` in QDQ format with int8
activations and int8 per-channel weights in 7-bit range (see ``ExportConfig.onnx_reduce_range``:
x86 kernels saturate otherwise), calibrated (min/max) on the same training windows as the TFLite
file. Its inputs and outputs stay float32.

The weights-only model stores Conv / Gemm / MatMul weights as int8 (symmetric, per output
channel) behind ``DequantizeLinear`` nodes and computes in float32: no calibration, float I/O.
Not ``quantize_dynamic``: its ConvInteger / MatMulInteger path also quantises activations
(per tensor, per call), and on the transfer preset's YAMNet body that agreed with Keras on only
54-59 % of held-out windows (any per_channel / reduce_range setting, onnxruntime 1.32);
quantising only MatMul / Gemm left the file at fp32 size.
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


def quantize_weights(fp32_model, min_elements: int = 64):
    """Weights-only int8 ``onnx.ModelProto`` of an fp32 ``onnx.ModelProto``: the weight of every
    Conv / Gemm / MatMul (an initializer with at least ``min_elements`` values) is stored as int8
    with a symmetric per-output-channel scale and restored by a ``DequantizeLinear`` node, so all
    arithmetic stays float32 (a quarter of the size, fp32 accuracy up to weight rounding)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(fp32_model)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    dq_nodes, done = [], {}
    for node in graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            continue
        name = node.input[1]
        init = inits.get(name)
        if init is None or init.data_type != onnx.TensorProto.FLOAT:
            continue
        w = numpy_helper.to_array(init)
        if w.ndim < 2 or w.size < min_elements:
            continue
        axis = _output_axis(node, w.ndim)
        if name not in done:
            if uses.get(name, 0) > 1 and _axis_conflict(graph, name, axis):
                continue  # shared with a node that needs another axis: leave it float
            other = tuple(i for i in range(w.ndim) if i != axis)
            scale = np.abs(w).max(axis=other) / 127.0
            scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
            shape = [1] * w.ndim
            shape[axis] = -1
            q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
            graph.initializer.remove(init)
            graph.initializer.extend([
                numpy_helper.from_array(q, name + "_int8"),
                numpy_helper.from_array(scale, name + "_scale"),
                numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), name + "_zero")])
            dq_nodes.append(helper.make_node(
                "DequantizeLinear", [name + "_int8", name + "_scale", name + "_zero"],
                [name + "_dequantized"], name=name + "_DequantizeLinear", axis=axis))
            done[name] = name + "_dequantized"
        node.input[1] = done[name]
    if not dq_nodes:
        raise ModelError("ONNX int8-weights: no Conv / Gemm / MatMul weights to quantise")
    nodes = dq_nodes + list(graph.node)  # initializers only in: topological order holds
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model


def _output_axis(node, ndim: int) -> int:
    """The weight axis of output channels: Conv (M, C/g, kh, kw) -> 0; Gemm B -> 0 if transB
    else 1; MatMul B (..., K, N) -> last."""
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return ndim - 1


def _axis_conflict(graph, name: str, axis: int) -> bool:
    for node in graph.node:
        if name in node.input[1:2] and node.op_type in ("Conv", "Gemm", "MatMul"):
            w_ndim = 4 if node.op_type == "Conv" else 2
            if _output_axis(node, w_ndim) != axis:
                return True
        elif name in node.input:
            return True  # used as data by some other op: keep it float
    return False


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
