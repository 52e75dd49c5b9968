"""``edge-genre predict`` and ``edge-genre listen``: light at import (argparse only).

Exit codes: 0 when every file was classified; 1 when ``predict`` could not classify at least one
file (each is reported as one line and the rest go on); 2 for a usage, model, backend or device
error (one line); 3 when ``listen`` lost its capture device and it did not come back within
``--reconnect-timeout``; 130 on Ctrl-C outside ``listen`` (which exits 0 on Ctrl-C: stopping is
normal).
"""
from __future__ import annotations

import sys
from collections.abc import Iterator

from edge_genre.edge.cli_args import add_model_args, finite_float, positive_float, positive_int
from edge_genre.edge.config import ClassifierConfig

#: listen's decision defaults are the Classifier's (edge.config, a light import).
DECISIONS = ClassifierConfig()



def register(sub) -> None:
    p = sub.add_parser(
        "predict", help="classify audio files",
        description="Classify audio files: per file the top genre and a bar per genre, from the "
                    "mean of its windows' probabilities. A folder is walked for audio files.",
        epilog="Exit status: 0 all files classified; 1 some file could not be (corrupt, empty, "
               "silent or too short: reported, the batch goes on); 2 a model/usage error.")
    p.add_argument("paths", nargs="+", metavar="FILE|DIR", help="audio files or folders")
    add_model_args(p)
    p.add_argument("--json", action="store_true",
                   help="one JSON object per file on stdout: genre, confidence, probabilities "
                        "(errors too, with an 'error' key)")
    p.add_argument("--windows", action="store_true", help="with --json: include every window")
    p.set_defaults(func=run_predict)

    p = sub.add_parser(
        "listen", help="classify a microphone live",
        description="Classify live audio from a capture device: every hop, the last window. "
                    "The device is opened at its default rate and resampled to the model's. "
                    "A device that stops delivering audio (unplugged, sound server restarted) "
                    "is reported on stderr (with --json also as a line {\"event\": "
                    "\"device_lost\", ...}) and reopened with backoff (0.5 s doubling to 5 s); "
                    "when it is back, listening resumes ({\"event\": \"device_restored\"}).",
        epilog="Exit status: 0 stopped by Ctrl-C or after --seconds; 2 a usage, model or device "
               "error at the start; 3 the device was lost and did not come back within "
               "--reconnect-timeout.")
    p.add_argument("--device", metavar="NAME|INDEX",
                   help="capture device (index or name fragment; default: the system's default)")
    add_model_args(p)
    p.add_argument("--hop", type=positive_float, metavar="S",
                   help="seconds between decisions (default: the model's, usually 2)")
    p.add_argument("--smoothing", type=positive_int, default=DECISIONS.smoothing, metavar="N",
                   help="smoothed decision = mean of the last N windows (default %(default)s)")
    p.add_argument("--silence-dbfs", type=finite_float, default=DECISIONS.silence_dbfs, metavar="DB",
                   help="windows quieter than this are 'no music' (default %(default)s)")
    p.add_argument("--json", action="store_true",
                   help="one JSON line per window on stdout: genre, confidence, probabilities, "
                        "smoothed_genre, ...")
    p.add_argument("--list-devices", action="store_true", help="list capture devices and exit")
    p.add_argument("--seconds", type=positive_float, metavar="N",
                   help="stop after N seconds of audio (default: run until Ctrl-C)")
    p.add_argument("--reconnect-timeout", type=positive_float, default=60.0, metavar="S",
                   help="give up (exit 3) when a lost device is not back after S seconds "
                        "(default 60)")
    p.set_defaults(func=run_listen)

    from edge_genre.edge import tag_cli

    tag_cli.register(sub)  # `tag`: a whole library, the same per-track function as predict


# ----------------------------------------------------------------------------- predict


def audio_files(paths) -> Iterator[tuple[str, str | None]]:
    """(path, problem) for each input, streamed: folders expanded to their audio files by the
    library walk (``edge.walk.walk``, whose docstring is the rule: names sorted, hidden names
    skipped, links to folders not followed, broken links listed so that the reader says why),
    with the walk's problems (problem not None) in the order they were met."""
    from pathlib import Path

    from edge_genre.edge.walk import WalkReport, walk

    report = WalkReport()
    told = 0

    def problems():
        nonlocal told
        new, told = report.problems[told:], len(report.problems)
        return [(str(Path(path)), problem) for path, problem in new]

    for path in walk(paths, report=report):
        yield from problems()
        yield str(Path(path)), None  # spelled as given, tidied: "music//a.wav" -> "music/a.wav"
    yield from problems()


def run_predict(args) -> int:
    from edge_genre.edge.classifier import Classifier
    from edge_genre.edge.native_stderr import divert

    with divert():  # libmpg123's lines for a damaged MP3 frame: -v shows them
        return _predict(args, Classifier(args.model, backend=args.backend, threads=args.threads))


def _predict(args, clf) -> int:
    from edge_genre.edge import views
    from edge_genre.edge.track import classify_track_guarded  # `tag`'s per-track function

    failed = 0
    for path, problem in audio_files(args.paths):
        result = None
        if problem is None:
            result, problem = classify_track_guarded(clf, path)
        if problem is not None:
            failed += 1
            print(f"{path}: error: {problem}", file=sys.stderr, flush=True)
            if args.json:
                print(views.json_line({"file": path, "error": problem}), flush=True)
            continue
        if args.json:
            record = views.predict_record(path, result, clf.runner.path.name, clf.runner.backend,
                                          windows=args.windows)
            print(views.json_line(record), flush=True)
        else:
            print(views.track_report(path, result), flush=True)
    return 1 if failed else 0


# ----------------------------------------------------------------------------- listen


def hop_note(requested: float, clf) -> None:
    """A hop is a whole number of the model's STFT frames: refuse one shorter than a frame (it
    was silently raised to one: a decision every 10 ms), and say so when it is rounded."""
    import logging

    from edge_genre.errors import EdgeGenreError

    frame = clf.frontend.hop_length / clf.sample_rate
    if requested < frame / 2:
        raise EdgeGenreError(f"--hop {requested:g} s is shorter than the model's frame hop "
                             f"({frame:g} s): give at least {frame:g}")
    if abs(clf.hop_seconds - requested) > 1e-6:
        logging.getLogger("edge_genre.listen").warning(
            "--hop %g s is rounded to %g s (a whole number of the model's %g s frames)",
            requested, clf.hop_seconds, frame)


def run_listen(args) -> int:
    from edge_genre.edge.native_stderr import divert

    with divert():  # PortAudio's "Expression ... failed" lines when the device goes: -v shows them
        return _listen(args)


def _listen(args) -> int:
    import logging
    import time

    from edge_genre.edge import mic, views
    from edge_genre.edge.live import LiveLoop, Overflow

    log = logging.getLogger("edge_genre.listen")
    if args.list_devices:
        print(mic.devices_text(mic.input_devices()))
        return 0
    from edge_genre.edge.classifier import Classifier

    # Device problems first: they need no model.
    microphone = mic.LiveMicrophone(args.device, reconnect_timeout=args.reconnect_timeout)
    clf = Classifier(args.model, backend=args.backend, threads=args.threads,
                     hop_seconds=args.hop, smoothing=args.smoothing,
                     silence_dbfs=args.silence_dbfs)
    if args.hop is not None:
        hop_note(args.hop, clf)
    mic.single_thread_blas()  # small products per hop: worker threads would only spin
    from edge_genre.edge import pace

    slow = pace.check(clf, clf.hop_seconds)  # once, before the microphone's audio is read
    if slow:
        log.warning("%s", slow)
    view = None if args.json else views.LiveView()
    gave_up = None
    with microphone:
        loop = LiveLoop(microphone, clf, seconds=args.seconds)

        def source_text() -> str:
            return (f"{microphone.device.name} @ {microphone.sample_rate} Hz -> "
                    f"{clf.sample_rate} Hz, window {clf.window_seconds:g} s, "
                    f"hop {clf.hop_seconds:g} s")

        print(f"edge-genre listen: device {microphone.device.index} ({microphone.device.name}) "
              f"opened at {microphone.sample_rate} Hz, {microphone.channels} ch; model "
              f"{clf.runner.path.name} ({clf.runner.backend})", file=sys.stderr, flush=True)
        if view:
            view.waiting(source_text())
        try:
            for item in loop:
                if isinstance(item, Overflow):
                    log.warning("input overflow: %d block(s) lost so far (the machine is busy)",
                                item.total)
                elif not isinstance(item, mic.DeviceEvent):  # a window's decision
                    if args.json:
                        print(views.json_line(views.listen_record(
                            item, microphone.sample_rate, microphone.overflows, time.time())),
                            flush=True)
                    else:
                        view.show(item, source_text(), microphone.overflows)
                else:
                    if item.event != "device_gave_up":  # said once, as the closing error line
                        print(f"edge-genre listen: {item.message}", file=sys.stderr, flush=True)
                    else:
                        gave_up = item
                    if args.json:
                        print(views.json_line({**item.to_dict(), "time": round(time.time(), 3)}),
                              flush=True)
                    elif view.redraw:
                        view._drawn = 0  # the message went below the screen: draw a new one
        except KeyboardInterrupt:
            pass
    print(f"edge-genre listen: stopped after {loop.seconds_heard:.1f} s of audio, "
          f"{microphone.overflows} overflow(s)", file=sys.stderr, flush=True)
    if gave_up is not None:
        print(f"edge-genre listen: error: {gave_up.message}"
              + ("; it never delivered audio" if loop.samples_heard == 0 else ""),
              file=sys.stderr, flush=True)
        return mic.DeviceLost.exit_code
    return 0
