"""Accuracy beside speed, and where each figure comes from.

The bench never quotes a score on tracks a model trained on. In order of preference:

1. ``"card cv"``: the artist-grouped cross-validation recorded in the model file's card
   (``extra["cv"]``, written by ``edge-genre export --cv-record``), quoted as it is, not measured;
2. ``"held-out"``: track accuracy measured on the test tracks of the training run the file came
   from, only when a record lists them (``run.json`` beside the file, of ``--paper-run``, or of
   the run named in ``export_report.json`` beside the file; or ``split.test`` in the card) and
   they are not among its training / validation tracks;
3. otherwise nothing: "-" and a note saying why (the shipped default, trained on every track,
   would score near 100 % on any of them).

YAMNet zero-shot trained on none of the excerpts, so it is scored on all of them
(``all_tracks``). A track's prediction is the mean of its windows' probabilities (as
``predict`` does), so the figure is track accuracy; window accuracy is recorded beside it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_genre.edge.backends import is_waveform
from edge_genre.edge.config import ModelCard
from edge_genre.edge.windowing import cut_windows
from edge_genre.errors import DataError, ModelError
from edge_genre.export.pipeline import CV_KEY, CV_ROOMS  # the card keys export --cv-record writes
from edge_genre.export.pipeline import REPORT_FILE as EXPORT_REPORT  # export's report beside a file
from edge_genre.train.data import Dataset, Track, discover
from edge_genre.train.features import LabelledWindows, load_windows, settings_key
from edge_genre.train.run_dir import RECORD_FILE, RunRecord, RunSplit, read_json, record_in
from edge_genre.train.scores import predict_batches, track_accuracy, window_accuracy
from edge_genre.train.splits import track_split

log = logging.getLogger("edge_genre")

DEFAULT_SPLIT = {"name": "artist", "seed": 0, "valid": 0.15, "test": 0.15}
#: ``accuracy["source"]`` values in bench.json.
SOURCE_CV, SOURCE_HELD_OUT, SOURCE_ZERO_SHOT = "card cv", "held-out", "zero-shot all tracks"


@dataclass
class HeldOut:
    """Tracks of a dataset and how they were chosen."""

    dataset: Dataset
    tracks: list[Track]
    description: str


def default_held_out(data_dir: str | Path, limit: int | None = None) -> HeldOut:
    """The test part of the default artist split: real audio for latency, streaming and cold
    start (not for accuracy: a model trained on every track has seen these)."""
    ds = discover(data_dir)
    split = track_split(ds, valid=DEFAULT_SPLIT["valid"], test=DEFAULT_SPLIT["test"],
                        seed=DEFAULT_SPLIT["seed"], by_artist=True)
    tracks = split.test[:limit] if limit else split.test
    if not tracks:
        raise DataError(f"the default split of {data_dir} leaves no test tracks")
    return HeldOut(ds, tracks, f"test part of the default training split: {split.description}"
                   + (f" (first {limit})" if limit else ""))


def spread(tracks: list[Track], limit: int | None) -> list[Track]:
    """At most ``limit`` tracks, evenly spaced over the list (so over the genres); all if None."""
    if not limit or limit >= len(tracks):
        return list(tracks)
    idx = np.unique(np.linspace(0, len(tracks) - 1, max(1, int(limit))).round().astype(int))
    return [tracks[i] for i in idx]


def all_tracks(dataset: Dataset, limit: int | None = None) -> HeldOut:
    """Every track of the dataset (YAMNet zero-shot trained on none of them)."""
    tracks = spread(dataset.tracks, limit)
    if not tracks:
        raise DataError(f"no tracks in {dataset.root}")
    return HeldOut(dataset, tracks, f"all {len(dataset.tracks)} tracks of {dataset.root}"
                   + (f" ({len(tracks)} of them, evenly spaced; --tracks {limit})"
                      if len(tracks) < len(dataset.tracks) else ""))


# ----------------------------------------------------------------------------- card CV


def card_cv(card: ModelCard) -> dict | None:
    """The card's cross-validation record, if it has a usable one."""
    cv = card.extra.get(CV_KEY) if isinstance(card.extra, dict) else None
    if not isinstance(cv, dict):
        return None
    mean, k = cv.get("track_accuracy_mean"), cv.get("k")
    if not isinstance(mean, (int, float)) or not isinstance(k, int):
        return None
    return cv


def from_card_cv(cv: dict) -> dict:
    """bench.json's accuracy entry for a file whose card carries a CV record."""
    out = {"source": SOURCE_CV, "track_accuracy": float(cv["track_accuracy_mean"]),
           "track_accuracy_std": cv.get("track_accuracy_std"), "k": cv["k"],
           "grouping": cv.get("grouping"), "tracks": cv.get("n_tracks"), "cv": dict(cv)}
    for room in CV_ROOMS + ("room",):
        if cv.get(f"{room}_track_accuracy_mean") is not None:
            out[f"{room}_track_accuracy"] = cv[f"{room}_track_accuracy_mean"]
            out[f"{room}_track_accuracy_std"] = cv.get(f"{room}_track_accuracy_std")
    return out


# ----------------------------------------------------------------------------- held-out


def _export_report(model_path: Path) -> dict | None:
    """``export_report.json`` beside the file, or None (none, unreadable, or not an object: a
    report the bench cannot read says nothing about the tracks)."""
    path = model_path.with_name(EXPORT_REPORT)
    if not path.is_file():
        return None
    try:
        report = read_json(path)
    except ModelError:
        return None
    return report if isinstance(report, dict) else None


def _run_records(model_path: Path, run_dir) -> list[tuple[Path, RunRecord]]:
    """Training-run records that can belong to the file: ``run_dir``'s, the one beside it, and
    the one of the run its ``export_report.json`` names (a file that is not a run record is
    passed over: it says nothing about the tracks)."""
    folders = [Path(run_dir)] if run_dir else []
    folders.append(model_path.parent)
    report = _export_report(model_path)
    if report and report.get("run_dir"):
        folders.append(Path(report["run_dir"]))
    out = []
    for folder in dict.fromkeys(folders):
        try:
            record = record_in(folder)
        except ModelError:
            continue
        if record is not None:
            out.append((folder / RECORD_FILE, record))
    return out


def run_test_ids(model_path: str | Path, card: ModelCard, run_dir: str | Path | None = None
                 ) -> tuple[list[str], str] | None:
    """Test track ids recorded by the model's training run, if any can be found, minus any that
    the run also lists among its training or validation tracks."""
    found = [(record.split, f"test tracks of the training run ({path})")
             for path, record in _run_records(Path(model_path), run_dir) if record.split.test]
    split = card.extra.get("split") if isinstance(card.extra, dict) else None
    if isinstance(split, dict) and split.get("test"):
        try:
            found.append((RunSplit.from_dict(split, "the model card's split"),
                          "test tracks recorded in the model card"))
        except ModelError:
            pass
    if not found:
        return None
    split, how = found[0]
    seen = set(split.train) | set(split.valid)
    return [i for i in split.test if i not in seen], how


def trained_on_everything(model_path: str | Path, card: ModelCard, run_dir=None) -> bool:
    """Whether a record says the model's run had no test tracks (``--split final``)."""
    extra = card.extra if isinstance(card.extra, dict) else {}
    if "test_split" in extra and extra["test_split"] is None:
        return True
    report = _export_report(Path(model_path))
    if report and (report.get("evaluation") or {}).get("part") == "train":
        return True
    return any(record.split.train and not record.split.test
               for _, record in _run_records(Path(model_path), run_dir))


def held_out_for(model_path, card: ModelCard, dataset: Dataset, run_dir=None,
                 limit: int | None = None) -> tuple[HeldOut | None, str]:
    """(the tracks the model's training run kept out, how they were found), or (None, why not).

    Never falls back to a default split: without a record of the run's held-out tracks the
    bench cannot know they were not trained on."""
    found = run_test_ids(model_path, card, run_dir)
    if found is None:
        if trained_on_everything(model_path, card, run_dir):
            why = ("trained on every track (no held-out tracks) and no CV record in its card: "
                   "not measured (export it with --cv-record)")
        else:
            why = ("no CV record in its card and no record of which tracks it trained on: not "
                   "measured (export it with --cv-record, or keep its run.json beside it)")
        return None, why
    ids, how = found
    if not ids:
        return None, f"its run lists its test tracks among its training tracks ({how}): not measured"
    by_id = {t.track_id: t for t in dataset.tracks}
    tracks = [by_id[i] for i in ids if i in by_id]
    if not tracks:
        return None, (f"none of its held-out tracks ({how}) is in {dataset.root}: not measured")
    tracks = spread(tracks, limit)
    return HeldOut(dataset, tracks, how + (f" (--tracks {limit})" if limit else "")), how


@dataclass
class Plan:
    """What the bench does about one model file's accuracy: quote ``accuracy`` (from its card),
    measure on ``held`` (tracks its run kept out), or neither, saying why in ``note``."""

    accuracy: dict | None = None
    held: HeldOut | None = None
    note: str | None = None


def plan(model_path, card: ModelCard, dataset: Dataset, trained: bool = True, run_dir=None,
         limit: int | None = None) -> Plan:
    """The card's CV record first, then held-out tracks a record lists, else nothing."""
    if not trained:
        return Plan(note="untrained: random weights, accuracy not measured")
    cv = card_cv(card)
    if cv is not None:
        return Plan(accuracy=from_card_cv(cv))
    held, why = held_out_for(model_path, card, dataset, run_dir, limit)
    return Plan(held=held, note=None if held is not None else why)


class HeldOutWindowCache:
    """What a model takes for each window of held-out tracks, computed once per front-end +
    window settings: features (``load_windows``), or for a waveform-in file (its front-end in
    its graph) the windows' samples at the card's rate, cut by the same rule."""

    def __init__(self, cache_dir: str | Path | None = None):
        self.cache_dir = cache_dir
        self._memo: dict[tuple, LabelledWindows] = {}

    def windows(self, tracks: list[Track], card: ModelCard) -> LabelledWindows:
        waveform = is_waveform(card)
        key = (settings_key(card.frontend, card.window), waveform,
               tuple(t.track_id for t in tracks))
        if key not in self._memo:
            self._memo[key] = (_audio_windows(tracks, card) if waveform else
                               load_windows(tracks, card.frontend, card.window,
                                            cache_dir=self.cache_dir))
        return self._memo[key]


def _audio_windows(tracks: list[Track], card: ModelCard) -> LabelledWindows:
    """``load_windows`` for a waveform-in file: each window's samples (``cut_windows``, the
    training rule) instead of its features; an unreadable track is skipped with a warning."""
    from edge_genre.edge.audio import load
    from edge_genre.errors import AudioError

    xs, ys, owners, kept, skipped = [], [], [], [], []
    for track in tracks:
        try:
            cut = cut_windows(load(track.path, card.frontend.sample_rate), card.frontend,
                              card.window)
        except AudioError as exc:
            log.warning("skipping %s", exc)
            skipped.append((track.path, str(exc)))
            continue
        if not len(cut):
            continue
        owners.append(np.full(len(cut), len(kept)))
        ys.append(np.full(len(cut), track.label))
        kept.append(track)
        xs.append(cut)
    if not xs:
        n = card.window.window_samples(card.frontend)
        return LabelledWindows(np.zeros((0, n), np.float32), np.zeros(0, int), np.zeros(0, int),
                               [], skipped)
    return LabelledWindows(np.concatenate(xs), np.concatenate(ys), np.concatenate(owners), kept,
                           skipped)


def evaluate(runner, held: HeldOut, cache: HeldOutWindowCache, batch: int = 32) -> dict:
    """Track and window accuracy of a loaded Runner on ``held``'s tracks."""
    card = runner.card
    label_of = {name: i for i, name in enumerate(card.labels)}
    tracks = [t for t in held.tracks if t.genre in label_of]
    if not tracks:
        raise DataError("none of the held-out tracks has a genre the model knows")
    windows = cache.windows(tracks, card)
    if len(windows) == 0:
        raise DataError("no held-out windows could be read")
    x = windows.x if is_waveform(card) else windows.normalized(card.frontend)
    probs = predict_batches(runner.predict, x, batch)
    truth = np.array([label_of[t.genre] for t in windows.tracks])[windows.track]
    return {
        "track_accuracy": track_accuracy(probs, windows.track, truth),
        "window_accuracy": window_accuracy(probs, truth),
        "tracks": len(windows.tracks), "windows": int(len(x)), "held_out": held.description,
        "source": SOURCE_HELD_OUT,
    }


def held_out_audio(tracks: list[Track], sample_rate: int) -> list[np.ndarray]:
    from edge_genre.edge.audio import load

    return [load(t.path, sample_rate) for t in tracks]


def iter_audio(tracks: list[Track], sample_rate: int):
    """The tracks' audio one at a time (161 decoded excerpts would not need to sit in memory)."""
    from edge_genre.edge.audio import load

    for t in tracks:
        yield load(t.path, sample_rate)
