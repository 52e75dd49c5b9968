"""Parameters and multiply-accumulates of an exported model, counted from its graph.

Nothing is typed in: the ops and tensor shapes are read from the .tflite / .onnx file itself, so
the figure is the one of the file that was timed (batch norm folded, quantised or not).

A MAC is one multiply and one add with a weight. Counted per inference of one input:

- convolution: output positions x output channels x (kernel area x input channels / groups)
- depthwise convolution: output positions x output channels x kernel area
- fully connected / MatMul / Gemm with a constant weight: output elements x input features

Pooling, activations, element-wise ops and resizes are not counted (a small share of the work).
Parameters are the elements of the constant weight and bias tensors of those ops (a quantised
weight counts once, followed through Dequantize / DequantizeLinear to its stored tensor).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from pathlib import Path

from edge_genre.errors import ModelError


@dataclass
class GraphCost:
    """What a model file costs per inference, and which ops contributed."""

    params: int
    macs: int
    ops: dict[str, int] = field(default_factory=dict)  # op type -> count of counted ops
    macs_by_op: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"params": self.params, "macs": self.macs, "ops": dict(self.ops),
                "macs_by_op": dict(self.macs_by_op)}


def count(path: str | Path) -> GraphCost:
    """Parameters and MACs of a .tflite or .onnx file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return count_tflite(path)
    if suffix == ".onnx":
        return count_onnx(path)
    raise ModelError(f"{path}: cannot count MACs of a {suffix or 'suffix-less'} file")


class _Tally:
    def __init__(self) -> None:
        self.macs = 0
        self.ops: dict[str, int] = {}
        self.macs_by_op: dict[str, int] = {}
        self.weights: dict[object, int] = {}  # weight tensor id -> elements

    def add(self, op: str, macs: int, weights: dict[object, int]) -> None:
        self.macs += int(macs)
        self.ops[op] = self.ops.get(op, 0) + 1
        self.macs_by_op[op] = self.macs_by_op.get(op, 0) + int(macs)
        self.weights.update(weights)

    def result(self, batch: int = 1) -> GraphCost:
        batch = max(1, int(batch))
        return GraphCost(sum(self.weights.values()), self.macs // batch, self.ops,
                         {k: v // batch for k, v in self.macs_by_op.items()})


# ----------------------------------------------------------------------------- TFLite

_TFLITE_COUNTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL")


def _tflite_interpreter(path: Path):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter, OpResolverType
        except ImportError:
            raise ModelError("counting TFLite MACs needs ai-edge-litert or tflite-runtime") from None
    # Without the default XNNPACK delegate, so the op list is the file's own, undelegated.
    return Interpreter(model_path=str(path), experimental_op_resolver_type=(
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))


def count_tflite(path: str | Path) -> GraphCost:
    it = _tflite_interpreter(Path(path))
    ops = it._get_ops_details()  # the interpreter's public op list (stable since TF 2.5)
    tensors = {t["index"]: t for t in it.get_tensor_details()}
    produced = {int(o): op for op in ops for o in op["outputs"]}
    inputs = {d["index"] for d in it.get_input_details()}

    def shape(i: int) -> tuple[int, ...]:
        return tuple(int(d) for d in tensors[i]["shape"])

    def stored(i: int) -> int | None:
        """The constant tensor behind ``i`` (through DEQUANTIZE), or None for an activation."""
        if i < 0:
            return None
        op = produced.get(i)
        if op is not None:
            if op["op_name"] == "DEQUANTIZE":
                return stored(int(op["inputs"][0]))
            return None
        return None if i in inputs else i

    tally = _Tally()
    for op in ops:
        name = op["op_name"]
        if name not in _TFLITE_COUNTED:
            continue
        ins = [int(i) for i in op["inputs"]]
        out = shape(int(op["outputs"][0]))
        weight = stored(ins[1]) if len(ins) > 1 else None
        if weight is None:  # activation x activation (attention-like): not a weight MAC
            continue
        w = shape(ins[1])
        if name == "CONV_2D":  # filter (out_ch, kh, kw, in_ch)
            macs = prod(out[:-1]) * out[-1] * w[1] * w[2] * w[3]
        elif name == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, out_ch)
            macs = prod(out[:-1]) * out[-1] * w[1] * w[2]
        elif name == "FULLY_CONNECTED":  # weights (units, in_features)
            macs = prod(out) * w[-1]
        else:  # BATCH_MATMUL with a constant right-hand side (.., K, N)
            macs = prod(out) * w[-2]
        weights = {weight: prod(shape(weight))}
        bias = stored(ins[2]) if len(ins) > 2 else None
        if bias is not None:
            weights[bias] = prod(shape(bias))
        tally.add(name, macs, weights)
    batch = min((shape(i)[0] for i in inputs if shape(i)), default=1)
    return tally.result(batch)


# ----------------------------------------------------------------------------- ONNX

# op -> (index of the weight input, index of the bias input or None)
_ONNX_COUNTED = {"Conv": (1, 2), "ConvInteger": (1, None), "QLinearConv": (3, 8),
                 "Gemm": (1, 2), "MatMul": (1, None), "MatMulInteger": (1, None),
                 "QLinearMatMul": (3, None)}


def count_onnx(path: str | Path) -> GraphCost:
    try:
        import onnx
        from onnx import shape_inference
    except ImportError:
        raise ModelError("counting ONNX MACs needs the onnx package (pip install onnx)") from None
    model = onnx.load(str(path))
    try:
        model = shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - keep whatever shapes the file already records
        pass
    graph = model.graph
    init = {t.name: tuple(int(d) for d in t.dims) for t in graph.initializer}
    constants = {}
    for node in graph.node:  # Constant nodes hold weights in some exporters
        if node.op_type == "Constant" and node.attribute:
            tensor = node.attribute[0].t
            constants[node.output[0]] = tuple(int(d) for d in tensor.dims)
    shapes: dict[str, tuple[int, ...]] = {}
    for vi in list(graph.value_info) + list(graph.output) + list(graph.input):
        dims = vi.type.tensor_type.shape.dim
        # A symbolic (batch) dimension counts as 1: MACs are per single input.
        shapes[vi.name] = tuple(int(d.dim_value) if d.HasField("dim_value") else 1 for d in dims)
    shapes.update(init)
    shapes.update(constants)
    produced = {o: n for n in graph.node for o in n.output}

    def stored(name: str) -> str | None:
        if not name:
            return None
        if name in init or name in constants:
            return name
        node = produced.get(name)
        if node is not None and node.op_type in ("DequantizeLinear", "Identity", "Cast",
                                                 "Transpose", "Reshape"):
            return stored(node.input[0])
        return None

    tally = _Tally()
    for node in graph.node:
        spec = _ONNX_COUNTED.get(node.op_type)
        if spec is None or len(node.input) <= spec[0]:
            continue
        w_in = node.input[spec[0]]
        weight = stored(w_in)
        out = shapes.get(node.output[0])
        w = shapes.get(w_in) or (shapes.get(weight) if weight else None)
        if weight is None or not out or not w:
            continue
        if node.op_type in ("Conv", "ConvInteger", "QLinearConv"):  # W (out, in/g, kh, kw)
            macs = prod(out[2:]) * out[1] * prod(w[1:]) * (out[0] if out else 1)
        elif node.op_type == "Gemm":
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            k = w[1] if trans_b else w[0]
            macs = prod(out) * k
        else:  # MatMul family: W (.., K, N)
            macs = prod(out) * (w[-2] if len(w) >= 2 else w[0])
        weights = {weight: prod(shapes.get(weight, w))}
        if spec[1] is not None and len(node.input) > spec[1]:
            bias = stored(node.input[spec[1]])
            if bias is not None:
                weights[bias] = prod(shapes.get(bias, ()))
        tally.add(node.op_type, macs, weights)
    return tally.result(1)
