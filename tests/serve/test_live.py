"""``GET /api/live``: server-sent events from the server's microphone.

Without a usable device the stream is one clear ``error`` event and the server keeps serving; with
a virtual PulseAudio microphone (tests/live/pulse.py) playing a real GTZAN excerpt, every hop
brings a decision, the device closes when the last page leaves, and the server stops promptly
with a stream open.
"""
from __future__ import annotations

import threading
import time
import urllib.request

import pytest

from edge_genre.serve.live import RETRY_MS

from tests.conftest import gtzan_file
from tests.live.pulse import replug, virtual_mic  # noqa: F401 (fixtures)
from tests.serve.server import default_model, get_json, parse_sse, post_file, server, sse_events, start_server  # noqa: F401


def test_no_mic_gives_one_error_event(server):
    events = sse_events(server.url + "api/live", limit=5)
    assert events == [("error", {"error": "live mode is off: the server was started with --no-mic"})]


def test_missing_device_gives_one_error_event_and_the_server_goes_on(default_model, tmp_path):
    srv = start_server(default_model, tmp_path / "serve.log", "--device", "no-such-microphone-here")
    try:
        assert get_json(srv.url + "api/model")["live"] is True
        for _ in range(2):  # the second subscription gets the same clear answer
            events = sse_events(srv.url + "api/live", limit=5, timeout=60)
            assert len(events) == 1 and events[0][0] == "error", events
            message = events[0][1]["error"]
            assert "no-such-microphone-here" in message or "PortAudio" in message, message
        path = gtzan_file("jazz.00002")
        status, body = post_file(srv.url + "api/classify", path.name, path.read_bytes())
        assert status == 200, body
    finally:
        assert srv.stop() == 0


class StandInCapture:
    """What ``LiveHub`` asks of its ``LiveCapture``, recorded; each start is put on ``starts``."""

    def __init__(self):
        import queue

        self.starts: queue.Queue = queue.Queue()
        self.running = False
        self.stops = 0

    def start(self) -> None:
        self.starts.put(not self.running)  # True: a capture was started
        self.running = True

    def stop(self) -> None:
        self.stops += 1
        self.running = False

    def stopping(self):
        return None

    def join(self, timeout: float = 5.0) -> None:
        pass


def test_hub_runs_one_capture_for_every_page_and_ends_their_streams_with_it():
    """The broadcaster: one capture started for the first page, every event to every page, the
    pages' streams ended when the capture ends on its own, the capture stopped after the last."""
    import asyncio

    from edge_genre.serve.live import LiveHub, LiveSettings, sse

    hub = LiveHub("unused.tflite", settings=LiveSettings(heartbeat_seconds=600))
    capture = hub._capture = StandInCapture()  # (no device, no model: the hub's side alone)
    decision = sse("decision", {"window": 0, "genre": "jazz"})

    async def listen(stream):
        return [item async for item in stream]

    async def scenario():
        pages = [asyncio.create_task(listen(hub.events())) for _ in range(2)]
        started = [await asyncio.to_thread(capture.starts.get, True, 10) for _ in pages]
        assert started == [True, False]  # one capture for both pages
        await asyncio.to_thread(hub._publish, decision)  # from another thread, as the capture
        await asyncio.to_thread(hub._capture_ended)  # the capture ended on its own (an error)
        got = await asyncio.wait_for(asyncio.gather(*pages), 10)
        assert got == [[f"retry: {RETRY_MS}\n\n", decision]] * 2
        assert capture.stops >= 1

        capture.stops = 0
        page = hub.events()
        assert await anext(page) == f"retry: {RETRY_MS}\n\n"
        waiting = asyncio.create_task(anext(page))  # subscribed, waiting for an event
        assert await asyncio.to_thread(capture.starts.get, True, 10) is True
        waiting.cancel()  # the page leaves: it was the last one
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await page.aclose()
        assert capture.stops == 1

    asyncio.run(scenario())


@pytest.mark.slow
@pytest.mark.live
def test_live_decisions_from_a_virtual_microphone(virtual_mic, default_model, tmp_path):
    srv = start_server(default_model, tmp_path / "serve.log", "--device", virtual_mic.device,
                       env=virtual_mic.env)
    player = None
    try:
        labels = get_json(srv.url + "api/model")["labels"]
        player = virtual_mic.play(gtzan_file("metal.00002"))
        t0 = time.monotonic()
        events = sse_events(srv.url + "api/live", limit=5, timeout=30)
        elapsed = time.monotonic() - t0
        kinds = [kind for kind, _ in events]
        assert kinds[0] == "status" and events[0][1]["state"] == "listening", events
        decisions = [data for kind, data in events if kind == "decision"]
        assert len(decisions) >= 3, events
        # A hop apart, in order, each with every genre's probability.
        assert [d["window"] for d in decisions] == list(range(decisions[0]["window"],
                                                              decisions[0]["window"] + len(decisions)))
        for a, b in zip(decisions, decisions[1:]):
            assert b["start"] - a["start"] == pytest.approx(2.0, abs=0.05)
        heard = [d for d in decisions if not d["silent"]]
        assert heard, decisions
        for d in heard:
            # The window's own decision and the smoothed one, in the vocabulary of every
            # interface (listen --json's keys, without the CLI's deprecated ones).
            assert d["genre"] in labels and set(d["probabilities"]) == set(labels)
            assert d["smoothed_genre"] in labels and set(d["smoothed_probabilities"]) == set(labels)
            assert "label" not in d and "probs" not in d
            assert d["level_dbfs"] > -60
        # 4 s until the first window, then one every 2 s: bounded (loosely: a busy machine).
        assert elapsed < 4 + 2 * len(decisions) + 20
        # The last page left: the device is closed (the server says so in its log).
        assert srv.wait_for_log("live: capture stopped", timeout=30), srv.log()

        # Stopping the server with a page still listening takes seconds, not forever.
        listening = threading.Event()

        def listen_forever():
            try:
                with urllib.request.urlopen(srv.url + "api/live", timeout=60) as response:
                    for raw in response:
                        if raw.startswith(b"event:"):  # subscribed, and the capture runs
                            listening.set()
            except OSError:
                pass

        reader = threading.Thread(target=listen_forever, daemon=True)
        reader.start()
        assert listening.wait(60)
        t0 = time.monotonic()
        assert srv.stop(timeout=20) == 0  # not killed: it ended by itself
        assert time.monotonic() - t0 < 15  # (graceful shutdown 3 s + device close; loose)
    finally:
        if player is not None:
            player.kill()
        srv.stop()


class EventStream:
    """Server-sent events read by a thread as they come: ``next(match, timeout)``."""

    def __init__(self, url: str):
        import queue

        self.events: queue.Queue = queue.Queue()
        self.response = urllib.request.urlopen(url, timeout=120)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for event in parse_sse(self.response):
                self.events.put(event)
        except Exception:  # the connection closed under the reader (close(), server stopped)
            pass
        self.events.put(None)

    def next(self, match, timeout: float) -> tuple[str, dict]:
        import queue

        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching event within {timeout:g} s") from None
            assert item is not None, "the stream ended"
            if match(*item):
                return item

    def close(self) -> None:
        self.response.close()


@pytest.mark.slow
@pytest.mark.live
def test_live_tells_the_page_when_the_microphone_goes_and_comes_back(replug, default_model,
                                                                      tmp_path):
    mic = replug
    srv = start_server(default_model, tmp_path / "serve.log", "--device", mic.device, env=mic.env)
    stream = None
    try:
        stream = EventStream(srv.url + "api/live")
        stream.next(lambda kind, data: kind == "decision", 90)
        mic.unplug()
        kind, lost = stream.next(lambda kind, data: kind != "decision", 10)
        assert kind == "status" and lost["state"] == "device_lost", (kind, lost)
        assert "lost the capture device" in lost["message"]  # what the page shows
        time.sleep(2.0)  # the outage (a scenario duration): at least one reopening fails
        mic.plug()
        kind, back = stream.next(lambda kind, data: kind != "decision", 20)
        assert kind == "status" and back["state"] == "listening" and back["restored"], (kind, back)
        assert back["device"] == mic.device and back["device_rate"] in (44100, 48000)
        _, after = stream.next(lambda kind, data: kind == "decision", 20)
        assert after["window"] >= 1
        assert srv.wait_for_log("live: lost the capture device", timeout=10)
    finally:
        if stream is not None:
            stream.close()
        assert srv.stop() == 0
