"""A real ``edge-genre serve`` process on loopback for the serve tests, and a small HTTP client.

Not a conftest.py (a second ``conftest`` module would shadow tests/conftest.py); test modules
import the fixtures they use. The server runs the default model the edge tests use
(``tests.edge.modelfiles``: the shipped file, or ``EDGE_GENRE_TEST_MODELS``) and is skipped with
that module's reason when there is none. It listens on ``--port 0`` and the port is read from
the line the command prints, so parallel runs never race for a port.
"""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edge_genre.benchmarks.proc import interrupt
from tests.edge.modelfiles import default_model  # noqa: F401 (fixture)
from tests.process_output import LogFollower

START_TIMEOUT = 90.0
URL_LINE = re.compile(r"edge-genre serve: (http://\S+/)(?:\?token=(\S+))?")


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    log_path: Path
    #: The access token the server printed (servers off loopback), else None.
    token: str | None = None
    output: LogFollower | None = None

    @property
    def port(self) -> int:
        return int(self.url.rstrip("/").rsplit(":", 1)[1])

    def log(self) -> str:
        """What the server printed so far (all of it once ``stop`` returned)."""
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> bool:
        """Wait until the server has printed ``text`` (False after ``timeout`` seconds)."""
        return self.output.wait_for(lambda printed: text in printed, timeout)

    def stop(self, timeout: float = 15.0) -> int:
        code = interrupt(self.process, timeout)
        if self.output is not None:
            self.output.join()  # the process has ended: the copy reaches the end of its output
        return code


def start_server(model: Path, log_path: Path, *args: str, env: dict | None = None) -> Server:
    """Start ``edge-genre serve --port 0``, wait for the line with its address and return once it
    answers /api/model.

    The address is printed after the socket listens, so the first request waits in the socket's
    backlog until the server runs: no retrying, no polling."""
    cmd = [sys.executable, "-m", "edge_genre", "serve", "--port", "0", "--model", str(model), *args]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, **(env or {}), "TF_CPP_MIN_LOG_LEVEL": "2"})
    output = LogFollower(process.stdout, log_path)
    t0 = time.monotonic()
    if not output.wait_for(lambda text: URL_LINE.search(text) is not None, START_TIMEOUT):
        if output.ended:  # it exited without serving
            process.wait()
            output.join()
            raise RuntimeError(f"serve exited with {process.returncode}:\n{output.text}")
        process.kill()
        process.wait()
        raise RuntimeError(f"serve did not start within {START_TIMEOUT:g} s:\n{output.text}")
    found = URL_LINE.search(output.text)
    url, token = found.group(1), found.group(2)
    try:
        get_json(url + "api/model", timeout=max(5.0, START_TIMEOUT - (time.monotonic() - t0)),
                 token=token)
    except (urllib.error.URLError, ConnectionError) as exc:
        process.kill()
        process.wait()
        output.join()
        raise RuntimeError(f"serve printed its address but did not answer ({exc}):\n"
                           f"{output.text}") from None
    return Server(process, url, log_path, token, output)


@pytest.fixture(scope="module")
def server(default_model, tmp_path_factory):
    """A server with the default limits and live mode off."""
    srv = start_server(default_model, tmp_path_factory.mktemp("serve") / "serve.log", "--no-mic")
    yield srv
    srv.stop()


# ----------------------------------------------------------------------------- HTTP client


def get_json(url: str, timeout: float = 30, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                timeout=timeout) as response:
        return json.loads(response.read())


def multipart(fields: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data form of files: field -> (filename, bytes)."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for field, (filename, data) in fields.items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                  f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                  .encode())
        out.write(data)
        out.write(b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def post_file(url: str, filename: str, data: bytes, field: str = "file",
              timeout: float = 120, headers: dict | None = None) -> tuple[int, dict]:
    """POST one file to ``url``, with extra ``headers``; (status, JSON body) whatever the status."""
    body, content_type = multipart({field: (filename, data)})
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={**(headers or {}), "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit mono WAV of float samples in [-1, 1]."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def parse_sse(lines):
    """(event, data dict) for each server-sent event in ``lines`` (raw byte lines of a stream),
    as they complete."""
    event, data = "message", []
    for raw in lines:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            yield event, json.loads("\n".join(data))
            event, data = "message", []


def sse_events(url: str, limit: int, timeout: float = 60):
    """Read up to ``limit`` server-sent events from ``url``: a list of (event, data dict).

    Stops early when the server ends the stream or after an ``error`` event; ``timeout`` bounds
    the wait for each line."""
    events = []
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in parse_sse(response):
            events.append(event)
            if len(events) >= limit or event[0] == "error":
                break
    return events
