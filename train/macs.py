"""Multiply-accumulates and parameters of a Keras model, counted from its graph.

A MAC is one multiply and one add of a weight: what a convolution or Dense layer costs per
inference. Counted per single input (batch 1):

- Conv1D/Conv2D: out_positions * out_channels * (kernel area * in_channels / groups)
- DepthwiseConv2D: out_positions * in_channels * depth_multiplier * kernel area
- SeparableConv2D: its depthwise part plus out_positions * (in * depth_multiplier) * out
- Dense: positions (all axes but the last) * in_features * units
- BatchNormalization: 0 (it folds into the preceding convolution at export); its parameters are
  counted, and reported apart as ``bn_params``.

Biases, activations and pooling are not MACs (they are additions/comparisons, a small fraction).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod


@dataclass(frozen=True)
class LayerCost:
    name: str
    kind: str
    output_shape: tuple
    params: int
    macs: int


def _shape(tensor) -> tuple:
    return tuple(int(d) for d in tensor.shape[1:])


def _layer_macs(layer) -> int:
    kind = type(layer).__name__
    if kind in ("Conv1D", "Conv2D", "Conv3D"):
        out = _shape(layer.output)
        in_ch = int(layer.input.shape[-1])
        groups = getattr(layer, "groups", 1) or 1
        return prod(out[:-1]) * out[-1] * prod(layer.kernel_size) * in_ch // groups
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D"):
        out = _shape(layer.output)
        return prod(out[:-1]) * out[-1] * prod(layer.kernel_size)
    if kind in ("SeparableConv1D", "SeparableConv2D"):
        out = _shape(layer.output)
        in_ch = int(layer.input.shape[-1])
        mid = in_ch * layer.depth_multiplier
        return prod(out[:-1]) * (mid * prod(layer.kernel_size) + mid * out[-1])
    if kind == "Dense":
        inp = _shape(layer.input)
        return prod(inp[:-1]) * inp[-1] * int(layer.units)
    return 0


def _flat_layers(model):
    """Layers of a model, nested models expanded in place."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers and type(layer).__name__ in (
                "Functional", "Sequential", "Model"):
            yield from _flat_layers(layer)
        else:
            yield layer


def layer_costs(model) -> list[LayerCost]:
    """One row per layer (nested models expanded): name, kind, output shape, params, MACs."""
    rows = []
    for layer in _flat_layers(model):
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        try:
            out = _shape(layer.output)
        except (AttributeError, ValueError):
            out = ()
        rows.append(LayerCost(layer.name, kind, out, int(layer.count_params()),
                              int(_layer_macs(layer))))
    return rows


def count(model) -> tuple[int, int]:
    """(MACs per input, parameters) of a built Keras model."""
    rows = layer_costs(model)
    return sum(r.macs for r in rows), sum(r.params for r in rows)


def bn_params(model) -> int:
    """Parameters in batch-norm layers (they fold away at export)."""
    return sum(r.params for r in layer_costs(model) if r.kind == "BatchNormalization")


def format_table(model) -> str:
    """A layer table with totals, for ``edge-genre summary``."""
    rows = layer_costs(model)
    name_w = max([len(r.name) for r in rows] + [5])
    kind_w = max([len(r.kind) for r in rows] + [4])
    lines = [f"{'layer':<{name_w}}  {'kind':<{kind_w}}  {'output':<16}  {'params':>10}  "
             f"{'MACs':>14}"]
    for r in rows:
        shape = "x".join(str(d) for d in r.output_shape)
        lines.append(f"{r.name:<{name_w}}  {r.kind:<{kind_w}}  {shape:<16}  {r.params:>10,}  "
                     f"{r.macs:>14,}")
    macs, params = sum(r.macs for r in rows), sum(r.params for r in rows)
    lines.append(f"{'total':<{name_w}}  {'':<{kind_w}}  {'':<16}  {params:>10,}  {macs:>14,}")
    return "\n".join(lines)
