"""``edge-genre train``, ``evaluate`` and ``summary``. Light at import: argparse only; the
commands import Keras when they run."""
from __future__ import annotations

import argparse

from edge_genre.edge.cli_args import add_cache_arg
from edge_genre.train.presets import PRESETS as PRESET_CHOICES  # light: numpy and dataclasses
from edge_genre.train.presets import canonical_name
from edge_genre.train.roomsim import DEFAULT_TEST_ROOMS  # light: numpy
from edge_genre.train.splits import SPLITS as SPLIT_CHOICES  # light: numpy and data


def register(sub) -> None:
    p = sub.add_parser("train", help="train a preset on a folder-per-genre dataset",
                       description="Train a preset and write a model directory (model.keras, "
                                   "model_card.json, run.json, curves.png).")
    # type runs before the choices check: a deprecated name is accepted, help shows PRESETS.
    p.add_argument("--preset", type=canonical_name, choices=PRESET_CHOICES, default="scratch",
                   help="what to train (default scratch: a small CNN trained from scratch; "
                        "`edge-genre summary --preset NAME` describes each)")
    p.add_argument("--data", required=True, help="dataset folder (<root>/<genre>/*.wav ...)")
    p.add_argument("--split", choices=SPLIT_CHOICES, default="artist",
                   help="artist: by track, grouped by artist when an index is found (default); "
                        "track: by track only; fault-filtered: the published GTZAN lists; final: every "
                        "track trains, none held out (the model to ship; quote its --cv figures)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="use only the first N tracks of each genre (short runs)")
    add_cache_arg(p)
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="score a model directory, or cross-validate a preset",
                       description="MODEL_DIR --data DIR: window and track accuracy, per genre, "
                                   "confusion matrix. --cv K --preset NAME --data DIR: K-fold "
                                   "cross-validation by track (artist-grouped when known).")
    p.add_argument("model_dir", nargs="?", help="model directory written by `edge-genre train`")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", choices=("run", "all") + SPLIT_CHOICES, default="run",
                   help="which tracks: run = the run's own test tracks (default), all = every "
                        "track, or the test part of a fresh split")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--cv", type=int, default=None, metavar="K", help="K-fold cross-validation")
    p.add_argument("--preset", type=_preset_list, default=None, metavar="NAME[,NAME...]",
                   help="preset(s) to cross-validate on the same folds, e.g. transfer,student,scratch "
                        f"(choices: {', '.join(PRESET_CHOICES)}, baseline = MFCC+SVM)")
    p.add_argument("--baseline", action="store_true",
                   help="cross-validate the MFCC+SVM baseline on the same folds")
    p.add_argument("--epochs", type=int, default=None, help="(--cv) override the epochs")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="(--cv) N tracks/genre")
    p.add_argument("--folds", default=None, help="(--cv) run only these folds, e.g. 1,2")
    p.add_argument("--room", nargs="?", const=",".join(DEFAULT_TEST_ROOMS), default=None,
                   type=_room_list,
                   metavar="NAME[,NAME...]",
                   help="(--cv) also score each test fold through simulated test rooms: near "
                        "(a loudspeaker 1 m away), far (4.9 m across a living room); "
                        "--room alone = near,far")
    add_cache_arg(p)
    p.add_argument("--out", default=None,
                   help="write the report (JSON; plus confusion PNG for a model directory) here")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("summary", help="parameters, MACs per window and layers of a preset")
    p.add_argument("--preset", type=canonical_name, choices=PRESET_CHOICES, required=True)
    p.add_argument("--labels", type=int, default=10, help="number of classes (default 10)")
    p.set_defaults(func=_summary)


def _preset_list(arg: str) -> list[str]:
    names = [canonical_name(n.strip()) for n in arg.split(",") if n.strip()]
    bad = [n for n in names if n not in PRESET_CHOICES + ("baseline",)]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown preset {', '.join(bad) if bad else repr(arg)} (choose from "
            f"{', '.join(PRESET_CHOICES + ('baseline',))})")
    return names


def _room_list(arg: str) -> tuple[str, ...]:
    from edge_genre.errors import DataError
    from edge_genre.train.roomsim import parse_conditions

    try:
        return parse_conditions(arg)
    except DataError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cache(arg):
    from pathlib import Path

    return Path(arg).expanduser() if arg else None


def _train(args) -> int:
    import sys

    from edge_genre.edge.cli_args import output_folder

    output_folder(args.out)  # before the imports and the training it would otherwise end
    from edge_genre.train.fit import train_run
    from edge_genre.train.run_dir import CARD_FILE, CURVES_FILE, MODEL_FILE, RECORD_FILE

    result = train_run(args.preset, args.data, split=args.split, out_dir=args.out,
                       epochs=args.epochs, limit=args.limit, seed=args.seed,
                       cache_dir=_cache(args.cache_dir), progress=not args.quiet)
    r = result.record
    print(f"wrote {result.out_dir}/ ({MODEL_FILE}, {CARD_FILE}, {RECORD_FILE}, {CURVES_FILE})")
    print(f"preset {r.preset}: {r.model['params']:,} params, "
          f"{r.model['macs_per_window']:,} MACs per window; best epoch {r.best_epoch} "
          f"of {r.epochs_run}; wall time {r.wall_seconds:.0f} s")
    if result.test is not None:
        print(result.test.text())
    else:
        print("no test tracks in this split", file=sys.stderr)
    return 0


def _write_json(path, obj) -> None:
    import json
    from pathlib import Path

    path = Path(path)
    if path.suffix != ".json":
        path.mkdir(parents=True, exist_ok=True)
        path = path / "report.json"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n")
    print(f"wrote {path}")


def _evaluate(args) -> int:
    from pathlib import Path

    from edge_genre.edge.cli_args import output_folder
    from edge_genre.errors import DataError

    if args.out:  # a .json file, or a folder
        output_folder(Path(args.out).parent if args.out.endswith(".json") else args.out,
                      shown=args.out)

    names = list(args.preset or []) + (["baseline"] if args.baseline else [])
    if args.cv is not None or names:
        from edge_genre.train import evaluate as ev

        k = args.cv or 5
        if k < 2:
            raise DataError("--cv needs K >= 2")
        if not names:
            raise DataError("--cv needs --preset NAME[,NAME...] (or --baseline)")
        folds = None
        if args.folds:
            try:
                folds = [int(f) - 1 for f in args.folds.split(",")]
            except ValueError:
                raise DataError(f"--folds {args.folds!r} is not a list like 1,2") from None
        results = []
        for name in dict.fromkeys(names):  # each once, in the order given
            if name == "baseline":
                result = ev.cross_validate_baseline(args.data, k, args.seed or 0,
                                                    cache_dir=_cache(args.cache_dir), limit=args.limit)
            else:
                result = ev.cross_validate(name, args.data, k, args.seed or 0,
                                           cache_dir=_cache(args.cache_dir), epochs=args.epochs,
                                           limit=args.limit, folds=folds,
                                           progress=not args.quiet, room=args.room or ())
            print(ev.cv_text(result), flush=True)
            results.append(result)
        if len(results) > 1:
            print()
            print(ev.cv_table(results))
        if args.out:
            _write_json(args.out, results[0] if len(results) == 1 else {"runs": results})
        return 0
    if not args.model_dir:
        raise DataError("evaluate needs MODEL_DIR, or --cv K --preset NAME")
    if args.room:
        raise DataError("--room goes with --cv K --preset NAME (it scores cross-validation folds)")
    from edge_genre.train import plots
    from edge_genre.train.evaluate import evaluate_run_dir

    report = evaluate_run_dir(args.model_dir, args.data, split=args.split, seed=args.seed,
                              cache_dir=_cache(args.cache_dir), progress=not args.quiet)
    print(report.text())
    if args.out:
        _write_json(Path(args.out) / "evaluation.json" if not args.out.endswith(".json")
                    else args.out, report.to_dict())
        png = (Path(args.out) if not args.out.endswith(".json") else Path(args.out).parent)
        print(f"wrote {plots.confusion(report, png / 'confusion.png')}")
    return 0


def _summary(args) -> int:
    from edge_genre.train.fit import setup_keras

    setup_keras(0)
    from edge_genre.train import macs
    from edge_genre.train.presets import get_preset

    preset = get_preset(args.preset)
    model = preset.build(args.labels)
    n_macs, n_params = macs.count(model)
    print(f"preset {preset.name}: {preset.description}")
    print(f"input {'x'.join(map(str, preset.input_shape))} per {preset.window.seconds:g} s window "
          f"(hop {preset.window.hop_seconds:g} s), {preset.frontend.sample_rate} Hz")
    print(macs.format_table(model))
    print(f"{n_params:,} parameters ({macs.bn_params(model):,} in batch norm, folded at export); "
          f"{n_macs:,} MACs per window ({n_macs / 1e6:.1f} M)")
    return 0
