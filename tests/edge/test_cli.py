"""`edge-genre predict` and `listen` through the real CLI, on real GTZAN files and broken ones."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import wave

import numpy as np
import pytest

from edge_genre.cli import main

from tests.conftest import REPO, gtzan_file
from tests.edge.modelfiles import fp32_onnx, fp32_tflite, int8_tflite  # noqa: F401 (fixtures)


def write_wav(path, y, rate):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(y, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture
def batch(tmp_path):
    """Two real excerpts and four bad files: corrupt, empty, silent, too short."""
    good = [gtzan_file("metal.00002"), gtzan_file("jazz.00003")]  # jazz.00003 is GTZAN's .au
    bad = {
        "corrupt": tmp_path / "corrupt.wav",
        "empty": tmp_path / "empty.wav",
        "silent": write_wav(tmp_path / "silent.wav", np.zeros(22050 * 6), 22050),
        "short": write_wav(tmp_path / "short.wav", np.random.default_rng(0).uniform(-.3, .3, 22050), 22050),
    }
    bad["corrupt"].write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    bad["empty"].write_bytes(b"")
    return good, bad


def test_predict_reports_bad_files_and_goes_on(fp32_tflite, batch, capsys):
    good, bad = batch
    paths = [str(good[0]), *map(str, bad.values()), str(good[1])]
    code = main(["predict", "--model", str(fp32_tflite), *paths])
    out, err = capsys.readouterr()
    assert code == 1  # some files failed
    for p in good:
        assert f"{p}: " in out
    labels = fp32_tflite and __import__("edge_genre.edge.modelfile", fromlist=["x"]).read_card(
        fp32_tflite).labels
    bars = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(bars) == 2 * len(labels)  # a bar per genre for each good file
    errors = err.strip().splitlines()
    assert len(errors) == 4
    for (kind, path), line in zip(bad.items(), errors):
        assert line.startswith(f"{path}: error: ")
    assert "cannot decode" in errors[0] or "no data chunk" in errors[0]
    assert "empty" in errors[1]
    assert "silent" in errors[2]
    assert "too short" in errors[3]


def test_predict_json_walks_folders(fp32_onnx, tmp_path, capsys):
    folder = tmp_path / "music"
    (folder / "sub").mkdir(parents=True)
    for track, where in (("reggae.00000", folder), ("classical.00051", folder / "sub")):
        src = gtzan_file(track)
        (where / src.name).write_bytes(src.read_bytes())
    (folder / "notes.txt").write_text("not audio: not picked up")
    code = main(["predict", "--model", str(fp32_onnx), "--json", str(folder)])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(out) == 2
    records = [json.loads(line) for line in out]
    for r in records:
        assert r["backend"] == "onnxruntime"
        assert set(r) >= {"file", "genre", "confidence", "probabilities", "windows"}
        assert r["genre"] == max(r["probabilities"], key=r["probabilities"].get)
        assert r["confidence"] == r["probabilities"][r["genre"]]
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-2
        assert r["windows"] in (13, 14)  # about 30 s: 4 s windows every 2 s
        # The deprecated names of the first release, still there for one release.
        assert (r["label"], r["probs"]) == (r["genre"], r["probabilities"])


def test_predict_json_error_objects(fp32_tflite, batch, capsys):
    _, bad = batch
    code = main(["predict", "--json", "--model", str(fp32_tflite), str(bad["empty"])])
    out = capsys.readouterr().out
    assert code == 1 and json.loads(out)["error"]


def test_predict_bad_model_is_one_line(tmp_path, capsys):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"not a model at all")
    code = main(["predict", "--model", str(model), str(gtzan_file("jazz.00002"))])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "not a TFLite model" in err


def test_runtime_never_imports_tensorflow_keras_librosa(int8_tflite):
    """Importing every edge module and running predict leaves TF, Keras and librosa unloaded."""
    code = f"""
import sys
import edge_genre.edge.backends, edge_genre.edge.classifier, edge_genre.edge.mic, edge_genre.edge.live
import edge_genre.edge.views, edge_genre.edge.cli, edge_genre.edge.frontend, edge_genre.edge.audio
from edge_genre.cli import main
rc = main(["predict", "--model", {str(int8_tflite)!r}, {str(gtzan_file('jazz.00002'))!r}])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "librosa", "tf_keras"))
print("HEAVY", heavy)
sys.exit(rc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


def test_listen_without_capture_device_is_one_line(tmp_path, fp32_tflite):
    """No PulseAudio server and no sound card: listen says which devices exist (none)."""
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/no-such.sock"}
    listed = subprocess.run([sys.executable, "-m", "edge_genre", "listen", "--list-devices"],
                            capture_output=True, text=True, timeout=60, env=env)
    if listed.returncode == 2 and "PortAudio" in listed.stderr:
        pytest.skip("PortAudio is not installed here: " + listed.stderr.strip())
    assert listed.returncode == 0
    if "no capture devices" not in listed.stdout:
        pytest.skip("this machine has a capture device: " + listed.stdout.strip())
    done = subprocess.run([sys.executable, "-m", "edge_genre", "listen", "--seconds", "1",
                           "--model", str(fp32_tflite)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no capture device" in lines[0]
