"""Write the model card into exported files (reading is ``edge_genre.edge.modelfile``).

- TFLite: a ``Model.metadata`` entry named ``METADATA_KEY`` pointing at a new buffer with the card
  JSON (through TensorFlow's own flatbuffer object API, so the file stays schema-valid). Entries
  the converter wrote (``min_runtime_version``, ``CONVERSION_METADATA``) are kept; an old card is
  replaced.
- ONNX: the ``metadata_props`` entry ``METADATA_KEY``; other entries are kept.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_genre.edge.config import ModelCard
from edge_genre.edge.modelfile import METADATA_KEY, card_from_onnx_props, read_card
from edge_genre.errors import ModelError


def embed_tflite(data: bytes, card: ModelCard) -> bytes:
    """A copy of the TFLite flatbuffer ``data`` carrying ``card``."""
    return attach_tflite(data, METADATA_KEY, card.to_json().encode("utf-8"))


def attach_tflite(data: bytes, name: str, payload: bytes) -> bytes:
    """``data`` with a ``Model.metadata`` entry ``name`` -> a new buffer holding ``payload``
    (an existing entry of that name is replaced): our card, or TFLite's standard metadata."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != name]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name(name) -> str:
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def embed_onnx(model, card: ModelCard):
    """Set the ``METADATA_KEY`` entry of an ``onnx.ModelProto`` (in place; returned)."""
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            prop.value = card.to_json()
            break
    else:
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, card.to_json()
    return model


def write_tflite(path: Path, data: bytes, card: ModelCard) -> Path:
    """Write a TFLite file with ``card`` embedded and verify the runtime's reader gets it back."""
    path.write_bytes(embed_tflite(data, card))
    if read_card(path).to_json() != card.to_json():
        raise ModelError(f"{path}: the embedded model card does not read back intact")
    return path


def write_onnx(path: Path, model, card: ModelCard) -> Path:
    """Write an ONNX file with ``card`` embedded and verify it reads back."""
    import onnx

    onnx.save(embed_onnx(model, card), str(path))
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    if card_from_onnx_props(props, str(path)).to_json() != card.to_json():
        raise ModelError(f"{path}: the embedded model card does not read back intact")
    return path
