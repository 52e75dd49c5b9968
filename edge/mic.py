"""Microphone capture with sounddevice (PortAudio), for ``edge-genre listen``.

The device is opened at its own default rate (USB microphones often refuse 16 or 22.05 kHz) and
the classifier resamples. PortAudio calls back on its own thread; the callback only copies the
block into a queue and counts overflows, so a slow consumer loses blocks (reported) rather than
stalling the audio thread.
"""
from __future__ import annotations

import queue
from dataclasses import dataclass

import numpy as np

from edge_genre.errors import DeviceError

#: Rates tried, in order, after the device's default one.
FALLBACK_RATES = (48000, 44100, 32000, 16000)
#: Seconds of audio per callback block: short enough for a responsive level meter.
BLOCK_SECONDS = 0.1
#: Blocks the queue holds before the oldest are dropped (about 10 s).
QUEUE_BLOCKS = 100


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

    Use as a context manager; ``read(timeout)`` returns the next block or None. ``overflows``
    counts blocks PortAudio reported as overflowed plus blocks dropped because the queue was full.
    """

    def __init__(self, device: str | int | None = None, sample_rate: int | None = None):
        self._sd = import_sounddevice()
        self.device = resolve_device(device, input_devices(self._sd))
        self.sample_rate = 0
        self.channels = 0
        self.overflows = 0
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=QUEUE_BLOCKS)
        self._stream = None
        self._wanted_rate = sample_rate

    def _callback(self, indata, frames, time_info, status) -> None:
        if status and status.input_overflow:
            self.overflows += 1
        block = indata.mean(axis=1) if indata.shape[1] > 1 else indata[:, 0].copy()
        try:
            self._queue.put_nowait(block.astype(np.float32, copy=False))
        except queue.Full:
            self.overflows += 1

    def open(self) -> "Microphone":
        sd = self._sd
        rates = [self._wanted_rate] if self._wanted_rate else []
        rates += [int(round(self.device.default_rate))] + list(FALLBACK_RATES)
        channel_options = sorted({1, min(2, self.device.channels)})
        errors = []
        for rate in dict.fromkeys(r for r in rates if r):
            for channels in channel_options:
                try:
                    stream = sd.InputStream(device=self.device.index, samplerate=rate,
                                            channels=channels, dtype="float32",
                                            blocksize=int(rate * BLOCK_SECONDS),
                                            callback=self._callback)
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
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

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
