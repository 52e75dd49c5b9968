"""The model card inside a model file: where it lives and how to read it without TensorFlow.

- TFLite: an entry named ``METADATA_KEY`` in the flatbuffer's ``Model.metadata`` list, whose
  buffer holds the card's JSON. Read here with a few lines of flatbuffer walking, so the runtime
  needs neither TensorFlow nor the ``flatbuffers`` package.
- ONNX: a ``metadata_props`` entry with key ``METADATA_KEY`` and the same JSON as value.

Writing happens in ``edge_genre.export.metadata``.
"""
from __future__ import annotations

import struct
from pathlib import Path

from edge_genre.edge.config import ModelCard
from edge_genre.errors import ModelError

METADATA_KEY = "edge_genre"

# Field numbers in TFLite's schema.fbs (table Model, Metadata, Buffer).
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6
_METADATA_NAME, _METADATA_BUFFER = 0, 1
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2


class _Table:
    """Just enough of the flatbuffer wire format to read tables, strings and vectors."""

    def __init__(self, buf: bytes, pos: int):
        self.buf, self.pos = buf, pos
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self._vtable = vtable
        self._vsize = struct.unpack_from("<H", buf, vtable)[0]

    def _field(self, index: int) -> int:
        entry = 4 + 2 * index
        if entry >= self._vsize:
            return 0
        off = struct.unpack_from("<H", self.buf, self._vtable + entry)[0]
        return self.pos + off if off else 0

    def scalar(self, index: int, fmt: str, default=0):
        at = self._field(index)
        return struct.unpack_from("<" + fmt, self.buf, at)[0] if at else default

    def _indirect(self, at: int) -> int:
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def vector(self, index: int) -> tuple[int, int]:
        """(start of elements, length) of a vector field, or (0, 0) when absent."""
        at = self._field(index)
        if not at:
            return 0, 0
        vec = self._indirect(at)
        return vec + 4, struct.unpack_from("<I", self.buf, vec)[0]

    def tables(self, index: int) -> list["_Table"]:
        start, n = self.vector(index)
        return [_Table(self.buf, self._indirect(start + 4 * i)) for i in range(n)]

    def string(self, index: int) -> str:
        start, n = self.vector(index)
        return self.buf[start:start + n].decode("utf-8", "replace") if start else ""

    def bytes(self, index: int) -> bytes:
        start, n = self.vector(index)
        return self.buf[start:start + n] if start else b""


def tflite_metadata(data: bytes) -> dict[str, bytes]:
    """All ``Model.metadata`` entries of a TFLite flatbuffer, name -> buffer contents."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelError("not a TFLite model (no TFL3 identifier)")
    try:
        model = _Table(data, struct.unpack_from("<I", data, 0)[0])
        buffers = model.tables(_MODEL_BUFFERS)
        out = {}
        for entry in model.tables(_MODEL_METADATA):
            name = entry.string(_METADATA_NAME)
            index = entry.scalar(_METADATA_BUFFER, "I")
            if index >= len(buffers):
                continue
            buffer = buffers[index]
            offset = buffer.scalar(_BUFFER_OFFSET, "Q")
            if offset > 1:  # large models keep buffer data after the flatbuffer
                out[name] = data[offset:offset + buffer.scalar(_BUFFER_SIZE, "Q")]
            else:
                out[name] = buffer.bytes(_BUFFER_DATA)
        return out
    except (struct.error, IndexError) as exc:
        raise ModelError(f"corrupt TFLite flatbuffer ({exc})") from None


def card_from_tflite(data: bytes, name: str = "model") -> ModelCard:
    entries = tflite_metadata(data)
    if METADATA_KEY not in entries:
        raise ModelError(f"{name}: TFLite file has no edge-genre metadata "
                         "(export it with 'edge-genre export')")
    return ModelCard.from_json(entries[METADATA_KEY])


def card_from_onnx_props(props: dict[str, str], name: str = "model") -> ModelCard:
    if METADATA_KEY not in props:
        raise ModelError(f"{name}: ONNX file has no edge-genre metadata "
                         "(export it with 'edge-genre export')")
    return ModelCard.from_json(props[METADATA_KEY])


def read_card(path: str | Path) -> ModelCard:
    """The card of a .tflite file (no interpreter needed). ONNX cards are read by the backend."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return card_from_tflite(data, str(path))
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}" if str(path) not in str(exc) else str(exc)) from None
