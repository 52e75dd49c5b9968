"""`edge-genre listen` on a virtual microphone: real PulseAudio, real GTZAN audio played in real time."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import gtzan_file
from tests.live.pulse import live_model, virtual_mic  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.live, pytest.mark.slow]

#: Excerpts to choose the live one from: the one the model classifies most confidently offline.
CANDIDATES = ("metal.00002", "classical.00051", "reggae.00000", "hiphop.00003", "pop.00003")
SECONDS = 12


def windows(done) -> list[dict]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def most_confident(model) -> tuple:
    """(path, label, confidence) of the candidate ``model`` is most sure of over its first 14 s."""
    from edge_genre.edge.audio import read
    from edge_genre.edge.classifier import Classifier

    clf = Classifier(model)
    best = None
    for track in CANDIDATES:
        audio = read(gtzan_file(track))
        result = clf.classify(audio.samples[:audio.sample_rate * 14], audio.sample_rate)
        if best is None or result.confidence > best[2]:
            best = (gtzan_file(track), result.label, result.confidence)
    return best


@pytest.fixture(scope="module")
def clear_excerpt(live_model):
    return most_confident(live_model)


def test_listen_classifies_music_every_hop(virtual_mic, live_model, clear_excerpt):
    path, label, confidence = clear_excerpt
    player = virtual_mic.play(path)
    try:
        done = virtual_mic.listen("--model", live_model, "--json", "--seconds", SECONDS)
    finally:
        player.kill()
        player.wait()
    got = windows(done)
    # 12 s of audio: windows end at 4, 6, 8, 10, 12 s.
    assert len(got) >= 4, done.stderr
    assert [w["window"] for w in got] == list(range(len(got)))
    np.testing.assert_allclose(np.diff([w["start"] for w in got]), 2.0)
    # ... and arrive in real time, about one hop apart on the wall clock.
    gaps = np.diff([w["time"] for w in got])
    assert np.all(np.abs(gaps - 2.0) < 0.6), gaps
    assert all(w["device_rate"] in (44100, 48000) for w in got)  # opened at the device's rate
    assert "opened at 44100 Hz" in done.stderr or "opened at 48000 Hz" in done.stderr
    heard = [w for w in got if not w["silent"]]
    assert len(heard) >= len(got) - 1  # the first window may catch paplay starting up
    assert all(-40 < w["level_dbfs"] < 0 for w in heard)
    labels = [w["genre"] for w in heard]
    assert labels.count(label) >= 0.6 * len(labels), (label, confidence, labels)
    assert got[-1]["smoothed_genre"] == label
    assert all(w["latency_ms"] < 1000 for w in got)


def test_listen_with_the_shipped_student(virtual_mic):
    """``--model student`` (by name; full int8 with a 20 ms front-end) through the same capture
    path: decisions every hop, and what it hears is what it says offline."""
    from edge_genre.defaults import shipped_models

    path, label, confidence = most_confident(shipped_models("student")[0])
    player = virtual_mic.play(path)
    try:
        done = virtual_mic.listen("--model", "student", "--json", "--seconds", 10)
    finally:
        player.kill()
        player.wait()
    got = windows(done)
    assert len(got) >= 3, done.stderr
    heard = [w for w in got if not w["silent"]]
    labels = [w["genre"] for w in heard]
    assert labels.count(label) >= 0.6 * len(labels), (label, confidence, labels)


def test_listen_silence_is_no_music(virtual_mic, live_model):
    done = virtual_mic.listen("--model", live_model, "--json", "--seconds", 8)
    got = windows(done)
    assert len(got) >= 2
    for w in got:
        assert w["silent"] and w["genre"] == "no music" and w["smoothed_genre"] == "no music"


def test_listen_plain_view_and_list_devices(virtual_mic, live_model):
    done = virtual_mic.listen("--model", live_model, "--seconds", 5)  # stdout is a pipe: plain lines
    assert done.returncode == 0, done.stderr
    assert "no music" in done.stdout
    listed = virtual_mic.listen("--list-devices")
    assert listed.returncode == 0 and "pulse" in listed.stdout


def test_listen_ctrl_c_exits_cleanly(virtual_mic, live_model):
    import signal
    import subprocess
    import sys

    # As from a terminal: SIGINT at its default. A suite started in the background by a
    # non-interactive shell (`pytest &`) runs with SIGINT ignored, children inherit that, and
    # Python then leaves it ignored; respecting that is right for the product, wrong here.
    proc = subprocess.Popen([sys.executable, "-m", "edge_genre", "listen", "--device",
                             virtual_mic.device, "--model", str(live_model), "--json"],
                            env=virtual_mic.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = proc.stdout.readline()  # the first window (about 4 s of audio): listen is
        assert json.loads(first)["window"] == 0  # capturing mid-stream, Ctrl-C it now
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped after" in err
