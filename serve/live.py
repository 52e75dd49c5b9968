"""What the server's microphone hears, pushed to web pages as server-sent events.

One ``LiveHub`` per server hands the live events to its subscribers (the pages listening) and
runs a ``LiveCapture``: the thread that owns the microphone and runs ``edge.live.LiveLoop``, the
loop ``listen`` runs. The first subscriber starts the capture, every subscriber gets each hop's
decision, and the thread closes the device when the last one leaves. A device that
cannot be opened (no microphone, no PortAudio, a busy device) ends every subscriber's stream with
one ``error`` event that says why, instead of a broken connection.

A device that goes away mid-stream (USB microphone pulled, sound server restarted) is noticed
(its stream ended, or no audio for two hops) and reopened with backoff by
``edge.mic.LiveMicrophone``; the pages are told, and told again when it is back. When it does not
come back within ``reconnect_timeout`` the streams end with an ``error`` event.

Events (``event:`` name, ``data:`` JSON):
``status`` {"state": "listening", device, device_rate, model, window_seconds, hop_seconds} once
the device is open (again, with "restored": true, after an outage);
{"state": "device_lost", message, device, seconds, ...} when the device stopped delivering
audio and is being reopened (the page shows ``message``);
``decision`` one per hop: the window's ``Decision.to_dict`` (``genre``, ``confidence``,
``probabilities`` of this window, ``smoothed_genre``, ``smoothed_confidence``,
``smoothed_probabilities``: the shape of ``listen --json``) plus ``overflows``;
``error`` {"error": message}, after which the stream ends.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass

from edge_genre.edge.config import ClassifierConfig

log = logging.getLogger("edge_genre.serve")

#: Reconnection delay the browser is told to use after a stream ends (milliseconds).
RETRY_MS = 5000


@dataclass(frozen=True)
class LiveSettings:
    """How live mode listens.

    Parameters
    ----------
    enabled : False (``--no-mic``) answers every subscriber with an error event.
    device : capture device index or name fragment; None for the system default.
    hop_seconds, smoothing, silence_dbfs : as for ``edge-genre listen``.
    heartbeat_seconds : a comment line is sent this often so proxies and clients keep the stream.
    stall_seconds : no audio for this long means the device is lost (None: two hops).
    reconnect_timeout : a lost device not back after this many seconds ends the streams.
    """

    enabled: bool = True
    device: str | None = None
    hop_seconds: float | None = None
    smoothing: int = ClassifierConfig.smoothing  # listen's defaults, defined once
    silence_dbfs: float = ClassifierConfig.silence_dbfs
    heartbeat_seconds: float = 15.0
    stall_seconds: float | None = None
    reconnect_timeout: float = 60.0


def sse(event: str, data: dict) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class _Subscriber:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=256)

    def send(self, item) -> None:
        """Thread-safe; a client too slow to take 256 events loses the newest."""
        def put():
            try:
                self.queue.put_nowait(item)
            except asyncio.QueueFull:
                pass
        try:
            self.loop.call_soon_threadsafe(put)
        except RuntimeError:  # the loop has closed (server shutting down)
            pass


class LiveCapture:
    """The capture thread: it runs the live loop (``edge.live.LiveLoop``, the one ``listen``
    runs: microphone blocks to decisions and device events) and hands each, as server-sent event
    text, to ``publish``. It knows nothing of the subscribers.

    Parameters
    ----------
    model_path, backend, threads : the model file the live classifier loads (its own Runner,
        separate from the upload pool; loaded on the first start and kept).
    settings : LiveSettings.
    publish : called from the capture thread with each event's text.
    ended : called from the capture thread when it ends on its own (an error, a device that did
        not come back), not when it was stopped: its streams must end too.
    """

    def __init__(self, model_path, backend: str, threads: int | None, settings: LiveSettings,
                 publish, ended):
        self.model_path, self.backend, self.threads = model_path, backend, threads
        self.settings = settings
        self._publish, self._ended = publish, ended
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._classifier = None
        if settings.enabled:
            # As in `listen`: the live path's small products per hop would each leave OpenBLAS
            # worker threads spinning (a few % of a core while a page listens). Set here, at
            # start-up, while no other thread is inside numpy; uploads' products are as small.
            from edge_genre.edge.mic import single_thread_blas

            single_thread_blas()

    def start(self) -> None:
        """Start the capture thread unless one is running (the caller serialises start/stop)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,),
                                            name="edge-genre-live", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Ask the thread to close the device and end (it notices within half a second). Takes
        no lock: safe from a signal handler."""
        self._stop.set()

    def stopping(self) -> threading.Thread | None:
        """The thread, when it was asked to stop (it may still be closing the device)."""
        thread = self._thread
        return thread if thread is not None and self._stop.is_set() else None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout: float = 5.0) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _load_classifier(self):
        if self._classifier is None:
            from edge_genre.edge.classifier import Classifier

            s = self.settings
            self._classifier = Classifier(self.model_path, backend=self.backend,
                                          threads=self.threads, hop_seconds=s.hop_seconds,
                                          smoothing=s.smoothing, silence_dbfs=s.silence_dbfs)
        self._classifier.reset()
        return self._classifier

    def _run(self, stop: threading.Event) -> None:
        from edge_genre.edge.live import LiveLoop, Overflow
        from edge_genre.edge.mic import DeviceEvent, LiveMicrophone
        from edge_genre.errors import EdgeGenreError

        publish = self._publish
        try:
            s = self.settings
            microphone = LiveMicrophone(s.device, reconnect_timeout=s.reconnect_timeout, stop=stop)
            clf = self._load_classifier()
            with microphone:
                log.info("live: device %d (%s) open at %d Hz", microphone.device.index,
                         microphone.device.name, microphone.sample_rate)

                def listening(**extra) -> str:
                    return sse("status", {
                        "state": "listening", "device": microphone.device.name,
                        "device_rate": microphone.sample_rate, "model": clf.runner.path.name,
                        "window_seconds": round(clf.window_seconds, 3),
                        "hop_seconds": round(clf.hop_seconds, 3), **extra})

                publish(listening())
                for item in LiveLoop(microphone, clf, stall_seconds=s.stall_seconds):
                    if isinstance(item, Overflow):
                        continue  # each decision event carries the count
                    if not isinstance(item, DeviceEvent):
                        # The decision's one shape (as `listen --json`), without the CLI's
                        # deprecated keys.
                        publish(sse("decision", {**item.to_dict(deprecated_keys=False),
                                                 "overflows": microphone.overflows}))
                    elif item.event == "device_lost":
                        log.warning("live: %s", item.message)
                        publish(sse("status", {"state": "device_lost", **item.to_dict()}))
                    elif item.event == "device_restored":
                        log.info("live: %s", item.message)
                        publish(listening(restored=True, message=item.message))
                    else:  # gave up (the loop ends): the streams end with the reason
                        log.warning("live: %s", item.message)
                        publish(sse("error", {"error": item.message}))
        except EdgeGenreError as exc:  # no device, no PortAudio, a model that will not load
            log.warning("live: %s", exc)
            publish(sse("error", {"error": str(exc)}))
        except Exception as exc:  # a bug: keep serving uploads, tell the page, keep the traceback
            log.exception("live capture failed")
            publish(sse("error", {"error": f"live capture failed: {exc}"}))
        finally:
            if not stop.is_set():  # ended on its own (an error): end the streams it was feeding
                self._ended()
            log.info("live: capture stopped")


class LiveHub:
    """Hands the server's live events to every subscriber (web page), and runs one
    ``LiveCapture`` while there is at least one: started for the first, stopped after the last.

    Parameters
    ----------
    model_path, backend, threads : the model file the live classifier loads (``LiveCapture``).
    settings : LiveSettings.
    """

    def __init__(self, model_path, backend: str = "auto", threads: int | None = None,
                 settings: LiveSettings | None = None):
        self.settings = settings or LiveSettings()
        # One lock for the subscribers and the decision to start or stop the capture, so that a
        # page arriving as the last one leaves never joins a capture that is stopping.
        self._lock = threading.Lock()
        self._subscribers: list[_Subscriber] = []
        self._closed = False
        self._capture = LiveCapture(model_path, backend, threads, self.settings,
                                    publish=self._publish, ended=self._capture_ended)

    async def events(self):
        """Server-sent events for one client (an async iterator of text)."""
        yield f"retry: {RETRY_MS}\n\n"
        if not self.settings.enabled:
            yield sse("error", {"error": "live mode is off: the server was started with --no-mic"})
            return
        if self._closed:
            return
        sub = await self._subscribe()
        try:
            while True:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), self.settings.heartbeat_seconds)
                except asyncio.TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if item is None:  # the capture thread ended
                    return
                yield item
        finally:
            self._unsubscribe(sub)

    async def _subscribe(self) -> _Subscriber:
        sub = _Subscriber(asyncio.get_running_loop())
        with self._lock:
            old = self._capture.stopping()
        if old is not None:  # a thread still closing the device after its last client left
            await asyncio.to_thread(old.join, 5.0)
        with self._lock:
            self._subscribers.append(sub)
            self._capture.start()
        return sub

    def _unsubscribe(self, sub: _Subscriber) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)
            if not self._subscribers:
                self._capture.stop()

    def _publish(self, item) -> None:
        """Every subscriber gets ``item`` (from the capture thread)."""
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.send(item)

    def _capture_ended(self) -> None:
        """The capture ended on its own: end the streams it was feeding."""
        with self._lock:
            ended, self._subscribers = self._subscribers, []
            self._capture.stop()
        for sub in ended:
            sub.send(None)

    def close(self) -> None:
        """Stop capturing and end every stream (server shutdown). Called from a signal handler:
        takes no lock (the interrupted code may hold it)."""
        self._closed = True
        self._capture.stop()
        for sub in list(self._subscribers):
            sub.send(None)

    def join(self, timeout: float = 5.0) -> None:
        """Wait for the capture thread to close the device. Call before the interpreter exits:
        sounddevice's exit handler (Pa_Terminate) can hang while another thread still holds a
        stream open."""
        self._capture.join(timeout)

    @property
    def running(self) -> bool:
        return self._capture.running
