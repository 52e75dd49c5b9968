"""The waveform-in TFLite graph of a MediaPipe file: the log-mel front-end as TensorFlow ops, run
before the network, converted to one flatbuffer.

MediaPipe's ``AudioClassifier`` (Android, iOS, web, Python) feeds a model raw audio, cut into
windows of the model's input size at the sample rate its metadata declares (it resamples and cuts
itself), while edge-genre's ordinary files take the normalised log-mel image that
``edge.frontend`` computes in numpy. So the graph built here holds the front-end too:

    waveform [1, window_samples] float32 mono at card.frontend.sample_rate
      -> zero padding (centred front-ends) and framing (strided slices of sub-frames)
      -> the analysis window (a constant multiply)
      -> |DFT| ** power: RFFT2D (fft length a power of two) or, with ``dft="matmul"``, two
         constant matmuls (the windowed cos / sin matrices)
      -> the mel matrix of ``edge.frontend.mel_filterbank(card.frontend)`` (a constant matmul)
      -> log(mel + log_offset), or dB (power_to_db: amin floor, ref = the window's max or a
         number, top_db), as the card says
      -> bilinear resize (two constant matmuls) when the card resizes
      -> (x - mean) / std
      -> the run's Keras network -> probabilities [1, n_labels]

Only the fp32 file keeps every weight float; with ``weights_only`` (``--int8-weights``) the
network's weights are stored as int8 (dynamic range) while the front-end's constants stay float:
the front-end and the network are converted separately and their graphs joined into one
subgraph (``join_tflite``), because the converter's dynamic-range quantiser would otherwise also
quantise the mel and DFT matrices.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_genre.edge.config import FrontendConfig, ModelCard
from edge_genre.errors import ModelError


def window_samples(card: ModelCard) -> int:
    """Samples in one waveform-in window: the model's input size."""
    return card.window.window_samples(card.frontend)


# ----------------------------------------------------------------------------- the front-end


def _dft_choice(cfg: FrontendConfig, dft: str) -> str:
    if dft not in ("auto", "rfft", "matmul"):
        raise ModelError(f"dft must be 'auto', 'rfft' or 'matmul', not {dft!r}")
    power_of_two = cfg.n_fft & (cfg.n_fft - 1) == 0
    if dft == "rfft" and not power_of_two:
        raise ModelError(f"TFLite's RFFT2D needs a power-of-two FFT size, not {cfg.n_fft}")
    if dft == "auto":
        return "rfft" if power_of_two else "matmul"
    return dft


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of ``edge.frontend.resize_bilinear`` along one axis."""
    x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    x = np.clip(x, 0, n_in - 1)
    lo = np.floor(x).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = x - lo
    m = np.zeros((n_out, n_in), np.float64)
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


@dataclass(frozen=True)
class FrontendPlan:
    """The constants and sizes of the in-graph front-end for one card (numpy, no TensorFlow)."""

    cfg: FrontendConfig
    n_samples: int
    dft: str  # "rfft" or "matmul"
    n_frames: int
    left_pad: int  # zeros before the window (centred front-ends)
    right_pad: int  # zeros after it, so the last frame is whole
    offset: int  # first sample of frame 0's non-zero part, in the padded signal
    frame_length: int  # the analysis window's non-zero length (win_length)
    subframe: int  # gcd(hop, frame_length): framing by strided slices of sub-frames

    @classmethod
    def of(cls, cfg: FrontendConfig, n_samples: int, dft: str = "auto") -> "FrontendPlan":
        n_frames = cfg.n_frames(n_samples)
        if n_frames < 1:
            raise ModelError(f"a {n_samples}-sample window holds no {cfg.n_fft}-point frame")
        win = cfg.window_length
        left = (cfg.n_fft - win) // 2  # the window is centred in n_fft, zeros around it
        pad = cfg.n_fft // 2 if cfg.center else 0
        needed = (n_frames - 1) * cfg.hop_length + left + win  # padded samples frames reach
        right = max(0, needed - pad - n_samples)
        return cls(cfg, int(n_samples), _dft_choice(cfg, dft), n_frames, pad, right, left, win,
                   math.gcd(cfg.hop_length, win))

    @property
    def bins(self) -> int:
        return self.cfg.n_fft // 2 + 1

    def window(self) -> np.ndarray:
        """The analysis window's non-zero part (periodic Hann of win_length), float32."""
        from edge_genre.edge.frontend import analysis_window

        return np.asarray(analysis_window(self.cfg)[self.offset:self.offset + self.frame_length],
                          np.float32)

    def dft_matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """(frame_length, bins) cos and sin matrices with the window folded in. A frame's
        non-zero part sits ``offset`` samples into its n_fft frame; that shift only turns the
        phase, so |DFT| is the same without it."""
        n = np.arange(self.frame_length)[:, None]
        k = np.arange(self.bins)[None, :]
        angle = 2.0 * np.pi * ((n * k) % self.cfg.n_fft) / self.cfg.n_fft
        w = np.asarray(self.window(), np.float64)[:, None]
        return (w * np.cos(angle)).astype(np.float32), (w * np.sin(angle)).astype(np.float32)

    def mel_matrix(self) -> np.ndarray:
        """(bins, n_mels): ``edge.frontend.mel_filterbank`` transposed."""
        from edge_genre.edge.frontend import mel_filterbank

        return np.ascontiguousarray(mel_filterbank(self.cfg).T, dtype=np.float32)

    def resize_matrices(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(H, n_mels) and (frames, W) for ``resize``; None when the card does not resize."""
        if self.cfg.resize is None:
            return None
        h, w = self.cfg.resize
        return (_resize_matrix(self.cfg.n_mels, h).astype(np.float32),
                np.ascontiguousarray(_resize_matrix(self.n_frames, w).T, dtype=np.float32))

    def to_dict(self) -> dict[str, Any]:
        return {"n_samples": self.n_samples, "dft": self.dft, "n_frames": self.n_frames,
                "left_pad": self.left_pad, "right_pad": self.right_pad,
                "frame_offset": self.offset, "frame_length": self.frame_length,
                "subframe": self.subframe}


def frontend_graph(plan: FrontendPlan):
    """A TensorFlow function: waveform (batch, n_samples) float32 -> the normalised model input
    (batch, H, W, 1), what ``edge.frontend.features`` gives for each row."""
    import tensorflow as tf

    cfg = plan.cfg
    hop, flen, g = cfg.hop_length, plan.frame_length, plan.subframe
    window = tf.constant(plan.window()[None, None, :])
    if plan.dft == "matmul":
        cos_m, sin_m = (tf.constant(m) for m in plan.dft_matrices())
    mel_m = tf.constant(plan.mel_matrix())
    resize = plan.resize_matrices()
    if resize is not None:
        ry, rx = (tf.constant(m) for m in resize)
    span = (plan.n_frames - 1) * hop + flen

    def frames_of(y):
        if plan.left_pad or plan.right_pad:
            y = tf.pad(y, [[0, 0], [plan.left_pad, plan.right_pad]])
        y = y[:, plan.offset:plan.offset + span]
        if flen // g <= 64:
            # Frame k is sub-frames k*hop/g ... k*hop/g + flen/g - 1: flen/g strided slices.
            sub = tf.reshape(y, [-1, span // g, g])
            step = hop // g
            pieces = [sub[:, j:j + (plan.n_frames - 1) * step + 1:step, :]
                      for j in range(flen // g)]
            return tf.concat(pieces, axis=2) if len(pieces) > 1 else pieces[0]
        index = (np.arange(plan.n_frames)[:, None] * hop + np.arange(flen)[None, :])
        return tf.gather(y, tf.constant(index.astype(np.int32)), axis=1)

    def spectrum(frames):
        if plan.dft == "rfft":
            spec = tf.signal.rfft(frames * window, fft_length=[cfg.n_fft])
            mag2 = tf.square(tf.math.real(spec)) + tf.square(tf.math.imag(spec))
        else:  # the window is folded into the matrices
            mag2 = tf.square(tf.matmul(frames, cos_m)) + tf.square(tf.matmul(frames, sin_m))
        if cfg.power == 2.0:
            return mag2
        if cfg.power == 1.0:
            return tf.sqrt(mag2)
        return tf.pow(mag2, cfg.power / 2.0)

    def to_log(mel):  # mel: (batch, frames, n_mels)
        if cfg.scale == "log":
            return tf.math.log(mel + cfg.log_offset)
        db = (10.0 / math.log(10.0)) * tf.math.log(tf.maximum(mel, cfg.amin))
        if cfg.ref == "max":
            ref = tf.reduce_max(mel, axis=[1, 2], keepdims=True)
            db = db - (10.0 / math.log(10.0)) * tf.math.log(tf.maximum(ref, cfg.amin))
        else:
            db = db - 10.0 * math.log10(max(cfg.amin, float(cfg.ref)))
        if cfg.top_db is not None:
            db = tf.maximum(db, tf.reduce_max(db, axis=[1, 2], keepdims=True) - cfg.top_db)
        return db

    def features(y):
        y = tf.cast(y, tf.float32)
        mel = tf.matmul(spectrum(frames_of(y)), mel_m)  # (batch, frames, n_mels)
        image = tf.transpose(to_log(mel), [0, 2, 1])  # (batch, n_mels, frames)
        if resize is not None:
            image = tf.matmul(tf.matmul(tf.broadcast_to(ry, [tf.shape(image)[0], *ry.shape]),
                                        image), rx)
        image = (image - cfg.mean) * (1.0 / cfg.std)
        return image[..., None]

    return features


# ----------------------------------------------------------------------------- conversion


def frontend_tflite(cfg: FrontendConfig, n_samples: int, dft: str = "auto") -> bytes:
    """The in-graph front-end alone as a TFLite flatbuffer: waveform (1, n_samples) ->
    normalised features (1, H, W, 1). For checks against ``edge.frontend.features``."""
    import tensorflow as tf

    features = frontend_graph(FrontendPlan.of(cfg, n_samples, dft))

    @tf.function
    def frontend(waveform):
        return {"features": features(waveform)}

    return _convert_function(frontend, tf.TensorSpec([1, n_samples], tf.float32,
                                                     name="waveform"), False)


def _convert_function(fn, spec, weights_only: bool, model=None) -> bytes:
    """TFLite bytes of a TensorFlow function with one input ``spec``, through a SavedModel
    (the route ``export.tflite`` takes for Keras 3 models); ``model``: the Keras model whose
    variables the function reads (tracked so the SavedModel holds them)."""
    import contextlib
    import io as _io

    import keras

    from edge_genre.export import tflite

    archive = keras.export.ExportArchive()
    if model is not None:
        archive.track(model)
    archive.add_endpoint("serve", fn, input_signature=[spec])
    with tempfile.TemporaryDirectory(prefix="edge-genre-mediapipe-") as tmp:
        saved = Path(tmp) / "saved_model"
        with contextlib.redirect_stdout(_io.StringIO()):
            archive.write_out(str(saved), verbose=False)
        return tflite.convert(saved, None, weights_only=weights_only)


def waveform_tflite(model, card: ModelCard, dft: str = "auto",
                    weights_only: bool = False) -> bytes:
    """The waveform-in TFLite flatbuffer (no metadata yet) of a spectrogram-in Keras ``model``.

    fp32: one conversion of front-end + network. ``weights_only``: the network converted with
    dynamic-range int8 weights, the front-end in float, joined (``join_tflite``).
    The input is one window, shape (1, window_samples): what MediaPipe feeds.
    """
    import tensorflow as tf

    n = window_samples(card)
    plan = FrontendPlan.of(card.frontend, n, dft)
    features = frontend_graph(plan)
    wave_spec = tf.TensorSpec([1, n], tf.float32, name="waveform")
    if not weights_only:
        @tf.function
        def classify(waveform):
            return {"probabilities": model(features(waveform), training=False)}

        return _convert_function(classify, wave_spec, False, model)

    @tf.function
    def network(x):
        return {"probabilities": model(x, training=False)}

    front = frontend_tflite(card.frontend, n, dft)
    net = _convert_function(network, tf.TensorSpec([1, *card.input_shape], tf.float32,
                                                   name="features"), True, model)
    return join_tflite(front, net)


def join_tflite(first: bytes, second: bytes) -> bytes:
    """One TFLite model running ``first`` then ``second`` (single subgraph each; ``first``'s only
    output feeds ``second``'s only input). Tensors, buffers and operator codes are merged, so
    each part keeps its own weights as they were converted (float or int8)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    a = flatbuffer_utils.convert_bytearray_to_object(bytearray(first))
    b = flatbuffer_utils.convert_bytearray_to_object(bytearray(second))
    if len(a.subgraphs) != 1 or len(b.subgraphs) != 1:
        raise ModelError("join_tflite: both parts must have one subgraph")
    sa, sb = a.subgraphs[0], b.subgraphs[0]
    if len(sa.outputs) != 1 or len(sb.inputs) != 1:
        raise ModelError("join_tflite: the first part needs one output, the second one input")
    link_a, link_b = int(sa.outputs[0]), int(sb.inputs[0])
    ta, tb = sa.tensors[link_a], sb.tensors[link_b]
    if list(ta.shape) != list(tb.shape) or ta.type != tb.type:
        raise ModelError(f"join_tflite: the first part's output {list(ta.shape)} does not fit the "
                         f"second part's input {list(tb.shape)}")

    # Buffers: b's buffer i -> len(a.buffers) + i - 1 (both keep buffer 0 as the empty sentinel).
    buffer_base = len(a.buffers) - 1

    def buffer_of(i: int) -> int:
        return 0 if i == 0 else buffer_base + i

    a.buffers.extend(b.buffers[1:])
    # Operator codes: reuse a's entry for the same builtin / custom op and version.
    def code_key(c):
        return (c.builtinCode, c.deprecatedBuiltinCode, c.customCode, c.version)

    codes = {code_key(c): i for i, c in enumerate(a.operatorCodes)}
    code_map = []
    for c in b.operatorCodes:
        key = code_key(c)
        if key not in codes:
            a.operatorCodes.append(c)
            codes[key] = len(a.operatorCodes) - 1
        code_map.append(codes[key])
    # Tensors: b's tensors are appended; its input becomes a's output.
    tensor_map = {}
    for i, t in enumerate(sb.tensors):
        if i == link_b:
            tensor_map[i] = link_a
            continue
        t.buffer = buffer_of(int(t.buffer))
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name or "")
        t.name = "net/" + name
        tensor_map[i] = len(sa.tensors)
        sa.tensors.append(t)

    def remap(indices):
        return None if indices is None else [tensor_map[int(i)] if int(i) >= 0 else int(i)
                                             for i in indices]

    for op in sb.operators:
        op.opcodeIndex = code_map[op.opcodeIndex]
        op.inputs = remap(op.inputs)
        op.outputs = remap(op.outputs)
        if getattr(op, "intermediates", None) is not None:
            op.intermediates = remap(op.intermediates)
        sa.operators.append(op)
    sa.outputs = [tensor_map[int(i)] for i in sb.outputs]
    # One signature: a's input, b's output (under b's output name).
    if a.signatureDefs:
        sig = a.signatureDefs[0]
        names = [o.name for o in (b.signatureDefs[0].outputs if b.signatureDefs else [])]
        entries = []
        for k, idx in enumerate(sa.outputs):
            entry = schema.TensorMapT()
            entry.name = names[k] if k < len(names) else f"output_{k}"
            entry.tensorIndex = idx
            entries.append(entry)
        sig.outputs = entries
        a.signatureDefs = [sig]
    # Keep a's min_runtime_version unless b needs a newer one.
    a.metadata = _merged_runtime_metadata(a, b)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(a))


def _merged_runtime_metadata(a, b):
    """a's metadata entries; ``min_runtime_version`` the larger of both parts'."""
    def entries(m):
        out = {}
        for e in m.metadata or []:
            name = e.name.decode() if isinstance(e.name, bytes) else str(e.name)
            data = m.buffers[e.buffer].data
            out[name] = (e, bytes(np.asarray(data, np.uint8)) if data is not None else b"")
        return out

    ea, eb = entries(a), entries(b)
    if "min_runtime_version" in ea and "min_runtime_version" in eb:
        va = ea["min_runtime_version"][1].rstrip(b"\0").decode(errors="replace")
        vb = eb["min_runtime_version"][1].rstrip(b"\0").decode(errors="replace")

        def key(v):
            return tuple(int(p) if p.isdigit() else 0 for p in v.split("."))

        if key(vb) > key(va):
            entry = ea["min_runtime_version"][0]
            a.buffers[entry.buffer].data = np.frombuffer(
                eb["min_runtime_version"][1], np.uint8).copy()
    return a.metadata
