"""The one live loop: a capture device's audio to decisions and device events, for listen and serve.

``LiveLoop(microphone, classifier)`` reads an open ``mic.LiveMicrophone`` and pushes each block to
``Classifier.push`` (which holds blocks until they complete a window, so the live path costs one
resampler pass and one front-end call a hop). Iterating it yields, in order of arrival:

* a ``Decision`` for each window (``microphone.sample_rate`` and ``microphone.overflows`` are the
  device's rate and lost blocks at that moment, for the caller's record);
* a ``mic.DeviceEvent``: "device_lost" (the classifier's stream ends there: no window spans the
  gap, smoothing starts afresh, while window numbers and stream time go on, as
  ``Classifier.reset(keep_clock=True)`` says), "device_restored" (decisions follow again), or
  "device_gave_up", after which the loop ends;
* an ``Overflow`` when the capture lost blocks since the last one (a busy machine).

The loop ends after ``seconds`` of audio (when given), after giving up, or within ``read_timeout``
of the microphone's ``stop`` event being set. ``listen`` prints what it yields, ``serve`` sends
it to the pages; how each shows it is theirs.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from edge_genre.edge.mic import DeviceEvent, LiveMicrophone

#: Seconds a read waits for audio: how soon a stop is noticed when no audio comes.
READ_TIMEOUT = 0.5


@dataclass(frozen=True)
class Overflow:
    """Capture blocks were lost (PortAudio overflowed, or the queue was full): ``total`` so far."""

    total: int


class LiveLoop:
    """Decisions and device events from a microphone (see the module docstring).

    Parameters
    ----------
    microphone : a ``LiveMicrophone``, opened by the caller (which reports the opening).
    classifier : a ``Classifier``; its stream is continued, not reset, at the start.
    seconds : stop after this many seconds of audio (over every reopening); None: run on.
    stall_seconds : no audio for this long is a lost device; None: two hops.

    ``seconds_heard`` and ``samples_heard`` count the audio received so far (every reopening,
    whatever its rate).
    """

    def __init__(self, microphone: LiveMicrophone, classifier, seconds: float | None = None,
                 stall_seconds: float | None = None, read_timeout: float = READ_TIMEOUT):
        self.microphone, self.classifier = microphone, classifier
        self.seconds = seconds
        self.read_timeout = read_timeout
        microphone.stall_seconds = stall_seconds or 2 * classifier.hop_seconds
        self.seconds_heard = 0.0
        self.samples_heard = 0

    def __iter__(self) -> Iterator:
        microphone, clf = self.microphone, self.classifier
        told_overflows = microphone.overflows
        while not microphone.stopped:
            item = microphone.read(timeout=self.read_timeout)
            if item is None:
                continue
            if isinstance(item, DeviceEvent):
                if item.event == "device_lost":
                    clf.reset(keep_clock=True)  # the next audio may come at another rate
                yield item
                if item.event == "device_gave_up":
                    return
                continue
            rate = microphone.sample_rate
            self.samples_heard += len(item)
            self.seconds_heard += len(item) / rate
            yield from clf.push(item, rate)
            if microphone.overflows > told_overflows:
                told_overflows = microphone.overflows
                yield Overflow(told_overflows)
            if self.seconds and self.seconds_heard >= self.seconds - 1e-9:
                return
