"""Microphone capture with sounddevice (PortAudio), for ``edge-genre listen`` and ``serve``.

The device is opened at its own default rate (USB microphones often refuse 16 or 22.05 kHz) and
the classifier resamples. PortAudio calls back on its own thread every ``BLOCK_SECONDS``; the
callback only copies the block into a queue and counts overflows, so a slow consumer loses blocks
(reported) rather than stalling the audio thread, and the reader blocks on the queue (no polling).

Losing the device. A capture device can vanish mid-stream: a USB microphone pulled, the sound
server restarted, a PulseAudio source unloaded. PortAudio then ends the stream (its finished
callback) or simply stops calling back. ``LiveMicrophone`` notices either (the stream ended, or
no audio for ``stall_seconds``), reports a ``DeviceEvent`` ("device_lost"), closes the stream and
reopens the device with backoff (``RETRY_FIRST`` doubling to ``RETRY_MAX`` seconds), each try
after re-initialising PortAudio so that a device that came back (a new ALSA card, a restarted
server) is seen again; the first audio after a reopening gives "device_restored". When the device
is not back within ``reconnect_timeout`` it gives "device_gave_up", and the next read raises
``DeviceLost`` (exit status 3 in ``listen``).

Cost. ``single_thread_blas`` keeps numpy's OpenBLAS from waking a worker thread that then spins
for each of the small matrix products a hop needs (see ``benchmarks/live_cost.py``); that the
products come once a hop, not once a 100 ms block, is ``Classifier.push``'s doing. What reads
these blocks for ``listen`` and ``serve`` is ``edge.live.LiveLoop``.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from edge_genre.edge.backends import quiet_native_stderr
from edge_genre.errors import DeviceError

log = logging.getLogger("edge_genre.mic")

#: Rates tried, in order, after the device's default one.
FALLBACK_RATES = (48000, 44100, 32000, 16000)
#: Seconds of audio per callback block: short enough for a responsive level meter.
BLOCK_SECONDS = 0.1
#: Blocks the queue holds before the oldest are dropped (about 10 s).
QUEUE_BLOCKS = 100
#: Least seconds without audio before a device counts as lost (callers pass about two hops; a
#: stream through PulseAudio's ALSA plugin may take about 2 s to deliver its first block).
MIN_STALL_SECONDS = 3.0
#: First wait before reopening a lost device; doubled after each failed try, up to RETRY_MAX.
RETRY_FIRST = 0.5
RETRY_MAX = 5.0
#: Seconds a lost device is given to come back before giving up.
RECONNECT_TIMEOUT = 60.0


class DeviceLost(DeviceError):
    """The capture device went away and did not come back in time."""

    exit_code = 3


def import_sounddevice():
    """The sounddevice module, or a DeviceError that says what to install."""
    try:
        import sounddevice
    except OSError:  # sounddevice is there but the PortAudio library is not
        raise DeviceError("PortAudio library not found: install it with "
                          "'sudo apt install libportaudio2' (Debian, Ubuntu, Raspberry Pi OS)") from None
    except ImportError:
        raise DeviceError("the 'sounddevice' package is missing: "
                          "pip install sounddevice (or: pip install 'edge-genre[edge]')") from None
    return sounddevice


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_rate: float
    hostapi: str
    is_default: bool = False

    def describe(self) -> str:
        mark = "*" if self.is_default else " "
        return (f"{mark}{self.index:3d}  {self.name}  ({self.channels} ch, "
                f"{self.default_rate:g} Hz, {self.hostapi})")


def input_devices(sd=None) -> list[InputDevice]:
    """Every capture device PortAudio sees."""
    sd = sd or import_sounddevice()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except Exception as exc:  # PortAudioError when PortAudio cannot initialise
        raise DeviceError(f"cannot list audio devices ({exc})") from None
    out = []
    for i, d in enumerate(devices):
        if d["max_input_channels"] > 0:
            out.append(InputDevice(i, d["name"], int(d["max_input_channels"]),
                                   float(d["default_samplerate"]),
                                   hostapis[d["hostapi"]]["name"], i == default_in))
    return out


def devices_text(devices: list[InputDevice]) -> str:
    if not devices:
        return "no capture devices found"
    return "capture devices (* = default):\n" + "\n".join(d.describe() for d in devices)


def resolve_device(spec: str | int | None, devices: list[InputDevice]) -> InputDevice:
    """A device by index, exact name, or unique case-insensitive name fragment; None: the default."""
    if not devices:
        raise DeviceError("no capture device found (is a microphone plugged in? is PortAudio "
                          "able to see it: python -m sounddevice)")
    listing = "; ".join(f"{d.index}: {d.name}" for d in devices)
    if spec is None or spec == "":
        for d in devices:
            if d.is_default:
                return d
        return devices[0]
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        for d in devices:
            if d.index == int(text):
                return d
        raise DeviceError(f"no capture device with index {text}; capture devices: {listing}")
    exact = [d for d in devices if d.name.lower() == text.lower()]
    if exact:
        return exact[0]
    partial = [d for d in devices if text.lower() in d.name.lower()]
    if len(partial) == 1:
        return partial[0]
    if partial:
        raise DeviceError(f"{text!r} matches several capture devices: "
                          + "; ".join(f"{d.index}: {d.name}" for d in partial))
    raise DeviceError(f"no capture device named {text!r}; capture devices: {listing}")


class Microphone:
    """A capture stream feeding a queue of mono float32 blocks.

    Use as a context manager; ``read(timeout)`` blocks until the next block and returns it, or
    None after ``timeout`` seconds or as soon as the stream has ended on its own (``ended``: the
    device went away). ``overflows`` counts blocks PortAudio reported as overflowed plus blocks
    dropped because the queue was full.
    """

    def __init__(self, device: str | int | None = None, sample_rate: int | None = None):
        self._sd = import_sounddevice()
        self.device = resolve_device(device, input_devices(self._sd))
        self.sample_rate = 0
        self.channels = 0
        self.overflows = 0
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._stream = None
        self._wanted_rate = sample_rate
        self._ended = threading.Event()

    def _callback(self, indata, frames, time_info, status) -> None:
        if status and status.input_overflow:
            self.overflows += 1
        block = indata.mean(axis=1) if indata.shape[1] > 1 else indata[:, 0].copy()
        try:
            self._queue.put_nowait(block.astype(np.float32, copy=False))
        except queue.Full:
            self.overflows += 1

    def _finished(self) -> None:
        """PortAudio's stream-finished callback: after abort() (ours) or when the host API gave up
        on the device (ALSA error, server gone). A None in the queue wakes a waiting reader."""
        self._ended.set()
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            pass

    @property
    def ended(self) -> bool:
        """The stream stopped (the device failed, or the stream was closed)."""
        return self._ended.is_set()

    def open(self) -> "Microphone":
        sd = self._sd
        rates = [self._wanted_rate] if self._wanted_rate else []
        rates += [int(round(self.device.default_rate))] + list(FALLBACK_RATES)
        channel_options = sorted({1, min(2, self.device.channels)})
        errors = []
        for rate in dict.fromkeys(r for r in rates if r):
            for channels in channel_options:
                self._ended.clear()
                try:
                    stream = sd.InputStream(device=self.device.index, samplerate=rate,
                                            channels=channels, dtype="float32",
                                            blocksize=int(rate * BLOCK_SECONDS),
                                            callback=self._callback,
                                            finished_callback=self._finished)
                    stream.start()
                except Exception as exc:  # sd.PortAudioError, ValueError for bad settings
                    errors.append(f"{rate} Hz/{channels} ch: {str(exc).splitlines()[0]}")
                    continue
                self._stream, self.sample_rate, self.channels = stream, rate, channels
                return self
        raise DeviceError(f"cannot open capture device {self.device.index} ({self.device.name}): "
                          + "; ".join(errors[:3]))

    def read(self, timeout: float = 0.5) -> np.ndarray | None:
        try:
            block = (self._queue.get(timeout=timeout) if timeout > 0
                     else self._queue.get_nowait())
        except queue.Empty:
            return None
        return block  # None: the stream ended

    def close(self) -> None:
        if self._stream is not None:
            # abort(), not stop(): stop() drains, and a capture stream through ALSA's pulse
            # plugin may never finish draining (new audio keeps arriving), so Ctrl-C could hang
            # (e.g. larsimmisch/pyalsaaudio#80). Buffered input is not wanted once we quit.
            try:
                self._stream.abort()
                self._stream.close()
            except Exception:  # closing a stream whose device vanished: nothing left to do
                pass
            self._stream = None

    def __enter__(self) -> "Microphone":
        return self.open() if self._stream is None else self

    def __exit__(self, *exc) -> None:
        self.close()


def reinitialize_portaudio(sd) -> None:
    """Terminate and initialise PortAudio again: its device list is read at initialisation only,
    so a USB microphone plugged back in or a restarted sound server is seen after this. No stream
    may be open (the caller's is closed; a process has one capture stream)."""
    try:
        sd._terminate()
    except Exception:  # not initialised (an earlier initialisation failed)
        pass
    try:
        sd._initialize()
    except Exception as exc:
        raise DeviceError(f"cannot initialise PortAudio ({str(exc).splitlines()[0]})") from None


@dataclass(frozen=True)
class DeviceEvent:
    """A change of the capture device's state, for the caller to report.

    ``event``: "device_lost" (no audio: ``seconds`` since the last block), "device_restored" (audio
    again: ``seconds`` without it, ``attempts`` reopenings, ``device_rate`` the rate it opened at)
    or "device_gave_up" (not back after ``seconds``).
    """

    event: str
    device: str
    message: str
    seconds: float
    attempts: int = 0
    device_rate: int | None = None

    def to_dict(self) -> dict:
        d = {"event": self.event, "device": self.device, "message": self.message,
             "seconds": round(self.seconds, 2), "attempts": self.attempts}
        if self.device_rate is not None:
            d["device_rate"] = self.device_rate
        return d


class LiveMicrophone:
    """A ``Microphone`` that notices when its device stops delivering and reopens it.

    ``read(timeout)`` returns a block (mono float32 at ``sample_rate``), a ``DeviceEvent``, or None
    when nothing happened within ``timeout``; after the "device_gave_up" event it raises
    ``DeviceLost``. Between a "device_lost" and a "device_restored" no blocks come, and
    ``sample_rate`` may differ afterwards (the device reopened at another rate).

    Parameters
    ----------
    device : index, name or name fragment; None for the default. Opening it at the start raises
        DeviceError as ``Microphone`` does (nothing to reconnect to yet). Reopening looks for
        the device by the name it had, then by ``device`` again.
    stall_seconds : no audio for this long (at least ``MIN_STALL_SECONDS``) is a lost device.
    reconnect_timeout : give up when the device is not back after this many seconds.
    retry_first, retry_max : backoff between reopening tries (doubling).
    stop : an Event that, once set, makes a waiting ``read`` return None at once (serve).
    """

    def __init__(self, device: str | int | None = None, stall_seconds: float = 4.0,
                 reconnect_timeout: float = RECONNECT_TIMEOUT, retry_first: float = RETRY_FIRST,
                 retry_max: float = RETRY_MAX, stop: threading.Event | None = None,
                 clock=time.monotonic):
        self._spec = device
        self._mic = Microphone(device)
        self.device = self._mic.device
        self.stall_seconds = stall_seconds
        self.reconnect_timeout = reconnect_timeout
        self.retry_first, self.retry_max = retry_first, retry_max
        self._stop = stop or threading.Event()
        self._clock = clock
        self._overflows_before = 0
        self._open = False
        self._last_audio = 0.0
        self._lost_since: float | None = None  # when the current outage was noticed
        self._silent_since = 0.0  # the last audio before it
        self._attempts = 0
        self._delay = retry_first
        self._next_try = 0.0
        self._gave_up = False
        self._held: np.ndarray | None = None  # the block that came with "device_restored"

    # ------------------------------------------------------------------ the open stream

    @property
    def sample_rate(self) -> int:
        return self._mic.sample_rate

    @property
    def channels(self) -> int:
        return self._mic.channels

    @property
    def overflows(self) -> int:
        return self._overflows_before + self._mic.overflows

    @property
    def lost(self) -> bool:
        """In an outage (between "device_lost" and "device_restored" or giving up)."""
        return self._lost_since is not None

    @property
    def stopped(self) -> bool:
        """The ``stop`` event is set: the reader is asked to end."""
        return self._stop.is_set()

    @property
    def _stall(self) -> float:
        return max(MIN_STALL_SECONDS, self.stall_seconds)

    def open(self) -> "LiveMicrophone":
        self._mic.open()
        self._open = True
        self._last_audio = self._clock()
        return self

    def close(self) -> None:
        self._mic.close()
        self._open = False

    def __enter__(self) -> "LiveMicrophone":
        return self.open() if not self._open else self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ reading

    def read(self, timeout: float = 1.0):
        """The next block, a DeviceEvent, or None after ``timeout`` s (or when ``stop`` is set)."""
        if self._gave_up:
            raise DeviceLost(self._gave_up_message())
        if self._held is not None:
            block, self._held = self._held, None
            return block
        now = self._clock()
        if self._open:
            limit = self._last_audio + self._stall
            if self._lost_since is not None:  # reopened, no audio yet: not past the deadline
                limit = min(limit, self._lost_since + self.reconnect_timeout)
            block = self._mic.read(min(timeout, max(0.0, limit - now)))
            now = self._clock()
            if block is not None:
                self._last_audio = now
                if self._lost_since is None:
                    return block
                event = DeviceEvent(
                    "device_restored", self.device.name,
                    f"capture device {self.device.name!r} is back, at {self.sample_rate} Hz, "
                    f"after {now - self._silent_since:.1f} s without audio "
                    f"({self._attempts} reopening(s))",
                    now - self._silent_since, self._attempts, self.sample_rate)
                self._lost_since = None
                self._held = block
                return event
            if not self._mic.ended and now < limit:
                return None
            # The stream ended, or delivered nothing for too long: close it and retry later.
            ended = self._mic.ended
            self._overflows_before += self._mic.overflows
            self._mic.close()
            self._open = False
            if self._lost_since is None:
                self._lost_since, self._silent_since = now, self._last_audio
                self._attempts, self._delay = 0, self.retry_first
                self._next_try = now + self._delay
                why = ("its stream ended" if ended
                       else f"no audio for {now - self._last_audio:.1f} s")
                return DeviceEvent(
                    "device_lost", self.device.name,
                    f"lost the capture device {self.device.name!r} ({why}); reopening it "
                    f"(giving up after {self.reconnect_timeout:g} s)",
                    now - self._last_audio)
            # A reopened stream that gave nothing: the outage goes on, the backoff too.
            self._schedule(now)
            return None
        if self._lost_since is None:
            raise DeviceError("read() before open()")
        return self._reconnect(timeout)

    def _schedule(self, now: float) -> None:
        self._delay = min(self._delay * 2, self.retry_max)
        self._next_try = now + self._delay

    def _gave_up_message(self) -> str:
        return (f"the capture device {self.device.name!r} did not come back within "
                f"{self.reconnect_timeout:g} s ({self._attempts} reopening(s) tried)")

    def _reconnect(self, timeout: float):
        now = self._clock()
        deadline = self._lost_since + self.reconnect_timeout
        if now >= deadline:
            self._gave_up = True
            return DeviceEvent("device_gave_up", self.device.name, self._gave_up_message(),
                               now - self._silent_since, self._attempts)
        wake = min(self._next_try, deadline, now + timeout)
        if wake > now:
            if self._stop.wait(wake - now) or self._clock() < min(self._next_try, deadline):
                return None  # stopped, or the caller's timeout came first
            now = self._clock()
            if now >= deadline:
                return self._reconnect(timeout)
        self._attempts += 1
        try:
            mic = self._reopen()
        except DeviceError as exc:
            self._schedule(self._clock())
            log.debug("reopening %s (try %d) failed: %s; next try in %.1f s", self.device.name,
                      self._attempts, exc, self._delay)
            return None
        self._mic, self.device = mic, mic.device
        self._open = True
        self._last_audio = self._clock()  # on trial: the first block is the "restored" event
        return None

    def _reopen(self) -> Microphone:
        sd = self._mic._sd
        with quiet_native_stderr():  # ALSA and PortAudio print lines for every refused open
            reinitialize_portaudio(sd)
            devices = input_devices(sd)
            named = [d for d in devices if d.name == self.device.name]
            if named:
                spec = named[0].index
            elif self._spec is not None and str(self._spec).strip().lstrip("-").isdigit():
                # An index may now name another device: by name only.
                raise DeviceError(f"no capture device named {self.device.name!r} now")
            else:  # the name fragment asked for, or the default device (maybe another one now)
                spec = self._spec
            return Microphone(spec, sample_rate=self._mic.sample_rate or None).open()


def single_thread_blas() -> bool:
    """Set numpy's OpenBLAS to one thread; True when it could.

    Each matrix product OpenBLAS hands to its worker threads leaves them spinning for a while
    (about 2**28 cycles by default) before they sleep. The live path does a few small products
    per hop (resampling, the front-end) spread over the hop, so the workers spin after each one
    and spend far more than the products take. One thread is as fast for products this small.
    Loaded libraries are found in /proc/self/maps (Linux); elsewhere nothing changes.
    """
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split(None, 5)[5].strip() for line in maps
                     if len(line.split(None, 5)) == 6 and "openblas" in line.lower()}
    except OSError:
        return False
    done = False
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "openblas_set_num_threads64_", "openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.argtypes, fn.restype = [ctypes.c_int], None
                fn(1)
                done = True
                break
    return done

