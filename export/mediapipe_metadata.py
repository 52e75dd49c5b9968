"""The metadata of a MediaPipe file: the standard TFLite model metadata flatbuffer, our card and
the packed label file, written into a converted waveform-in flatbuffer and checked on read-back.

Both metadata entries sit in the one file:

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
"""
from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path

from edge_genre import __version__
from edge_genre.edge.backends import INPUT_KEY, WAVEFORM, is_waveform
from edge_genre.edge.config import ModelCard
from edge_genre.errors import ModelError
from edge_genre.export.mediapipe_frontend import FrontendPlan, window_samples
from edge_genre.export.metadata import attach_tflite, embed_tflite

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
