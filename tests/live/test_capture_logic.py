"""The live capture path's logic without a sound server (fast, not marked live).

* ``WindowFeeder``: holding the 100 ms capture blocks until they complete a window, then pushing
  them at once, gives exactly the decisions that pushing every block gives, out at the same
  block, with about one ``Classifier.push`` per hop instead of ten per second (the cost fix).
* ``LiveMicrophone``: a device that ends or goes quiet is reported lost, reopened with backoff
  (0.5 s doubling to 5 s), reported restored on its first block, and given up after
  ``reconnect_timeout`` (``DeviceLost``, exit status 3). PortAudio is replaced by a scripted
  device and the clock by a fake one, so the schedule is checked exactly.
"""
from __future__ import annotations

import numpy as np
import pytest

from edge_genre.edge import mic
from tests.conftest import gtzan_file
from tests.live.pulse import live_model  # noqa: F401 (fixture)

RATE = 44100
BLOCK = int(RATE * mic.BLOCK_SECONDS)


@pytest.fixture(scope="module")
def blocks(live_model):
    """20 s of a real excerpt at 44.1 kHz in capture-sized blocks."""
    from edge_genre.edge.audio import read
    from edge_genre.edge.resample import resample

    audio = read(gtzan_file("reggae.00000"))
    y = resample(audio.samples, audio.sample_rate, RATE)[:RATE * 20]
    return [y[i:i + BLOCK] for i in range(0, len(y), BLOCK)]


class CountingClassifier:
    """A Classifier that counts its push calls."""

    def __init__(self, model):
        from edge_genre.edge.classifier import Classifier

        self.clf = Classifier(model)
        self.pushes = 0

    def __getattr__(self, name):
        return getattr(self.clf, name)

    def push(self, samples, rate):
        self.pushes += 1
        return self.clf.push(samples, rate)


def test_feeder_gives_the_same_decisions_at_the_same_block_with_a_push_per_hop(live_model, blocks):
    direct = CountingClassifier(live_model)
    fed = CountingClassifier(live_model)
    feeder = mic.WindowFeeder(fed, RATE)
    want, got = [], []
    for i, block in enumerate(blocks):
        want += [(i, d) for d in direct.push(block, RATE)]
        got += [(i, d) for d in feeder.add(block)]
    assert len(want) == 8  # windows ending at 4, 6, ..., 18 s (the one at 20 s needs look-ahead)
    assert [i for i, _ in got] == [i for i, _ in want]  # no decision comes later
    for (_, a), (_, b) in zip(want, got):
        assert (a.index, a.start, a.end, a.silent) == (b.index, b.start, b.end, b.silent)
        np.testing.assert_allclose(b.probs, a.probs, atol=1e-6)
        np.testing.assert_allclose(b.level_dbfs, a.level_dbfs, atol=1e-4)
    assert direct.pushes == len(blocks)
    assert fed.pushes <= len(want) + 1  # one push per window, not one per 100 ms block


def test_feeder_restart_starts_a_fresh_stream_that_continues_the_numbering(live_model, blocks):
    fed = CountingClassifier(live_model)
    feeder = mic.WindowFeeder(fed, RATE)
    first = [d for b in blocks[:55] for d in feeder.add(b)]  # 5.5 s: one window, 1.5 s held
    assert [d.index for d in first] == [0]
    feeder.restart(48000)  # reopened, at another rate
    y = np.concatenate(blocks[55:]).astype(np.float32)
    from edge_genre.edge.resample import resample

    y48 = resample(y, RATE, 48000)
    step = int(48000 * mic.BLOCK_SECONDS)
    after = [d for i in range(0, len(y48), step) for d in feeder.add(y48[i:i + step])]
    assert [d.index for d in after] == list(range(1, 1 + len(after)))
    assert after[0].start == pytest.approx(5.5, abs=1e-6)  # stream time goes on: 5.5 s before
    assert after[0].end == pytest.approx(9.5, abs=1e-6)  # a whole window after the gap
    assert np.diff([d.start for d in after]) == pytest.approx(2.0)


# ----------------------------------------------------------------------------- LiveMicrophone


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeStop:
    """The stop Event: never set; waiting advances the fake clock."""

    def __init__(self, clock):
        self.clock = clock

    def wait(self, seconds):
        self.clock.now += max(0.0, seconds)
        return False


class World:
    """What the scripted device does: ``present`` (can be opened), and per stream ``mode``:
    "audio" (a block per read), "ended" (the stream ends), "quiet" (nothing arrives)."""

    def __init__(self, clock):
        self.clock = clock
        self.present = True
        self.mode = "audio"
        self.opens: list[float] = []


def scripted_microphone(world):
    class FakeMicrophone:
        _sd = object()

        def __init__(self, device=None, sample_rate=None):
            self.device = mic.InputDevice(0, "usb mic", 1, 48000.0, "ALSA", True)
            self.sample_rate = 0
            self.channels = 1
            self.overflows = 0
            self._open = False

        @property
        def ended(self):
            return self._open and world.mode == "ended"

        def open(self):
            world.opens.append(world.clock.now)
            if not world.present:
                raise mic.DeviceError("cannot open capture device 0 (usb mic): gone")
            self._open, self.sample_rate = True, 48000
            return self

        def read(self, timeout):
            if world.mode == "audio" and world.present:
                world.clock.now += mic.BLOCK_SECONDS
                return np.zeros(4800, dtype=np.float32)
            if world.mode == "ended":
                return None  # at once: the finished callback woke the reader
            world.clock.now += timeout
            return None

        def close(self):
            self._open = False

    return FakeMicrophone


@pytest.fixture
def world(monkeypatch):
    clock = Clock()
    w = World(clock)
    monkeypatch.setattr(mic, "Microphone", scripted_microphone(w))
    monkeypatch.setattr(mic, "reinitialize_portaudio", lambda sd: None)
    monkeypatch.setattr(mic, "input_devices", lambda sd=None: [
        mic.InputDevice(0, "usb mic", 1, 48000.0, "ALSA", True)] if w.present else [])
    return w


def read_until_event(m: mic.LiveMicrophone, limit: int = 10_000):
    for _ in range(limit):
        item = m.read(timeout=1.0)
        if isinstance(item, mic.DeviceEvent):
            return item
    raise AssertionError("no event")


def test_lost_device_is_reopened_with_doubling_backoff_and_restored(world):
    clock = world.clock
    m = mic.LiveMicrophone("usb", stall_seconds=4.0, reconnect_timeout=60, stop=FakeStop(clock),
                           clock=clock)
    m.open()
    assert isinstance(m.read(), np.ndarray)
    world.present, world.mode = False, "ended"  # pulled: the stream ends at once
    lost_at = clock.now
    lost = read_until_event(m)
    assert lost.event == "device_lost" and "its stream ended" in lost.message
    assert clock.now == lost_at  # noticed at once, not after a stall
    world.mode = "audio"
    while clock.now < lost_at + 20:
        assert m.read(timeout=1.0) is None
    tries = [round(t - lost_at, 6) for t in world.opens[1:]]
    assert tries == [0.5, 1.5, 3.5, 7.5, 12.5, 17.5]  # 0.5 s doubling to 5 s
    world.present = True
    restored = read_until_event(m)
    assert restored.event == "device_restored"
    assert restored.attempts == 7 and restored.device_rate == 48000
    assert 20 < restored.seconds < 23
    assert isinstance(m.read(), np.ndarray)  # the block that came with it is not lost
    assert not m.lost


def test_quiet_device_counts_as_lost_after_the_stall_and_gives_up(world):
    clock = world.clock
    m = mic.LiveMicrophone(None, stall_seconds=4.0, reconnect_timeout=10, stop=FakeStop(clock),
                           clock=clock)
    m.open()
    assert isinstance(m.read(), np.ndarray)
    world.mode = "quiet"  # the stream stays open but nothing arrives
    quiet_at = clock.now
    lost = read_until_event(m)
    assert lost.event == "device_lost" and "no audio for 4.0 s" in lost.message
    assert clock.now == pytest.approx(quiet_at + 4.0)
    # Reopening works but the device stays quiet: still lost (no second "lost", no "restored"),
    # and given up at the deadline.
    gave_up = read_until_event(m)
    assert gave_up.event == "device_gave_up"
    assert clock.now == pytest.approx(quiet_at + 4.0 + 10, abs=1.0)
    assert "did not come back within 10 s" in gave_up.message
    with pytest.raises(mic.DeviceLost) as raised:
        m.read()
    assert raised.value.exit_code == 3
