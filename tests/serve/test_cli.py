"""``edge-genre serve`` as a command: binding, warnings, errors, and a runtime without TensorFlow."""
from __future__ import annotations

import socket
import subprocess
import sys

from tests.conftest import gtzan_file
from tests.serve.server import default_model, get_json, start_server  # noqa: F401


def test_help_lists_the_options():
    done = subprocess.run([sys.executable, "-m", "edge_genre", "serve", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    for option in ("--host", "--port", "--model", "--backend", "--max-upload-mb", "--max-seconds",
                   "--no-mic", "--device", "--workers"):
        assert option in done.stdout


def test_other_host_than_loopback_is_warned_about(default_model, tmp_path):
    srv = start_server(default_model, tmp_path / "serve.log", "--host", "0.0.0.0", "--no-mic")
    try:
        assert srv.token  # off loopback the API needs the token printed at start
        assert get_json(f"http://127.0.0.1:{srv.port}/api/model", token=srv.token)["labels"]
    finally:
        assert srv.stop() == 0
    assert "WARNING: serving on 0.0.0.0, reachable from other machines" in srv.log()


def test_loopback_server_is_not_warned_about_and_stops_cleanly(default_model, tmp_path):
    srv = start_server(default_model, tmp_path / "serve.log", "--no-mic")
    assert srv.url.startswith("http://127.0.0.1:")
    assert srv.stop() == 0
    assert "WARNING" not in srv.log()


def test_taken_port_is_one_line_error(default_model):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "edge_genre", "serve", "--port", str(port),
                               "--model", str(default_model)], capture_output=True, text=True,
                              timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"edge-genre serve: error: cannot listen on 127.0.0.1:{port} (Address already in use)"]


def test_missing_model_is_one_line_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "edge_genre", "serve", "--port", "0", "--model",
                           str(tmp_path / "nothing.tflite")], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "nothing.tflite" in done.stderr


def test_server_runtime_never_imports_tensorflow_or_librosa(default_model):
    """Build the app and classify a real file in one process; then look at sys.modules."""
    code = f"""
import sys
from edge_genre.serve.app import create_app
from edge_genre.serve.live import LiveHub
from edge_genre.serve.service import GenreService
service = GenreService({str(default_model)!r})
app = create_app(service, LiveHub(service.model_path))
result = service.classify_bytes(open({str(gtzan_file('jazz.00002'))!r}, 'rb').read(), 'jazz.wav')
assert result['genre'] in result['probabilities']
heavy = sorted(m for m in ('tensorflow', 'keras', 'librosa', 'tf_keras') if m in sys.modules)
print('heavy:', heavy)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "heavy: []" in done.stdout
