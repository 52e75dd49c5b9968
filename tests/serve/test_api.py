"""The HTTP API against a real ``edge-genre serve`` on loopback, with real GTZAN excerpts."""
from __future__ import annotations

import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.conftest import gtzan_file
from tests.serve.server import (default_model, get_json, multipart, post_file,  # noqa: F401
                                server, start_server, wav_bytes)

#: Real excerpts of three genres, one in GTZAN's original .au format.
EXCERPTS = ("jazz.00002", "metal.00002", "blues.00089")


@pytest.fixture(scope="module")
def small_server(default_model, tmp_path_factory):
    """A server with small limits: 1 MB uploads, 10 s of audio."""
    from tests.serve.server import start_server

    srv = start_server(default_model, tmp_path_factory.mktemp("serve-small") / "serve.log",
                       "--no-mic", "--max-upload-mb", "1", "--max-seconds", "10")
    yield srv
    srv.stop()


def still_serving(srv) -> None:
    """The server answers and still classifies real audio."""
    assert get_json(srv.url + "api/model")["labels"]
    path = gtzan_file("classical.00051")
    audio = read_excerpt(path, seconds=8)
    status, body = post_file(srv.url + "api/classify", "eight-seconds.wav", audio)
    assert status == 200, body


def read_excerpt(path, seconds: float) -> bytes:
    """The first ``seconds`` of a real excerpt as 16-bit WAV bytes."""
    from edge_genre.edge.audio import read, to_mono

    audio = read(path)
    return wav_bytes(to_mono(audio.samples)[:int(seconds * audio.sample_rate)], audio.sample_rate)


def test_model_endpoint(server, default_model):
    model = get_json(server.url + "api/model")
    assert model["file"] == default_model.name
    assert len(model["labels"]) == 10 and "jazz" in model["labels"]
    assert model["limits"] == {"max_upload_bytes": 50_000_000, "max_seconds": 600.0}
    assert model["live"] is False
    assert str(default_model.parent) not in str(model)  # no server paths


def test_page_and_static_files_are_served(server):
    import urllib.request

    with urllib.request.urlopen(server.url) as r:
        page = r.read().decode()
    assert "<script src=\"/static/app.js\">" in page and "http" not in page.split("<body>")[1]
    for name in ("app.js", "style.css"):
        with urllib.request.urlopen(server.url + "static/" + name) as r:
            assert r.status == 200 and len(r.read()) > 500


@pytest.mark.parametrize("track", EXCERPTS)
def test_classify_real_excerpt(server, default_model, track):
    from edge_genre.edge.classifier import Classifier

    path = gtzan_file(track)
    status, result = post_file(server.url + "api/classify", path.name, path.read_bytes())
    assert status == 200, result
    labels = get_json(server.url + "api/model")["labels"]
    assert result["file"] == path.name
    assert set(result["probabilities"]) == set(labels)
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=2e-3)
    top = max(result["probabilities"], key=result["probabilities"].get)
    assert result["genre"] == top and result["confidence"] == result["probabilities"][top]
    assert result["duration"] == pytest.approx(30.0, abs=0.7)
    # 4 s windows every 2 s over 30 s: 14 windows, each with its own decision.
    windows = result["window_decisions"]
    assert len(windows) == result["windows"] == 14
    assert [w["start"] for w in windows] == pytest.approx([2.0 * i for i in range(14)], abs=0.05)
    for w in windows:
        assert w["end"] - w["start"] == pytest.approx(4.0, abs=0.05)
        assert w["genre"] == max(w["probabilities"], key=w["probabilities"].get)
    assert result["model"]["file"] == default_model.name
    # The server says what the edge runtime says for the same file.
    expected = Classifier(default_model).classify_file(path)
    assert result["genre"] == expected.label
    got = np.array([result["probabilities"][k] for k in expected.labels])
    np.testing.assert_allclose(got, expected.probs, atol=1e-3)


#: A decision's keys in every interface: the track's, and a window's on top of those.
DECISION_KEYS = {"genre", "confidence", "probabilities"}
WINDOW_KEYS = DECISION_KEYS | {"smoothed_genre", "smoothed_confidence", "smoothed_probabilities",
                               "window", "start", "end", "silent", "level_dbfs", "latency_ms"}


def test_predict_listen_and_the_api_say_a_decision_with_the_same_keys(server, default_model,
                                                                     capsys):
    """One vocabulary: ``predict --json``, ``listen --json``'s line and ``POST /api/classify``
    give the same file's decision under the same keys with the same values; only the CLI adds
    the deprecated old names (``views.DEPRECATED_KEYS``)."""
    import json

    from edge_genre.cli import main
    from edge_genre.edge import views
    from edge_genre.edge.audio import read
    from edge_genre.edge.classifier import Classifier

    deprecated = set(views.DEPRECATED_KEYS)
    path = gtzan_file("jazz.00002")
    assert main(["predict", "--model", str(default_model), "--json", "--windows", str(path)]) == 0
    predicted = json.loads(capsys.readouterr().out)
    status, served = post_file(server.url + "api/classify", path.name, path.read_bytes())
    assert status == 200, served
    audio = read(path)
    listened = [views.listen_record(d, audio.sample_rate, overflows=0, now=0.0)
                for d in Classifier(default_model).push(audio.samples, audio.sample_rate)]

    # The track: the same keys (beside each interface's own envelope), the same values.
    envelope = {"file", "model", "backend", "elapsed_ms", "window_decisions"}
    assert DECISION_KEYS <= set(served)
    assert set(predicted) - envelope == (set(served) - envelope) | {"label", "probs"}
    assert not deprecated & set(served)
    for key in DECISION_KEYS | {"windows", "duration", "padded"}:
        assert predicted[key] == pytest.approx(served[key], abs=1e-4), key
    assert predicted["label"] == predicted["genre"] and predicted["probs"] == predicted["probabilities"]

    # A window: the same keys in predict --windows, listen and the API, the same decision.
    assert len(listened) >= 13 and len(served["window_decisions"]) == 14
    for cli, api, live in zip(predicted["window_decisions"], served["window_decisions"], listened):
        assert set(api) == WINDOW_KEYS
        assert set(cli) == WINDOW_KEYS | deprecated
        assert set(live) == WINDOW_KEYS | deprecated | {"device_rate", "overflows", "time"}
        for key in ("genre", "smoothed_genre", "window", "start", "end", "silent"):
            assert cli[key] == api[key] == live[key], key
        for key in ("probabilities", "smoothed_probabilities"):
            assert cli[key] == pytest.approx(api[key], abs=1e-4)
            assert live[key] == pytest.approx(api[key], abs=2e-3)  # streamed: float noise
        assert (live["label"], live["smoothed_label"], live["probs"]) == \
            (live["genre"], live["smoothed_genre"], live["probabilities"])


def test_non_audio_upload_is_415(server, tmp_path):
    status, body = post_file(server.url + "api/classify", "notes.txt",
                             b"these are not the samples you are looking for\n" * 50)
    assert status == 415
    assert "notes.txt" in body["error"] and "WAV" in body["error"]
    assert "BytesIO" not in body["error"]
    still_serving(server)


def test_empty_upload_is_400(server):
    status, body = post_file(server.url + "api/classify", "empty.wav", b"")
    assert status == 400 and body == {"error": "empty.wav: the file is empty"}
    still_serving(server)


def test_truncated_wav_header_is_415(server):
    data = gtzan_file("jazz.00002").read_bytes()[:30]
    status, body = post_file(server.url + "api/classify", "cut.wav", data)
    assert status == 415 and "cut.wav" in body["error"]


def test_too_short_and_silent_are_422(server):
    path = gtzan_file("jazz.00002")
    status, body = post_file(server.url + "api/classify", "short.wav", read_excerpt(path, 1.0))
    assert status == 422 and "too short" in body["error"]
    status, body = post_file(server.url + "api/classify", "silence.wav",
                             wav_bytes(np.zeros(22050 * 6), 22050))
    assert status == 422 and "silent" in body["error"]
    still_serving(server)


def test_missing_field_and_not_multipart_are_400(server):
    import urllib.error
    import urllib.request

    status, body = post_file(server.url + "api/classify", "a.wav", b"RIFF", field="audio")
    assert status == 400 and "'file'" in body["error"]
    request = urllib.request.Request(server.url + "api/classify", data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 400 and "multipart" in caught.value.read().decode()


def test_unknown_path_is_json_404(server):
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(server.url + "api/nothing", timeout=30)
    assert caught.value.code == 404 and caught.value.headers["content-type"] == "application/json"


def test_oversize_upload_is_413(small_server):
    path = gtzan_file("jazz.00002")  # 1.3 MB > the 1 MB limit
    status, body = post_file(small_server.url + "api/classify", path.name, path.read_bytes())
    assert status == 413 and "1 MB limit" in body["error"]
    still_serving(small_server)


def test_too_long_audio_is_413(small_server):
    data = read_excerpt(gtzan_file("jazz.00002"), 12.0)  # 530 kB: under the size limit
    assert len(data) < 1_000_000
    status, body = post_file(small_server.url + "api/classify", "twelve.wav", data)
    assert status == 413 and "10 s limit" in body["error"]
    still_serving(small_server)


def _raw_request(srv, head: str, pieces, chunked: bool) -> tuple[int, str, int]:
    """Send a request's body in ``pieces`` with a socket (``chunked``: each one an HTTP/1.1
    chunk of ``Transfer-Encoding: chunked``), stopping as soon as the server has answered.

    Returns (status, body, bytes of the body sent)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small send buffer: what the client has sent is close to what the server has taken.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", srv.port))
    sent = 0
    try:
        sock.sendall(head.encode())
        for piece in pieces:
            # Wait for the server: its answer (or its close) ends the upload, space in the
            # socket's buffer lets the next piece go.
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable or not writable:
                break
            try:
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        sock.settimeout(30)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            part = sock.recv(65536)
            if not part:
                break
            answer += part
    finally:
        sock.close()
    status = int(answer.split(b" ", 2)[1])
    return status, answer.split(b"\r\n\r\n", 1)[1].decode(errors="replace"), sent


def test_size_limit_is_enforced_while_reading(small_server):
    """A body over the limit is refused before the client has finished sending it: the file is
    never held beyond the limit, and at most DRAIN_BYTES more are read and thrown away."""
    from edge_genre.serve.upload import DRAIN_BYTES, FRAMING_BYTES

    body_start, content_type = multipart({"file": ("big.wav", b"")})
    prefix = body_start[:body_start.index(b"\r\n--")]  # headers of the file part, no end
    junk = [prefix] + [b"\0" * 65536] * 480  # 31 MB on a 1 MB limit
    head = (f"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n")
    status, body, sent = _raw_request(small_server, head, junk, chunked=True)
    assert status == 413 and "limit" in body
    most = 1_000_000 + FRAMING_BYTES + DRAIN_BYTES + 2_000_000  # socket buffers on top
    assert sent < most, f"the client sent {sent} bytes before the server refused"
    # A declared length over the limit is refused without reading the body at all.
    head = (f"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {200_000_000}\r\n\r\n")
    status, body, sent = _raw_request(small_server, head, [b"\0" * 65536] * 50, chunked=False)
    assert status == 413 and sent < 3_000_000
    still_serving(small_server)


def post_file_telling(url: str, filename: str, data: bytes, sent, timeout: float = 180):
    """``post_file``, releasing the semaphore ``sent`` once the whole request has been sent."""
    import http.client
    import json
    from urllib.parse import urlsplit

    body, content_type = multipart({"file": (filename, data)})
    where = urlsplit(url)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=timeout)
    try:
        conn.request("POST", where.path, body=body, headers={"Content-Type": content_type})
        sent.release()
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.slow
def test_burst_of_concurrent_requests_all_succeed(server):
    """16 real excerpts at once: every one 200, and the server answers other requests while they
    are classified (one at a time: one worker)."""
    import threading

    tracks = ["blues.00004", "classical.00051", "country.00004", "disco.00003", "hiphop.00003",
              "jazz.00002", "metal.00002", "pop.00003", "reggae.00000", "rock.00009"]
    files = [gtzan_file(t) for t in (tracks + tracks)[:16]]
    sent = threading.Semaphore(0)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=17) as pool:
        futures = [pool.submit(post_file_telling, server.url + "api/classify", p.name,
                               p.read_bytes(), sent) for p in files]
        for _ in files:  # every upload is with the server
            assert sent.acquire(timeout=120), "the uploads were not all sent"
        # Inference runs off the event loop: the server answers other requests meanwhile, well
        # before the uploads (queued behind one worker) are done.
        t1 = time.monotonic()
        assert get_json(server.url + "api/model", timeout=60)["labels"]
        model_ms = (time.monotonic() - t1) * 1e3
        busy = sum(not f.done() for f in futures)
        results = [f.result() for f in futures]
    elapsed = time.monotonic() - t0
    print(f"GET /api/model during the burst: {model_ms:.0f} ms with {busy} uploads still running")
    # An event loop blocked by inference would answer it after the uploads queued before it.
    assert busy >= len(files) // 2, f"answered with only {busy} of {len(files)} uploads left"
    assert [status for status, _ in results] == [200] * 16, [b for s, b in results if s != 200]
    assert [body["file"] for _, body in results] == [p.name for p in files]
    print(f"16 concurrent 30 s excerpts: {elapsed:.1f} s")
    still_serving(server)
