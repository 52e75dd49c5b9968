"""YAMNet (Google, TensorFlow Models, Apache-2.0) ported to Keras 3, weights read from its TFLite file.

YAMNet is a MobileNet-v1 over 64-band log-mel patches: one 3x3 stride-2 convolution with 32
channels, then 13 depthwise-separable blocks up to 1024 channels, global average pooling and a
521-way sigmoid layer (AudioSet). The TFLite file the Raspberry Pi audio example uses holds all of
it, with batch norm folded into the convolutions' biases (so the port has biased convolutions and
plain ReLU, no batch norm) and most kernels stored as int8 with per-channel scales (dequantised
here, so the port's float weights are exactly the file's weights).

The port is fully convolutional: it takes a (frames, 64, 1) log-mel image of any length, so one
pass covers a whole 4 s window instead of YAMNet's 0.96 s patches. ``yamnet_frontend`` is the
front-end (in ``edge.frontend`` terms) that reproduces YAMNet's log-mel.

Nothing of the TFLite file is shipped: weights are read from it at training time
(``../shared/peers/yamnet/yamnet.tflite``), and a trained model carries its own copy (see
``edge_genre/models/NOTICE-yamnet.md``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_genre.edge.config import FrontendConfig
from edge_genre.errors import ModelError

#: Name of the embedding tensor in the TFLite file (the 1024-d global average pool).
EMBEDDING_TENSOR = "yamnet_frames/global_average_pooling2d/Mean"
#: Name of the log-mel patch output of the TFLite file.
LOG_MEL_TENSOR = "Identity_1"
PATCH_FRAMES = 96
N_MELS = 64
EMBEDDING_SIZE = 1024
N_CLASSES = 521

#: (kind, stride, output channels) of YAMNet's 14 layers ("conv" = 3x3 conv, "sep" = 3x3
#: depthwise + 1x1 pointwise), as in TensorFlow Models' research/audioset/yamnet/yamnet.py.
LAYERS = (("conv", 2, 32), ("sep", 1, 64), ("sep", 2, 128), ("sep", 1, 128),
          ("sep", 2, 256), ("sep", 1, 256), ("sep", 2, 512), ("sep", 1, 512),
          ("sep", 1, 512), ("sep", 1, 512), ("sep", 1, 512), ("sep", 1, 512),
          ("sep", 2, 1024), ("sep", 1, 1024))


def yamnet_frontend() -> FrontendConfig:
    """YAMNet's log-mel in ``edge.frontend`` terms: 16 kHz, 25 ms Hann window (400 samples) in a
    512-point FFT, 10 ms hop, magnitude (not power), 64 HTK mel bands 125-7500 Hz without area
    normalisation, ``log(mel + 0.001)``, no centre padding, no input normalisation.

    Two documented differences from YAMNet's own TensorFlow front-end: its mel matrix
    (``tf.signal.linear_to_mel_weight_matrix``) draws the triangles in mel rather than in Hz, and
    its 400-sample frame starts where ours starts 56 samples earlier (ours is centred in the 512
    FFT, librosa-style). ``tests/train/test_yamnet.py`` bounds the effect on the log-mel and the
    embedding.
    """
    return FrontendConfig(sample_rate=16000, n_fft=512, win_length=400, hop_length=160,
                          n_mels=N_MELS, fmin=125.0, fmax=7500.0, power=1.0, mel_scale="htk",
                          mel_norm=None, center=False, scale="log", log_offset=0.001,
                          top_db=None, mean=0.0, std=1.0)


@dataclass
class YamnetWeights:
    """Float weights of YAMNet, in Keras layouts.

    ``layers[i]`` is a dict for LAYERS[i]: "conv" layers have "kernel" (3, 3, in, out) and "bias";
    "sep" layers have "dw_kernel" (3, 3, C, 1), "dw_bias", "pw_kernel" (1, 1, C, out), "pw_bias".
    ``logits_kernel`` (1024, 521) and ``logits_bias`` (521,) are the AudioSet classifier.
    """

    layers: list[dict[str, np.ndarray]]
    logits_kernel: np.ndarray
    logits_bias: np.ndarray


def _interpreter(path: Path, preserve_all: bool = False, delegates: bool = True):
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # pragma: no cover - TF's copy as a fallback
        import tensorflow as tf
        Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    kwargs = {}
    if not delegates:
        kwargs["experimental_op_resolver_type"] = \
            OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "preserve_all_tensors is for debugging"
        it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=preserve_all,
                         **kwargs)
    it.allocate_tensors()
    return it


def _dequantize(detail: dict, value: np.ndarray) -> np.ndarray:
    """Float value of a (possibly int8, per-channel quantised) constant tensor."""
    if value.dtype == np.float32:
        return value.astype(np.float32)
    q = detail["quantization_parameters"]
    scales, zeros = np.asarray(q["scales"], np.float64), np.asarray(q["zero_points"], np.float64)
    if scales.size == 0:
        raise ModelError(f"tensor {detail['name']} is {value.dtype} without quantisation scales")
    shape = [1] * value.ndim
    if scales.size > 1:
        shape[q["quantized_dimension"]] = -1
    return ((value.astype(np.float64) - zeros.reshape(shape)) * scales.reshape(shape)
            ).astype(np.float32)


def read_tflite_weights(path: str | Path) -> YamnetWeights:
    """Read YAMNet's weights from its TFLite file, walking the graph's convolutions in order.

    Raises ModelError when the file does not have YAMNet's 27 convolutions and final dense layer.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"YAMNet TFLite file {path} not found")
    it = _interpreter(path)
    details = {d["index"]: d for d in it.get_tensor_details()}
    # Weight tensors feeding a DEQUANTIZE op are read through it (the op's input is the constant).
    dequant_src = {}
    ops = [op for op in it._get_ops_details() if op["op_name"] != "DELEGATE"]
    for op in ops:
        if op["op_name"] == "DEQUANTIZE":
            dequant_src[int(op["outputs"][0])] = int(op["inputs"][0])

    def const(index: int) -> np.ndarray:
        index = dequant_src.get(int(index), int(index))
        return _dequantize(details[index], it.get_tensor(index))

    convs = [op for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    dense = [op for op in ops if op["op_name"] == "FULLY_CONNECTED"]
    expected = sum(1 if kind == "conv" else 2 for kind, _, _ in LAYERS)
    if len(convs) != expected or not dense:
        raise ModelError(f"{path} does not look like YAMNet ({len(convs)} convolutions, "
                         f"expected {expected})")
    layers, k = [], 0
    for kind, _, _ in LAYERS:
        if kind == "conv":
            w, b = const(convs[k]["inputs"][1]), const(convs[k]["inputs"][2])
            layers.append({"kernel": w.transpose(1, 2, 3, 0), "bias": b})  # OHWI -> HWIO
            k += 1
        else:
            dw, dwb = const(convs[k]["inputs"][1]), const(convs[k]["inputs"][2])
            pw, pwb = const(convs[k + 1]["inputs"][1]), const(convs[k + 1]["inputs"][2])
            layers.append({"dw_kernel": dw[0][..., None],  # (1, H, W, C) -> (H, W, C, 1)
                           "dw_bias": dwb,
                           "pw_kernel": pw.transpose(1, 2, 3, 0), "pw_bias": pwb})
            k += 2
    logits = dense[-1]
    return YamnetWeights(layers, const(logits["inputs"][1]).T.copy(),
                         const(logits["inputs"][2]))


def save_weights(weights: YamnetWeights, path: str | Path, dtype=np.float32) -> Path:
    """Write the weights to a compressed ``.npz`` (keys ``layer{i}/{param}``, 1-based, and
    ``logits/kernel``, ``logits/bias``). ``read_weights`` reads it back as float32."""
    arrays = {f"layer{i + 1}/{k}": np.asarray(v, dtype)
              for i, layer in enumerate(weights.layers) for k, v in layer.items()}
    arrays["logits/kernel"] = np.asarray(weights.logits_kernel, dtype)
    arrays["logits/bias"] = np.asarray(weights.logits_bias, dtype)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
        np.savez_compressed(f, **arrays)
    return path


def read_weights(path: str | Path) -> YamnetWeights:
    """YAMNet's weights from its TFLite file or from an ``.npz`` written by ``save_weights`` (a
    copy trained further, e.g. ``robust.py``'s). ModelError when missing or not YAMNet's."""
    path = Path(path)
    if path.suffix != ".npz":
        return read_tflite_weights(path)
    try:
        with np.load(path) as z:
            arrays = {k: np.asarray(z[k], np.float32) for k in z.files}
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read YAMNet weights {path}: {e}") from None
    reference = [(("kernel", (3, 3, 1, 32)), ("bias", (32,)))]
    for (kind, _, c), (_, _, prev) in zip(LAYERS[1:], LAYERS):
        reference.append((("dw_kernel", (3, 3, prev, 1)), ("dw_bias", (prev,)),
                          ("pw_kernel", (1, 1, prev, c)), ("pw_bias", (c,))))
    layers = []
    for i, params in enumerate(reference):
        layer = {}
        for name, shape in params:
            key = f"layer{i + 1}/{name}"
            if key not in arrays or arrays[key].shape != shape:
                raise ModelError(f"{path} is not a YAMNet weights file ({key} missing or not "
                                 f"{shape})")
            layer[name] = arrays[key]
        layers.append(layer)
    kernel, bias = arrays.get("logits/kernel"), arrays.get("logits/bias")
    if kernel is None or bias is None or kernel.shape != (EMBEDDING_SIZE, N_CLASSES):
        raise ModelError(f"{path} is not a YAMNet weights file (logits missing)")
    return YamnetWeights(layers, kernel, bias)


def build_backbone(weights: YamnetWeights | None = None, frames: int | None = None,
                   name: str = "yamnet", until: int | None = None, start: int = 0,
                   input_channels: int | None = None):
    """YAMNet's convolutional body as a Keras model.

    Parameters
    ----------
    weights : from ``read_tflite_weights``; None leaves the layers randomly initialised.
    frames : input length in frames, or None for any length.
    until : build layers ``start .. until - 1`` only (None = to the end); with ``start > 0`` the
        input is the previous layer's feature map with ``input_channels`` channels.

    Input (frames, 64, 1) log-mel (time first, as YAMNet); output the last feature map,
    (ceil(frames / 32), 2, 1024) for the full body. Layer names are ``layer{i}_...`` (1-based, as
    YAMNet's).
    """
    import keras
    from keras import layers as L

    until = len(LAYERS) if until is None else until
    if start == 0:
        inp = keras.Input((frames, N_MELS, 1), name="log_mel")
    else:
        inp = keras.Input((None, None, input_channels), name=f"layer{start}_out")
    x = inp
    for i in range(start, until):
        kind, stride, channels = LAYERS[i]
        pre = f"layer{i + 1}"
        if kind == "conv":
            x = L.Conv2D(channels, 3, strides=stride, padding="same", name=f"{pre}_conv")(x)
            x = L.ReLU(name=f"{pre}_relu")(x)
        else:
            x = L.DepthwiseConv2D(3, strides=stride, padding="same", name=f"{pre}_depthwise")(x)
            x = L.ReLU(name=f"{pre}_depthwise_relu")(x)
            x = L.Conv2D(channels, 1, name=f"{pre}_pointwise")(x)
            x = L.ReLU(name=f"{pre}_pointwise_relu")(x)
    model = keras.Model(inp, x, name=name)
    if weights is not None:
        set_weights(model, weights, start, until)
    return model


def set_weights(model, weights: YamnetWeights, start: int = 0, until: int | None = None) -> None:
    """Copy YAMNet weights into a model built by ``build_backbone`` (layers start..until-1)."""
    until = len(LAYERS) if until is None else until
    for i in range(start, until):
        pre, w = f"layer{i + 1}", weights.layers[i]
        if LAYERS[i][0] == "conv":
            model.get_layer(f"{pre}_conv").set_weights([w["kernel"], w["bias"]])
        else:
            model.get_layer(f"{pre}_depthwise").set_weights([w["dw_kernel"], w["dw_bias"]])
            model.get_layer(f"{pre}_pointwise").set_weights([w["pw_kernel"], w["pw_bias"]])


def weights_from_model(model, base: YamnetWeights) -> YamnetWeights:
    """The inverse of ``set_weights``: ``base`` with every layer that ``model`` holds (by its
    ``layer{i}_...`` names, and a Dense ``logits`` layer for the classifier) read from it, as
    float32."""
    names = {layer.name for layer in model.layers}
    f32 = lambda ws: [np.asarray(w, np.float32) for w in ws]  # noqa: E731
    layers = []
    for i, (kind, _, _) in enumerate(LAYERS):
        pre = f"layer{i + 1}"
        if kind == "conv" and f"{pre}_conv" in names:
            k, b = f32(model.get_layer(f"{pre}_conv").get_weights())
            layers.append({"kernel": k, "bias": b})
        elif kind == "sep" and f"{pre}_pointwise" in names:
            dk, db = f32(model.get_layer(f"{pre}_depthwise").get_weights())
            pk, pb = f32(model.get_layer(f"{pre}_pointwise").get_weights())
            layers.append({"dw_kernel": dk, "dw_bias": db, "pw_kernel": pk, "pw_bias": pb})
        else:
            layers.append(dict(base.layers[i]))
    if "logits" in names:
        kernel, bias = f32(model.get_layer("logits").get_weights())
    else:
        kernel, bias = base.logits_kernel, base.logits_bias
    return YamnetWeights(layers, kernel, bias)


def build_yamnet(weights: YamnetWeights, frames: int = PATCH_FRAMES):
    """The whole of YAMNet on one patch: log-mel (frames, 64, 1) -> (embedding 1024, scores 521)."""
    import keras
    from keras import layers as L

    body = build_backbone(weights, frames)
    emb = L.GlobalAveragePooling2D(name="embedding")(body.output)
    logits = L.Dense(N_CLASSES, activation="sigmoid", name="scores")
    scores = logits(emb)
    logits.set_weights([weights.logits_kernel, weights.logits_bias])
    return keras.Model(body.input, [emb, scores], name="yamnet_full")


def run_tflite(path: str | Path, waveform: np.ndarray, delegates: bool = True
               ) -> dict[str, np.ndarray]:
    """Run the YAMNet TFLite file on one 15600-sample waveform (16 kHz float in [-1, 1]).

    Returns "log_mel" (96, 64), "embedding" (1024,) and "scores" (521,): the reference the port
    is tested against.
    """
    it = _interpreter(Path(path), preserve_all=True, delegates=delegates)
    names = {d["name"]: d["index"] for d in it.get_tensor_details()}
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.asarray(waveform, np.float32).reshape(inp["shape"]))
    it.invoke()
    out = {"log_mel": it.get_tensor(names[LOG_MEL_TENSOR]).copy(),
           "embedding": it.get_tensor(names[EMBEDDING_TENSOR]).reshape(-1).copy(),
           "scores": it.get_tensor(it.get_output_details()[0]["index"]).reshape(-1).copy()}
    return out
