"""One TFLite file that MediaPipe Tasks' ``AudioClassifier`` runs unchanged: waveform in, genre
probabilities out, with the standard TFLite model metadata and our own card.

edge-genre's ordinary files take the normalised log-mel image that ``edge.frontend`` computes in
numpy. MediaPipe's ``AudioClassifier`` (Android, iOS, web, Python) feeds a model the raw audio
instead, cut into windows of the model's input size at the sample rate its metadata declares
(it resamples and cuts itself). So the file built here holds the front-end too:

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

Metadata, both in the one file:

- ``TFLITE_METADATA``: the standard TFLite model metadata flatbuffer (schema ``M001``: name,
  description, version, author, license; the input's ``AudioProperties`` (sample rate, 1
  channel); the output's label file ``labels.txt`` as a ``TENSOR_AXIS_LABELS`` associated file),
  written here with the plain ``flatbuffers`` package (TensorFlow's own dependency), with the
  label file packed as a zip archive appended to the flatbuffer, as the TFLite Support metadata
  populator does. No tflite-support (its protobuf < 4 pin conflicts with TensorFlow 2.21 and
  MediaPipe) and no MediaPipe are needed to write it.
- ``edge_genre``: our card (``export.metadata.embed_tflite``), with ``input_shape`` set to
  ``(window_samples,)`` and ``extra["input"] = "waveform"``: a runtime that only knows
  spectrogram-in files refuses it with one line instead of feeding it features.

Only the fp32 file keeps every weight float; with ``weights_only`` (``--int8-weights``) the
network's weights are stored as int8 (dynamic range) while the front-end's constants stay float:
the front-end and the network are converted separately and their graphs joined into one
subgraph (``join_tflite``), because the converter's dynamic-range quantiser would otherwise also
quantise the mel and DFT matrices.

``parity`` measures the file against the spectrogram-in Keras model fed by the numpy front-end,
on real windows, including windows that straddle the regular window grid and a zero-padded last
window (what MediaPipe feeds at the end of a clip).
"""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_genre import __version__
from edge_genre.edge.config import FrontendConfig, ModelCard
from edge_genre.edge.backends import INPUT_KEY, WAVEFORM, is_waveform, load_model
from edge_genre.errors import DataError, ModelError
from edge_genre.export.metadata import attach_tflite

log = logging.getLogger("edge_genre")

#: File-name suffix: ``<stem>-mediapipe.tflite`` (fp32), ``<stem>-mediapipe-int8w.tflite``.
SUFFIX = "mediapipe"
#: Name of the standard metadata entry in ``Model.metadata`` (what MediaPipe and TFLite Support
#: read) and its flatbuffer file identifier.
TFLITE_METADATA = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
#: Metadata schema version needed to read what is written here: ``AudioProperties`` came in 1.3.0.
MIN_PARSER_VERSION = "1.3.0"
#: The label file packed into the model file.
LABELS_FILE = "labels.txt"
#: Card ``extra`` key with the MediaPipe-facing settings (input / output, metadata route).
MEDIAPIPE_KEY = "mediapipe"
REPORT_FILE = "mediapipe_report.json"

#: Bounds of the parity check against the spectrogram-in Keras model fed by the numpy
#: front-end. fp32: top-1 on every window and probabilities within FP32_MAX_PROB_DIFF (the
#: in-graph front-end is float32 against numpy's float64: about 1e-5 in normalised log-mel
#: units, 1e-5 in probability, measured). int8 weights: the bound ``export`` puts on every
#: ``-int8w`` file (``ExportConfig.min_agreement`` of the windows' top-1; the probability
#: difference is reported, not bounded, as there): the front-end stays float, so the file is as
#: close to Keras as the network's own int8-weights file.
FP32_MAX_PROB_DIFF = 1e-3
FP32_MIN_AGREEMENT = 1.0


def file_name(stem: str, quantization: str = "fp32") -> str:
    """``<stem>-mediapipe.tflite`` (fp32) or ``<stem>-mediapipe-int8w.tflite``."""
    if quantization == "fp32":
        return f"{stem}-{SUFFIX}.tflite"
    if quantization == "int8-weights":
        return f"{stem}-{SUFFIX}-int8w.tflite"
    raise ModelError(f"a MediaPipe file is fp32 or int8-weights, not {quantization}")


def window_samples(card: ModelCard) -> int:
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


# ----------------------------------------------------------------------------- metadata


def metadata_flatbuffer(card: ModelCard, name: str, description: str, version: str,
                        author: str = "edge-genre", license_text: str = "",
                        labels_file: str = LABELS_FILE) -> bytes:
    """The standard TFLite ``ModelMetadata`` flatbuffer (file identifier ``M001``) for an audio
    classifier: input ``AudioProperties`` (the card's sample rate, 1 channel), output scores
    with ``labels_file`` as its ``TENSOR_AXIS_LABELS`` file.

    Field slots follow ``metadata_schema.fbs`` (TFLite Support / MediaPipe, schema 1.5.0):
    ModelMetadata(name 0, description 1, version 2, subgraph_metadata 3, author 4, license 5,
    associated_files 6, min_parser_version 7); SubGraphMetadata(name 0, description 1,
    input_tensor_metadata 2, output_tensor_metadata 3, ...); TensorMetadata(name 0,
    description 1, dimension_names 2, content 3, process_units 4, stats 5, associated_files 6);
    Content(content_properties_type 0, content_properties 1, range 2); AudioProperties(
    sample_rate 0, channels 1); AssociatedFile(name 0, description 1, type 2, locale 3,
    version 4); Stats(max 0, min 1).
    """
    import flatbuffers

    b = flatbuffers.Builder(1024)
    s = b.CreateString

    def table(fields):
        """fields: (slot, kind, value) with kind 'off', 'u32', 'u8', 'i8'; None values skipped."""
        fields = [f for f in fields if f[2] is not None]
        b.StartObject(max(f[0] for f in fields) + 1 if fields else 0)
        for slot, kind, value in fields:
            if kind == "off":
                b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "u32":
                b.PrependUint32Slot(slot, value, 0)
            elif kind == "u8":
                b.PrependUint8Slot(slot, value, 0)
            elif kind == "i8":
                b.PrependInt8Slot(slot, value, 0)
        return b.EndObject()

    def vector_of_offsets(items):
        b.StartVector(4, len(items), 4)
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    def vector_of_floats(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(float(v))
        return b.EndVector()

    tensor_axis_labels = 2  # AssociatedFileType
    audio_properties, feature_properties = 4, 1  # ContentProperties union types

    # Output: the probabilities, labels attached.
    label_file = table([(0, "off", s(labels_file)),
                        (1, "off", s("Genre labels, one per line, in the order of the "
                                     "output scores.")),
                        (2, "i8", tensor_axis_labels)])
    out_files = vector_of_offsets([label_file])
    feature = table([])
    out_content = table([(0, "u8", feature_properties), (1, "off", feature)])
    stats = table([(0, "off", vector_of_floats([1.0])), (1, "off", vector_of_floats([0.0]))])
    out_meta = table([(0, "off", s("probability")),
                      (1, "off", s(f"Probabilities of the {len(card.labels)} genres "
                                   "(softmax: they sum to 1).")),
                      (3, "off", out_content), (5, "off", stats), (6, "off", out_files)])
    # Input: mono audio at the card's rate.
    n = window_samples(card)
    audio = table([(0, "u32", int(card.frontend.sample_rate)), (1, "u32", 1)])
    in_content = table([(0, "u8", audio_properties), (1, "off", audio)])
    in_meta = table([(0, "off", s("audio_clip")),
                     (1, "off", s(f"{n} samples ({n / card.frontend.sample_rate:g} s) of mono "
                                  f"float32 audio in [-1, 1] at {card.frontend.sample_rate} Hz.")),
                     (3, "off", in_content)])
    inputs, outputs = vector_of_offsets([in_meta]), vector_of_offsets([out_meta])
    subgraph = table([(0, "off", s(name)), (2, "off", inputs), (3, "off", outputs)])
    subgraphs = vector_of_offsets([subgraph])
    root = table([(0, "off", s(name)), (1, "off", s(description)), (2, "off", s(version)),
                  (3, "off", subgraphs), (4, "off", s(author) if author else None),
                  (5, "off", s(license_text) if license_text else None),
                  (7, "off", s(MIN_PARSER_VERSION))])
    b.Finish(root, METADATA_IDENTIFIER)
    return bytes(b.Output())


def append_associated_files(data: bytes, files: dict[str, bytes]) -> bytes:
    """The model bytes followed by a zip archive of ``files`` (stored, offsets from the start of
    the file): how TFLite Support's populator packs associated files, and where MediaPipe's
    metadata extractor looks for them. A TFLite interpreter ignores the trailing bytes."""
    buf = io.BytesIO(data)
    buf.seek(0, 2)
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_STORED) as zf:
        for fname, content in files.items():
            zf.writestr(fname, content)
    return buf.getvalue()


def waveform_card(card: ModelCard, quantization: str, plan: FrontendPlan,
                  metadata_info: dict) -> ModelCard:
    """The card of a waveform-in file: input ``(window_samples,)`` and ``extra`` saying so."""
    extra = {**card.extra, INPUT_KEY: WAVEFORM,
             MEDIAPIPE_KEY: {"input": {"shape": [1, plan.n_samples], "dtype": "float32",
                                       "sample_rate": card.frontend.sample_rate, "channels": 1},
                             "output": {"shape": [1, len(card.labels)],
                                        "dtype": "float32", "kind": "probabilities"},
                             "frontend_in_graph": plan.to_dict(),
                             "metadata": metadata_info}}
    return dataclasses.replace(card, input_shape=(plan.n_samples,), quantization=quantization,
                               extra=extra, package_version=card.package_version or __version__)


def package(data: bytes, card: ModelCard, quantization: str = "fp32", stem: str | None = None,
            dft: str = "auto", description: str | None = None) -> bytes:
    """A converted waveform-in flatbuffer with both metadata entries and the label file."""
    from edge_genre.export.metadata import embed_tflite

    stem = stem or card.preset
    plan = FrontendPlan.of(card.frontend, window_samples(card), dft)
    version = card.model_version if card.model_version not in ("", "0") else __version__
    name = f"edge-genre {stem} genre classifier"
    description = description or (
        f"Music genre of {card.window.seconds:g} s of mono audio at {card.frontend.sample_rate} Hz "
        f"({', '.join(card.labels)}). Waveform in: the {card.frontend.n_mels}-band log-mel "
        f"front-end of edge-genre's '{card.preset}' preset is computed inside the model. "
        f"Weights: {quantization}.")
    labels = ("\n".join(card.labels) + "\n").encode("utf-8")
    info = {"standard": TFLITE_METADATA, "min_parser_version": MIN_PARSER_VERSION,
            "labels_file": LABELS_FILE, "name": name, "version": version}
    meta = metadata_flatbuffer(card, name, description, version,
                               license_text="See edge-genre's NOTICE files for model weights.")
    full_card = waveform_card(card, quantization, plan, info)
    out = embed_tflite(data, full_card)
    out = attach_tflite(out, TFLITE_METADATA, meta)
    return append_associated_files(out, {LABELS_FILE: labels})


def write(path: Path, data: bytes) -> Path:
    """Write a packaged file and check both metadata entries and the label file read back."""
    from edge_genre.edge.modelfile import read_card, tflite_metadata

    path.write_bytes(data)
    back = path.read_bytes()
    entries = tflite_metadata(back)
    if TFLITE_METADATA not in entries or entries[TFLITE_METADATA][4:8] != METADATA_IDENTIFIER:
        raise ModelError(f"{path}: the standard metadata does not read back")
    card = read_card(path)
    if not is_waveform(card):
        raise ModelError(f"{path}: the card does not read back as a waveform-in card")
    with zipfile.ZipFile(io.BytesIO(back)) as zf:
        if zf.read(LABELS_FILE).decode("utf-8").split() != list(card.labels):
            raise ModelError(f"{path}: the packed {LABELS_FILE} does not match the card's labels")
    return path


def associated_files(path: str | Path) -> dict[str, bytes]:
    """The files packed into a model file (``labels.txt``)."""
    data = Path(path).read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


# ----------------------------------------------------------------------------- running it


# ----------------------------------------------------------------------------- parity


@dataclass
class ParityWindows:
    """Raw audio windows at the card's rate for the parity check, and what each one is."""

    audio: np.ndarray  # (n, window_samples) float32
    kind: np.ndarray  # (n,) "grid" | "boundary" | "end" | "padded"
    track: np.ndarray  # (n,) index into track_ids
    track_ids: list[str]

    def __len__(self) -> int:
        return len(self.audio)


def parity_windows(paths: list[Path], card: ModelCard, per_track: int = 3,
                   seed: int = 0) -> ParityWindows:
    """Real windows of each file: ``per_track`` windows on the runtime's grid (start = k * hop),
    one straddling the boundary between two grid windows (start half a hop plus an odd sample
    later), the track's last whole window (ending on its last sample) and its zero-padded tail
    (the partial window MediaPipe pads and feeds at the end of a clip)."""
    from edge_genre.edge import audio as audio_io
    from edge_genre.edge.windowing import window_starts

    n = window_samples(card)
    hop = card.window.hop_samples(card.frontend)
    rng = np.random.default_rng(seed)
    audio, kinds, owners, ids = [], [], [], []
    for path in paths:
        y = audio_io.load(path, card.frontend.sample_rate)
        if len(y) < 2 * n:
            log.warning("parity: %s is shorter than two windows; skipped", path)
            continue
        starts = window_starts(len(y), card.frontend, card.window)
        grid = sorted(rng.choice(starts, size=min(per_track, len(starts)), replace=False))
        picks = [(int(s), "grid") for s in grid]
        mid = int(rng.integers(0, len(starts) - 1))
        picks.append((starts[mid] + hop // 2 + 1, "boundary"))
        picks.append((len(y) - n, "end"))
        for s, kind in picks:
            audio.append(y[s:s + n])
            kinds.append(kind)
            owners.append(len(ids))
        tail = len(y) - (len(y) // n) * n  # MediaPipe's last, partial window
        if tail == 0:
            tail = n // 3
        audio.append(np.pad(y[len(y) - tail:], (0, n - tail)))
        kinds.append("padded")
        owners.append(len(ids))
        ids.append(Path(path).stem)
    if not audio:
        raise DataError("parity: no usable audio files")
    return ParityWindows(np.stack(audio).astype(np.float32), np.array(kinds),
                         np.array(owners), ids)


def reference_probs(model, card: ModelCard, audio: np.ndarray, batch: int = 16) -> np.ndarray:
    """The spectrogram-in Keras model fed by the numpy front-end (``features_batch``)."""
    from edge_genre.edge.frontend import features_batch

    out = []
    for i in range(0, len(audio), batch):
        x = features_batch(audio[i:i + batch], card.frontend)
        out.append(np.asarray(model.predict(x, verbose=0), np.float32))
    return np.concatenate(out) if out else np.zeros((0, len(card.labels)), np.float32)


def parity(path: str | Path, model, card: ModelCard, windows: ParityWindows,
           quantization: str = "fp32", reference: np.ndarray | None = None) -> dict:
    """The waveform-in file against the spectrogram-in Keras model + numpy front-end on the same
    windows: top-1 agreement and largest probability difference, overall and per window kind,
    and whether they hold the bounds for ``quantization``."""
    runner = load_model(path, backend="ai-edge-litert")  # the edge runtime: one window per invoke
    ref = reference if reference is not None else reference_probs(model, card, windows.audio)
    got = runner.predict(windows.audio)
    diff = np.abs(got - ref).max(axis=1)
    agree = got.argmax(1) == ref.argmax(1)
    from edge_genre.export.config import ExportConfig

    max_diff, min_agree = ((FP32_MAX_PROB_DIFF, FP32_MIN_AGREEMENT) if quantization == "fp32"
                           else (None, ExportConfig().min_agreement))
    kinds = {}
    for kind in dict.fromkeys(windows.kind.tolist()):
        m = windows.kind == kind
        kinds[kind] = {"windows": int(m.sum()), "agreement": float(agree[m].mean()),
                       "max_prob_diff": float(diff[m].max())}
    result = {"file": Path(path).name, "quantization": quantization,
              "bytes": Path(path).stat().st_size, "windows": len(windows),
              "tracks": len(windows.track_ids), "agreement": float(agree.mean()),
              "max_prob_diff": float(diff.max()), "mean_prob_diff": float(diff.mean()),
              "by_kind": kinds,
              "bounds": {"min_agreement": min_agree, "max_prob_diff": max_diff}}
    problems = []
    if result["agreement"] < min_agree:
        problems.append(f"top-1 agreement {result['agreement']:.1%} < {min_agree:.0%}")
    if max_diff is not None and result["max_prob_diff"] > max_diff:
        problems.append(f"max probability difference {result['max_prob_diff']:.3f} > {max_diff}")
    result["passed"] = not problems
    result["problems"] = problems
    return result


def format_parity(report: dict) -> str:
    """The parity report as a few plain-text lines."""
    lines = [f"waveform-in file vs spectrogram-in Keras + numpy front-end on "
             f"{report['windows']} windows of {report['tracks']} tracks "
             f"({report['source']})"]
    for f in report["files"]:
        kinds = ", ".join(f"{k} {v['agreement']:.0%}/{v['max_prob_diff']:.1e}"
                          for k, v in f["by_kind"].items())
        bound = f["bounds"]["max_prob_diff"]
        lines.append(f"  {f['file']}: {f['bytes'] / 1e6:.2f} MB, agreement "
                     f"{f['agreement']:.1%} (>= {f['bounds']['min_agreement']:.0%}), max prob "
                     f"diff {f['max_prob_diff']:.1e}"
                     + (f" (<= {bound:g})" if bound is not None else "")
                     + f" {'ok' if f['passed'] else 'FAILED'}; per window kind "
                     f"(agreement / max diff): {kinds}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the export


def export_mediapipe(run_dir: str | Path, out_dir: str | Path, name: str | None = None,
                     data_dir: str | Path | None = None, int8_weights: bool = False,
                     dft: str = "auto", parity_tracks: int = 10, allow_degraded: bool = False,
                     progress=None) -> dict:
    """Write ``<stem>-mediapipe.tflite`` (and with ``int8_weights`` ``<stem>-mediapipe-int8w
    .tflite``) for a training run, check each against the Keras model on real windows of the
    run's held-out tracks (its training tracks when it has none) and write
    ``mediapipe_report.json``. ModelError when a file misses the parity bounds (unless
    ``allow_degraded``)."""
    from edge_genre.export import deps, source
    from edge_genre.export.calibration import find_tracks
    from edge_genre.train.run_dir import read_run

    say = progress or (lambda msg: log.info(msg))
    run = read_run(run_dir)  # cheap checks first: no TensorFlow for a wrong path
    deps.require("tflite")
    model, card = source.load_keras(run, lambda msg: say(f"MediaPipe: {msg}"))
    stem = name or card.preset
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)

    part, ids = source.check_tracks(run)
    tracks = find_tracks(run.data_dir(data_dir), ids, card)
    if part == "train":  # one per genre first, so the check covers every genre
        seen, first, rest = set(), [], []
        for t in tracks:
            (rest if t.genre in seen else first).append(t)
            seen.add(t.genre)
        tracks = first + rest
    tracks = tracks[:parity_tracks]
    say(f"MediaPipe: parity windows from {len(tracks)} {part} tracks")
    windows = parity_windows([t.path for t in tracks], card)
    reference = reference_probs(model, card, windows.audio)

    files, timings = [], {}
    for q in ["fp32"] + (["int8-weights"] if int8_weights else []):
        t0 = time.perf_counter()
        path = out / file_name(stem, q)
        say(f"MediaPipe {q} -> {path}")
        data = waveform_tflite(model, card, dft=dft, weights_only=q == "int8-weights")
        write(path, package(data, card, q, stem, dft))
        timings[path.name] = round(time.perf_counter() - t0, 2)
        files.append(parity(path, model, card, windows, q, reference))
    report = {"run_dir": str(run.run_dir.resolve()), "out_dir": str(out.resolve()),
              "stem": stem, "preset": card.preset, "labels": list(card.labels),
              "edge_genre_version": __version__,
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "input": {"shape": [1, window_samples(card)],
                        "sample_rate": card.frontend.sample_rate, "channels": 1,
                        "dtype": "float32"},
              "frontend": card.frontend.to_dict(),
              "frontend_in_graph": FrontendPlan.of(card.frontend, window_samples(card),
                                                   dft).to_dict(),
              "metadata": {"standard": TFLITE_METADATA, "min_parser_version": MIN_PARSER_VERSION,
                           "labels_file": LABELS_FILE, "card": "edge_genre"},
              "source": f"{part} tracks of the run: {', '.join(windows.track_ids)}",
              "windows": len(windows), "tracks": len(windows.track_ids),
              "window_kinds": {k: int(np.sum(windows.kind == k))
                               for k in dict.fromkeys(windows.kind.tolist())},
              "convert_seconds": timings, "files": files,
              "passed": all(f["passed"] for f in files)}
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = [f for f in files if not f["passed"]]
    if failed and not allow_degraded:
        exc = ModelError("MediaPipe file misses the parity bounds: " + "; ".join(
            f"{f['file']}: {', '.join(f['problems'])}" for f in failed)
            + f" (report in {out / REPORT_FILE}; --allow-degraded to keep it)")
        exc.report = report
        raise exc
    return report
