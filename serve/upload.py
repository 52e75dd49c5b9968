"""Reading one uploaded file from a multipart request, with the size limit enforced as it arrives.

Starlette's ``request.form()`` spools a whole upload to a temporary file before the handler sees
it, so a limit checked afterwards has already cost the disk and the transfer. Here the request
body is fed piece by piece, as it arrives, to python-multipart's streaming parser (the parser
Starlette itself uses) and reading stops as soon as the file part passes ``max_bytes``: a declared
``Content-Length`` over the limit is refused before a byte is read. The file is kept in memory
only; nothing touches the disk.

Time is bounded too (``Timeouts``): a body that pauses longer than ``idle`` seconds between two
pieces, or is not complete ``body`` seconds after the handler started reading it, is answered
408 and the connection closed, so a client that trickles a byte a second, or stops, does not
hold a connection (and its buffer) for ever. uvicorn bounds the request head's size but has no
such timeout for bodies.
"""
from __future__ import annotations

import asyncio
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


@dataclass(frozen=True)
class Timeouts:
    """How long a client may take to send a request (seconds).

    Parameters
    ----------
    header : the request line and headers, from the connection's first byte of that request
        (enforced by the server's protocol, ``cli.py``).
    idle : the longest pause between two pieces of a body.
    body : the whole body of an upload, from when the handler starts reading it.
    """

    header: float = 10.0
    idle: float = 10.0
    body: float = 120.0

    def __post_init__(self) -> None:
        if min(self.header, self.idle, self.body) <= 0:
            raise ValueError("timeouts must be positive")


class UploadError(Exception):
    """An upload that cannot be accepted; ``status`` is the HTTP status to answer with, and
    ``close`` says the connection is to be closed with the answer (a client too slow to wait for,
    or gone)."""

    def __init__(self, status: int, message: str, close: bool = False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


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


class _Clock:
    """The deadlines of one body: ``pieces`` waits for each piece within both of them."""

    def __init__(self, receive, timeouts: Timeouts):
        self._receive, self.timeouts = receive, timeouts
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + timeouts.body
        self.done = False

    async def pieces(self):
        """The body's pieces (ASGI ``http.request`` bodies) as they arrive; UploadError 408 when
        one is late."""
        while not self.done:
            remaining = self._deadline - self._loop.time()
            wait = min(self.timeouts.idle, remaining)
            try:
                if wait <= 0:
                    raise asyncio.TimeoutError
                message = await asyncio.wait_for(self._receive(), wait)
            except asyncio.TimeoutError:
                if wait < self.timeouts.idle:
                    raise UploadError(408, f"the upload took longer than {self.timeouts.body:g} s: "
                                           "try again on a faster connection", close=True) from None
                raise UploadError(408, f"the upload stalled: nothing arrived for "
                                       f"{self.timeouts.idle:g} s", close=True) from None
            if message["type"] == "http.disconnect":
                raise UploadError(400, "the client closed the connection before the upload "
                                       "was complete", close=True)
            self.done = not message.get("more_body", False)
            body = message.get("body", b"")
            if body:
                yield body


async def read_upload(request, field: str = "file", max_bytes: int = 50_000_000,
                      timeouts: Timeouts | None = None) -> Upload:
    """The file sent as form field ``field`` of a multipart/form-data ``request``.

    Raises UploadError: 413 when the body (declared or received) passes ``max_bytes`` plus
    framing (the file part is never held beyond ``max_bytes``), 400 when the request is not
    multipart or has no such field, 408 (close) when the body pauses longer than
    ``timeouts.idle`` or takes longer than ``timeouts.body``.
    """
    timeouts = timeouts or Timeouts()
    content_type, options = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise UploadError(400, f"send the audio file as multipart/form-data in a field named '{field}'")
    body_limit = max_bytes + FRAMING_BYTES
    declared = request.headers.get("content-length")
    declared = int(declared) if declared is not None and declared.isdigit() else None
    if declared is not None and declared > body_limit + DRAIN_BYTES:
        raise too_large(max_bytes)  # not worth reading
    collector = _FilePartCollector(field, max_bytes)
    parser = MultipartParser(options[b"boundary"], collector.callbacks())
    clock = _Clock(request.receive, timeouts)
    stream = clock.pieces()
    received = 0
    try:
        async for piece in stream:
            received += len(piece)
            if received > body_limit:  # a body of many small fields is refused too
                raise too_large(max_bytes)
            parser.write(piece)
        parser.finalize()
    except UploadError as refused:
        if not (refused.close or clock.done):
            # Discard (never keep) what is still coming, up to DRAIN_BYTES and within the same
            # deadlines, then answer. What is left after that the server discards after the
            # answer, for at most Timeouts.header seconds (cli.py's protocol).
            try:
                async for piece in stream:
                    received += len(piece)
                    if received > body_limit + DRAIN_BYTES:
                        break
            except UploadError:
                pass
        raise
    except Exception as exc:  # python-multipart's errors for malformed bodies
        if collector.found is None:
            raise UploadError(400, f"malformed multipart body ({exc})") from None
    finally:
        await stream.aclose()
    if collector.found is None:
        raise UploadError(400, f"no file in the form field '{field}'")
    return collector.found
