"""Slow and stalled clients are dropped within the server's time bounds (raw sockets, loopback).

A client that connects and sends nothing, sends half a request head, drips a head or a body a
byte at a time, or stops in the middle of an upload once held its connection open for ever:
uvicorn times out neither heads nor bodies. The server here runs with short bounds
(--header-timeout 2, --idle-timeout 1, --body-timeout 4); each test measures how long the server
takes to answer 408 and/or close, and checks that it still serves afterwards.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import gtzan_file
from tests.serve.server import default_model, multipart, post_file, start_server  # noqa: F401

HEADER_S, IDLE_S, BODY_S = 2.0, 1.0, 4.0
#: Scheduling slack on a busy machine on top of a bound.
SLACK_S = 3.0
#: How long a test waits for the server at most (well past every bound).
GIVE_UP_S = 30.0
#: Pace of a dripping client: well under IDLE_S, so only total deadlines can stop it.
DRIP_S = 0.25


@pytest.fixture(scope="module")
def timed_server(default_model, tmp_path_factory):
    srv = start_server(default_model, tmp_path_factory.mktemp("serve-timeouts") / "serve.log",
                       "--no-mic", "--header-timeout", str(HEADER_S), "--idle-timeout", str(IDLE_S),
                       "--body-timeout", str(BODY_S))
    yield srv
    srv.stop()


def connect(srv) -> socket.socket:
    return socket.create_connection(("127.0.0.1", srv.port), timeout=GIVE_UP_S)


def read_to_close(sock: socket.socket, t0: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed (seconds
    after ``t0``). Fails if it is still open after GIVE_UP_S."""
    answer = b""
    sock.settimeout(GIVE_UP_S)
    while True:
        try:
            part = sock.recv(65536)
        except ConnectionResetError:
            part = b""
        except socket.timeout:
            pytest.fail(f"the connection was still open {GIVE_UP_S:g} s later; got {answer!r}")
        if not part:
            return answer, time.monotonic() - t0
        answer += part


def drip(sock: socket.socket, data: bytes, every: float = DRIP_S) -> None:
    """Send ``data`` a byte at a time, one every ``every`` seconds, until the server answers or
    closes (the wait for that is the pacing) or GIVE_UP_S passes."""
    t0 = time.monotonic()
    for i in range(len(data)):
        if time.monotonic() - t0 > GIVE_UP_S:
            pytest.fail("the server let a client drip bytes for "
                        f"{GIVE_UP_S:g} s without answering or closing")
        try:
            sock.sendall(data[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            return
        sock.settimeout(every)
        try:
            sock.recv(1, socket.MSG_PEEK)  # an answer, or b"" at close: stop sending
            return
        except socket.timeout:
            continue
        except ConnectionResetError:
            return
    pytest.fail("the whole request was dripped without an answer")


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length (head and body)."""
    sock.settimeout(GIVE_UP_S)
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536) or pytest.fail(f"closed after {answer!r}")
    head, body = answer.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += sock.recv(65536) or pytest.fail(f"closed after {answer!r}")
    return head + b"\r\n\r\n" + body


def status_of(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


def upload_head(length: int) -> tuple[bytes, bytes]:
    """(request head, body) of a multipart upload of ``length`` bytes of file."""
    body, content_type = multipart({"file": ("slow.wav", b"\0" * length)})
    head = (f"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head, body


def still_serving(srv) -> None:
    path = gtzan_file("jazz.00002")
    status, body = post_file(srv.url + "api/classify", path.name, path.read_bytes())
    assert status == 200, body


def test_help_shows_the_timeouts_and_their_defaults():
    done = subprocess.run([sys.executable, "-m", "edge_genre", "serve", "--help"],
                          capture_output=True, text=True, timeout=60)
    text = " ".join(done.stdout.split())
    for option, default in (("--header-timeout", "default 10"), ("--idle-timeout", "default 10"),
                            ("--body-timeout", "default 120")):
        assert option in text and default in text.split(option, 2)[-1][:120]


def test_stalled_upload_body_is_408_and_closed_after_the_idle_timeout(timed_server):
    head, body = upload_head(100_000)
    with connect(timed_server) as sock:
        sock.sendall(head + body[:1000])  # then nothing
        t0 = time.monotonic()
        answer, closed = read_to_close(sock, t0)
    assert status_of(answer) == 408, answer
    assert b"stalled" in answer and b"connection: close" in answer.lower()
    assert IDLE_S * 0.9 <= closed < IDLE_S + SLACK_S, closed
    still_serving(timed_server)


def test_body_dripped_a_byte_at_a_time_is_408_after_the_body_timeout(timed_server):
    head, body = upload_head(100_000)
    with connect(timed_server) as sock:
        sock.sendall(head)
        t0 = time.monotonic()
        drip(sock, body)  # never idle for IDLE_S: only the total deadline stops it
        answer, closed = read_to_close(sock, t0)
    assert status_of(answer) == 408, answer
    assert b"longer than 4 s" in answer
    assert BODY_S * 0.9 <= closed < BODY_S + SLACK_S, closed
    still_serving(timed_server)


def test_silent_connection_is_closed_after_the_header_timeout(timed_server):
    with connect(timed_server) as sock:
        t0 = time.monotonic()
        answer, closed = read_to_close(sock, t0)
    assert answer == b""
    assert closed < HEADER_S + SLACK_S, closed


def test_partial_headers_then_stall_is_408_and_closed(timed_server):
    with connect(timed_server) as sock:
        t0 = time.monotonic()
        sock.sendall(b"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        answer, closed = read_to_close(sock, t0)
    assert status_of(answer) == 408, answer
    assert HEADER_S * 0.9 <= closed < HEADER_S + SLACK_S, closed


def test_headers_dripped_a_byte_at_a_time_are_dropped_after_the_header_timeout(timed_server):
    head, _ = upload_head(1000)
    with connect(timed_server) as sock:
        t0 = time.monotonic()
        drip(sock, head)  # each byte well within any idle bound
        answer, closed = read_to_close(sock, t0)
    assert status_of(answer) == 408, answer
    assert HEADER_S * 0.9 <= closed < HEADER_S + SLACK_S, closed


def test_second_request_on_a_kept_alive_connection_is_bounded_too(timed_server):
    with connect(timed_server) as sock:
        sock.sendall(b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        first = read_response(sock)
        assert status_of(first) == 200, first
        t0 = time.monotonic()
        drip(sock, b"GET /api/model HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200)
        rest, closed = read_to_close(sock, t0)
    assert HEADER_S * 0.9 <= closed < HEADER_S + SLACK_S, closed
    assert rest == b"" or status_of(rest) == 408, rest


def test_unread_body_dripped_after_the_answer_is_dropped(timed_server):
    """A body the app answers without reading (here a declared size far over the limit: 413)
    must still end within the header bound, not be discarded a byte at a time for ever."""
    head = (b"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; "
            b"boundary=x\r\nContent-Length: 900000000\r\n\r\n")
    with connect(timed_server) as sock:
        sock.sendall(head)
        answer = read_response(sock)
        assert status_of(answer) == 413, answer
        t0 = time.monotonic()
        drip(sock, b"\0" * 10_000)
        _, closed = read_to_close(sock, t0)
    assert closed < HEADER_S + SLACK_S, closed
    still_serving(timed_server)


def test_normal_upload_is_unaffected_by_short_timeouts(timed_server):
    still_serving(timed_server)
