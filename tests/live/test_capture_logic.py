"""The live capture path's logic without a sound server (fast, not marked live).

* ``Classifier.push``: holding the 100 ms capture blocks until they complete a window, then
  resampling and cutting them at once, gives exactly the decisions of the whole stream, each out
  at the block that completes its window, with one front-end call per hop instead of ten per
  second (the cost fix); ``reset(keep_clock=True)`` after a reopening goes on numbering.
* ``LiveMicrophone``: a device that ends or goes quiet is reported lost, reopened with backoff
  (0.5 s doubling to 5 s), reported restored on its first block, and given up after
  ``reconnect_timeout`` (``DeviceLost``, exit status 3). PortAudio is replaced by a scripted
  device and the clock by a fake one, so the schedule is checked exactly.
* ``LiveLoop`` (what ``listen`` and ``serve`` both run) on that scripted device: decisions,
  device events and overflows in order, window numbers and stream time going on after a
  reopening, the end after ``seconds`` of audio or after giving up.
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


def counted_stream_pushes(clf) -> list:
    """Record the length of each block ``clf``'s window cut is given (its front-end calls)."""
    calls = []
    inner = clf._stream.push_windows
    clf._stream.push_windows = lambda y: calls.append(len(y)) or inner(y)
    return calls


def test_push_holds_blocks_to_a_window_and_decides_at_the_same_block(live_model, blocks):
    from edge_genre.edge.classifier import Classifier
    from edge_genre.edge.resample import Resampler

    clf = Classifier(live_model)
    calls = counted_stream_pushes(clf)
    got = [(i, d) for i, block in enumerate(blocks) for d in clf.push(block, RATE)]
    whole = Classifier(live_model).push(np.concatenate(blocks), RATE)
    # Unheld, window k would come out of the first block after which the resampler has given
    # its end sample: held, it must come no later.
    ends = [round(d.end * clf.sample_rate) for d in whole]
    r, outputs, due = Resampler(RATE, clf.sample_rate), 0, []
    for i, block in enumerate(blocks):
        outputs += len(r.process(block))
        due += [i for e in ends[len(due):] if e <= outputs]
    assert len(got) == len(due) == 8  # windows ending at 4, 6, ..., 18 s (20 s needs look-ahead)
    assert [i for i, _ in got] == due
    for (_, a), b in zip(got, whole):
        assert (a.index, a.start, a.end, a.silent) == (b.index, b.start, b.end, b.silent)
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
        np.testing.assert_allclose(a.level_dbfs, b.level_dbfs, atol=1e-4)
    assert len(calls) == len(got)  # one front-end call per window, not one per 100 ms block


def test_reset_keeping_the_clock_starts_a_fresh_stream_that_continues_the_numbering(live_model,
                                                                                   blocks):
    from edge_genre.edge.classifier import Classifier
    from edge_genre.edge.resample import resample

    clf = Classifier(live_model)
    first = [d for b in blocks[:55] for d in clf.push(b, RATE)]  # 5.5 s: one window, 1.5 s held
    assert [d.index for d in first] == [0]
    clf.reset(keep_clock=True)  # the device reopened, at another rate
    y48 = resample(np.concatenate(blocks[55:]), RATE, 48000)
    step = int(48000 * mic.BLOCK_SECONDS)
    after = [d for i in range(0, len(y48), step) for d in clf.push(y48[i:i + step], 48000)]
    assert [d.index for d in after] == list(range(1, 1 + len(after)))
    assert after[0].start == pytest.approx(5.5, abs=1e-6)  # stream time goes on: 5.5 s before
    assert after[0].end == pytest.approx(9.5, abs=1e-6)  # a whole window after the gap
    assert np.diff([d.start for d in after]) == pytest.approx(2.0)
    np.testing.assert_array_equal(after[0].smoothed, after[0].probs)  # smoothing starts afresh
    clf.reset()  # a new stream from scratch: window 0 at time 0
    assert [(d.index, d.start) for d in clf.push(y48[:48000 * 5], 48000)][:1] == [(0, 0.0)]


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

    def is_set(self):
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


# ----------------------------------------------------------------------------- LiveLoop


def test_live_loop_goes_on_numbering_through_a_lost_device_and_ends_when_it_gives_up(
        world, live_model):
    from edge_genre.edge.classifier import Classifier
    from edge_genre.edge.live import LiveLoop, Overflow

    clock = world.clock
    m = mic.LiveMicrophone("usb", reconnect_timeout=10, stop=FakeStop(clock), clock=clock)
    m.open()
    clf = Classifier(live_model)
    loop = LiveLoop(m, clf)
    assert m.stall_seconds == 2 * clf.hop_seconds  # two hops without audio: lost
    items = iter(loop)
    first = [next(items) for _ in range(2)]  # windows ending at 4 and 6 s (of silence)
    assert [d.index for d in first] == [0, 1] and all(d.silent for d in first)
    world.present, world.mode = False, "ended"  # pulled
    assert next(items).event == "device_lost"
    heard = loop.seconds_heard
    world.present, world.mode = True, "audio"
    assert next(items).event == "device_restored"
    after = next(items)
    assert after.index == 2  # a fresh stream (no window spans the gap) that numbers on
    assert (after.start, after.end) == pytest.approx((heard, heard + 4.0))
    m._mic.overflows = 3  # the capture lost blocks
    overflow = next(item for item in items if not isinstance(item, type(after)))
    assert overflow == Overflow(3)
    world.present, world.mode = False, "ended"  # pulled for good
    rest = list(items)
    assert [i.event for i in rest] == ["device_lost", "device_gave_up"]  # and the loop ended


def test_live_loop_stops_after_the_seconds_asked_for(world, live_model):
    from edge_genre.edge.classifier import Classifier
    from edge_genre.edge.live import LiveLoop

    m = mic.LiveMicrophone("usb", stop=FakeStop(world.clock), clock=world.clock).open()
    loop = LiveLoop(m, Classifier(live_model), seconds=5.0)
    assert [d.index for d in loop] == [0]  # the window ending at 4 s
    assert loop.seconds_heard == pytest.approx(5.0) and loop.samples_heard == 5 * 48000
