"""Who may use the server: other origins, other Host names, and the token off loopback.

Any web page the user visits can send requests to a server on 127.0.0.1: a form POST with its
own ``Origin``, or (after pointing its own domain at 127.0.0.1, "DNS rebinding") requests with its
own ``Host``. Both are refused. A server bound off loopback needs the token it prints at start,
as ``Authorization: Bearer``, ``?token=`` or the cookie the page gets from ``/?token=``.
All against real servers on 127.0.0.1.
"""
from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import urllib.parse

import pytest

from tests.conftest import gtzan_file
from tests.serve.server import (default_model, multipart, server,  # noqa: F401
                                start_server)

ALLOWED = "http://localhost:5173"


def request(srv, method: str, path: str, headers: dict | None = None, body: bytes | None = None,
            host: str | None = None) -> tuple[int, dict, bytes]:
    """(status, headers (lower-case names), body) of one request; ``host`` replaces the Host."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host=host is not None, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return (response.status, {k.lower(): v for k, v in response.getheaders()},
                response.read())
    finally:
        conn.close()


def upload(srv, headers: dict | None = None, host: str | None = None, path="/api/classify"):
    data = gtzan_file("jazz.00002").read_bytes()
    body, content_type = multipart({"file": ("jazz.00002.wav", data)})
    return request(srv, "POST", path, {**(headers or {}), "Content-Type": content_type}, body, host)


@pytest.fixture(scope="module")
def origin_server(default_model, tmp_path_factory):
    srv = start_server(default_model, tmp_path_factory.mktemp("serve-origin") / "serve.log",
                       "--no-mic", "--allow-origin", ALLOWED)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def token_server(default_model, tmp_path_factory):
    """Bound to all addresses (reached here through 127.0.0.1): a token is generated."""
    srv = start_server(default_model, tmp_path_factory.mktemp("serve-token") / "serve.log",
                       "--no-mic", "--host", "0.0.0.0")
    yield srv
    srv.stop()


# ----------------------------------------------------------------------------- Origin


def test_upload_from_a_foreign_origin_is_403(server):
    status, _, body = upload(server, {"Origin": "http://evil.example"})
    assert status == 403, body
    assert "other origins" in json.loads(body)["error"]
    status, _, body = upload(server, {"Origin": "null"})  # sandboxed frames, file:// pages
    assert status == 403, body


def test_same_origin_upload_is_served(server):
    status, _, body = upload(server, {"Origin": f"http://127.0.0.1:{server.port}"})
    assert status == 200, body
    status, _, body = upload(server, {"Origin": f"http://localhost:{server.port}"},
                             host=f"localhost:{server.port}")
    assert status == 200, body


def test_cross_site_api_get_without_origin_is_403(server):
    """<img src=http://127.0.0.1:8000/api/live> on another site sends no Origin, but browsers
    say Sec-Fetch-Site: it must not open the microphone."""
    for site in ("cross-site", "same-site"):
        status, _, _ = request(server, "GET", "/api/live", {"Sec-Fetch-Site": site})
        assert status == 403
    status, _, _ = request(server, "GET", "/api/model", {"Sec-Fetch-Site": "same-origin"})
    assert status == 200
    # A link from another site to the page itself still opens it.
    status, _, _ = request(server, "GET", "/", {"Sec-Fetch-Site": "cross-site"})
    assert status == 200


def test_foreign_origin_on_every_api_endpoint_is_403(server):
    for path in ("/api/model", "/api/live"):
        status, _, _ = request(server, "GET", path, {"Origin": "http://evil.example"})
        assert status == 403, path


def test_allowed_origin_is_served_with_cors_headers(origin_server):
    status, headers, body = upload(origin_server, {"Origin": ALLOWED})
    assert status == 200, body
    assert headers["access-control-allow-origin"] == ALLOWED
    status, headers, _ = request(origin_server, "OPTIONS", "/api/classify", {
        "Origin": ALLOWED, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    assert status == 200 and headers["access-control-allow-origin"] == ALLOWED
    # Only that one.
    status, _, _ = upload(origin_server, {"Origin": "http://localhost:5174"})
    assert status == 403


def test_bad_allow_origin_is_a_one_line_error(default_model):
    done = subprocess.run([sys.executable, "-m", "edge_genre", "serve", "--port", "0", "--model",
                           str(default_model), "--allow-origin", "localhost:3000"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "--allow-origin" in done.stderr


# ----------------------------------------------------------------------------- Host


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io",
                                  "10.1.2.3"])
def test_foreign_host_is_421(server, host):
    status, _, body = request(server, "GET", "/api/model", host=host)
    assert status == 421, body
    status, _, body = upload(server, host=host)
    assert status == 421, body
    status, _, _ = request(server, "GET", "/", host=host)  # the page too: it is the rebinder's
    assert status == 421


def test_loopback_names_are_served(server):
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "localhost"):
        status, _, body = request(server, "GET", "/api/model", host=host)
        assert status == 200, (host, body)


# ----------------------------------------------------------------------------- token


def test_off_loopback_a_token_is_printed_once_and_required(token_server):
    token = token_server.token
    assert token and len(token) >= 32
    lines = [line for line in token_server.log().splitlines() if token in line]
    assert len(lines) == 1
    assert re.search(rf"http://\S+:{token_server.port}/\?token={token}", lines[0])
    for path in ("/api/model", "/api/live"):
        status, headers, body = request(token_server, "GET", path)
        assert status == 401, (path, body)
        assert "token" in json.loads(body)["error"] and headers["www-authenticate"] == "Bearer"
    status, _, _ = upload(token_server)
    assert status == 401
    status, _, _ = request(token_server, "GET", "/api/model", {"Authorization": "Bearer wrong"})
    assert status == 401


def test_token_as_bearer_query_or_cookie(token_server):
    token = token_server.token
    status, _, body = upload(token_server, {"Authorization": f"Bearer {token}"})
    assert status == 200, body
    status, _, body = upload(token_server, path=f"/api/classify?token={urllib.parse.quote(token)}")
    assert status == 200, body
    # Opening the page with ?token= sets the cookie and sends the browser to the clean address.
    status, headers, _ = request(token_server, "GET", f"/?token={urllib.parse.quote(token)}")
    assert status == 303 and headers["location"] == "/"
    cookie = headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    name_value = cookie.split(";", 1)[0]
    assert name_value == f"edge-genre-token-{token_server.port}={token}"
    status, _, body = upload(token_server, {"Cookie": name_value})
    assert status == 200, body
    # The live stream takes it too (here: its one --no-mic error event, not a 401).
    status, headers, body = request(token_server, "GET", "/api/live", {"Cookie": name_value})
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert b"--no-mic" in body
    # A wrong token on the page is refused; the page without one is served (it says what is
    # missing when its API calls are refused).
    status, _, _ = request(token_server, "GET", "/?token=wrong")
    assert status == 401
    status, _, _ = request(token_server, "GET", "/")
    assert status == 200


def test_off_loopback_the_bound_hosts_names_are_accepted(token_server):
    """Bound to 0.0.0.0: any address and this machine's names, still no other name."""
    import socket

    auth = {"Authorization": f"Bearer {token_server.token}"}
    for host in ("10.1.2.3:8000", "[::1]:8000", socket.gethostname()):
        status, _, body = request(token_server, "GET", "/api/model", auth, host=host)
        assert status == 200, (host, body)
    status, _, _ = request(token_server, "GET", "/api/model", auth, host="evil.example")
    assert status == 421


def test_token_can_be_set_and_no_token_is_warned_about(default_model, tmp_path):
    srv = start_server(default_model, tmp_path / "set.log", "--no-mic", "--token", "s3cret-Token")
    try:
        assert srv.token == "s3cret-Token"  # asked for on loopback too: required there as well
        assert request(srv, "GET", "/api/model")[0] == 401
        assert request(srv, "GET", "/api/model", {"Authorization": "Bearer s3cret-Token"})[0] == 200
    finally:
        assert srv.stop() == 0
    srv = start_server(default_model, tmp_path / "none.log", "--no-mic", "--host", "0.0.0.0",
                       "--no-token")
    try:
        assert srv.token is None
        status, _, body = upload(srv)
        assert status == 200, body
    finally:
        assert srv.stop() == 0
    assert "WARNING: serving on 0.0.0.0 without a token (--no-token)" in srv.log()


def test_loopback_server_needs_no_token(server):
    assert server.token is None
    status, _, body = upload(server)
    assert status == 200, body
