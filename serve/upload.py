"""Reading one uploaded file from a multipart request, with the size limit enforced as it arrives.

Starlette's ``request.form()`` spools a whole upload to a temporary file before the handler sees
it, so a limit checked afterwards has already cost the disk and the transfer. Here the request
body is fed chunk by chunk to python-multipart's streaming parser (the parser Starlette itself
uses) and reading stops as soon as the file part passes ``max_bytes``: a declared
``Content-Length`` over the limit is refused before a byte is read. The file is kept in memory
only; nothing touches the disk.
"""
from __future__ import annotations

from dataclasses import dataclass

try:  # python-multipart >= 0.0.13
    from python_multipart.multipart import MultipartParser, parse_options_header
except ImportError:  # older releases only have the ``multipart`` name
    from multipart.multipart import MultipartParser, parse_options_header

#: Multipart framing allowed on top of the file itself (boundaries, part headers, other fields).
FRAMING_BYTES = 64 * 1024
#: After refusing an upload, up to this many more bytes are read and thrown away so that the
#: client, still sending, gets to read the 413: most clients (browsers, urllib) report a
#: connection reset instead when the server closes on an unread body. Bodies larger than this
#: beyond the limit are cut off at once.
DRAIN_BYTES = 8 * 1024 * 1024


class UploadError(Exception):
    """An upload that cannot be accepted; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its name as the client gave it and its bytes."""

    filename: str
    data: bytes


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.3g} MB"


def too_large(max_bytes: int) -> UploadError:
    return UploadError(413, f"the file is larger than the {_megabytes(max_bytes)} limit")


class _FilePartCollector:
    """python-multipart callbacks that keep the bytes of one named form field."""

    def __init__(self, field: str, max_bytes: int):
        self.field, self.max_bytes = field, max_bytes
        self.found: Upload | None = None
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._wanted = False
        self._name = ""
        self._data = bytearray()

    def callbacks(self) -> dict:
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field_cb,
                "on_header_value": self._header_value_cb, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
                "on_part_end": self._part_end}

    def _part_begin(self) -> None:
        self._headers, self._wanted, self._data = {}, False, bytearray()

    def _header_field_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_cb(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self._wanted = name == self.field and self.found is None
        self._name = options.get(b"filename", b"").decode("utf-8", "replace") or "upload"

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._wanted:
            return
        self._data += data[start:end]
        if len(self._data) > self.max_bytes:
            raise too_large(self.max_bytes)

    def _part_end(self) -> None:
        if self._wanted:
            self.found = Upload(self._name, bytes(self._data))
            self._wanted = False


async def read_upload(request, field: str = "file", max_bytes: int = 50_000_000) -> Upload:
    """The file sent as form field ``field`` of a multipart/form-data ``request``.

    Raises UploadError: 413 when the body (declared or received) passes ``max_bytes`` plus
    framing (the file part is never held beyond ``max_bytes``), 400 when the request is not
    multipart or has no such field.
    """
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise UploadError(400, f"send the audio file as multipart/form-data in a field named '{field}'")
    body_limit = max_bytes + FRAMING_BYTES
    declared = request.headers.get("content-length")
    declared = int(declared) if declared is not None and declared.isdigit() else None
    if declared is not None and declared > body_limit + DRAIN_BYTES:
        raise too_large(max_bytes)  # not worth reading: the connection is closed unread
    collector = _FilePartCollector(field, max_bytes)
    parser = MultipartParser(options[b"boundary"], collector.callbacks())
    stream = request.stream()
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if received > body_limit:  # a body of many small fields is refused too
                raise too_large(max_bytes)
            parser.write(chunk)
        parser.finalize()
    except UploadError:
        # Discard (never keep) what is still coming, up to DRAIN_BYTES, then answer.
        async for chunk in stream:
            received += len(chunk)
            if received > body_limit + DRAIN_BYTES:
                break
        raise
    except Exception as exc:  # python-multipart's errors for malformed bodies
        if collector.found is None:
            raise UploadError(400, f"malformed multipart body ({exc})") from None
    if collector.found is None:
        raise UploadError(400, f"no file in the form field '{field}'")
    return collector.found
