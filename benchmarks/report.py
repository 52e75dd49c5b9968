"""The bench record as files: ``bench.json`` (everything), ``bench.md`` (tables) and
``bench.png`` (track accuracy against per-window latency on one thread)."""
from __future__ import annotations

import json
from pathlib import Path

from edge_genre.benchmarks import machine as machine_mod
from edge_genre.benchmarks.bench import TESTED_ROLE
from edge_genre.export.pipeline import CV_ROOMS

JSON_FILE, MD_FILE, PNG_FILE = "bench.json", "bench.md", "bench.png"


def write(record: dict, out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / JSON_FILE, "markdown": out / MD_FILE}
    paths["json"].write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown(record), encoding="utf-8")
    png = plot(record, out / PNG_FILE)
    if png:
        paths["png"] = png
    return paths


# ----------------------------------------------------------------------------- markdown


def _f(value, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _count(n) -> str:
    if n is None:
        return "–"
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if n >= div:
            return f"{n / div:.2f}{suffix}"
    return str(n)


def _size(n) -> str:
    return "–" if n is None else (f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB")


def _lat(row) -> str:
    s = row["per_window_ms"]
    return f"{s['median_ms']:.2f} ({s['p90_ms']:.2f} / {s['p99_ms']:.2f})"


def _pct(value) -> str:
    return f"{100 * value:.1f} %"


def accuracy_text(acc: dict | None, trained: bool = True, n_dataset: int | None = None) -> str:
    """The accuracy cell: where the figure comes from is part of it."""
    if not trained:
        return "untrained"
    if not acc:
        return "–"
    source = acc.get("source")
    if source == "card cv":
        text = _pct(acc["track_accuracy"])
        if acc.get("track_accuracy_std") is not None:
            text += f" ± {100 * acc['track_accuracy_std']:.1f}"
        text += f" CV ({acc.get('grouping') or '?'}, {acc['k']} folds"
        if n_dataset and acc.get("tracks") and acc["tracks"] != n_dataset:
            text += f", {acc['tracks']} of {n_dataset} tracks"
        text += ")"
        # "room": the one near-field synthetic room of cards exported before the physical rooms.
        for room in CV_ROOMS + ("room",):
            name = "room mic" if room == "room" else f"{room} room"
            if acc.get(f"{room}_track_accuracy") is not None:
                text += f"; {name} {_pct(acc[f'{room}_track_accuracy'])}"
                if acc.get(f"{room}_track_accuracy_std") is not None:
                    text += f" ± {100 * acc[f'{room}_track_accuracy_std']:.1f}"
        return text
    if source == "zero-shot all tracks" or acc.get("zero_shot"):
        return f"{_pct(acc['track_accuracy'])} zero-shot ({acc['tracks']} tracks)"
    return f"{_pct(acc['track_accuracy'])} held-out ({acc['tracks']} tracks)"


def _acc(m, n_dataset=None) -> str:
    return accuracy_text(m.get("accuracy"), m.get("trained", True), n_dataset)


def thread_columns(record: dict) -> list[int]:
    """One latency column per distinct thread count that was measured, in the order asked."""
    threads = list(record["settings"].get("threads") or [])
    for m in record["models"] + [record.get("yamnet") or {}]:
        threads += [r["threads"] for r in m.get("latency", [])]
    return list(dict.fromkeys(int(t) for t in threads))


def _thread_header(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''} ms"


def markdown(record: dict) -> str:
    mach = record["machine"]
    columns = thread_columns(record)
    n_dataset = (record.get("dataset") or {}).get("n_tracks")
    yam = record.get("yamnet") or {}
    yam_acc = yam.get("accuracy") or {}
    lines = [
        "# edge-genre bench",
        "",
        f"Command: `{record['command']}` ({record['created']}, {record['duration_s']} s).",
        f"Machine: {machine_mod.one_line(mach)}; 1-minute load {mach.get('load_average_1m')} at "
        "the start. Backends: " + ", ".join(f"{k} {v}" for k, v in mach["backends"].items()) + ".",
        "",
        "Latency is wall time per 4 s window of the model alone (median, then p90 / p99, ms); "
        "streaming is front-end + model + decision per hop on one thread. A file marked "
        "**front-end in-graph** takes raw audio and computes its log-mel inside the model: its "
        "latency includes that front-end, and its streaming figures run it once, with no numpy "
        "front-end. Accuracy is track "
        "accuracy and says where it comes from: **CV** = mean ± std over the folds of the "
        "cross-validation recorded in the file's model card (`edge-genre export --cv-record`), "
        "quoted, not measured here; **held-out** = measured on the test tracks its training run "
        "lists (never tracks it trained on); **–** = neither is known, not measured (notes below); "
        "YAMNet **zero-shot** over "
        + (f"{yam_acc['tracks']} tracks" if yam_acc else "all tracks")
        + " (it trained on none). Absolute figures are from a shared machine: compare within "
        "this table, not across runs.",
        "",
        "| model | format | size | params | MACs / window | track acc. | backend | "
        + " | ".join(_thread_header(n) for n in columns)
        + " | stream RTF | % of a core | cold start s | peak RSS MiB | Pi 4 est. ms | Pi 5 est. ms |",
        "|" + "---|" * (13 + len(columns)),
    ]
    for m in record["models"]:
        rows = m.get("latency", [])
        backends = list(dict.fromkeys(r["backend"] for r in rows)) or [None]
        for backend in backends:
            cells = []
            for n in columns:
                row = next((r for r in rows if r["threads"] == n and r["backend"] == backend),
                           None)
                cells.append(_lat(row) if row else "–")
            stream = next((s for s in m.get("streaming", []) if s["backend"] == backend), None)
            cs = m.get("cold_start") or {}
            name = m["name"] + ("" if m["role"] == TESTED_ROLE else f" ({m['role']} peer)")
            if m.get("frontend_in_graph"):
                name += " (front-end in-graph)"
            lines.append(
                f"| {name} | {m['format']} {m['quantization']} | {_size(m['file_bytes'])} | "
                f"{_count(m['params'])} | {_count(m['macs'])} | {_acc(m, n_dataset)} | "
                f"{backend or '–'} | " + " | ".join(cells) + " | "
                f"{_f(stream and stream['real_time_factor'], 5)} | "
                f"{_f(stream and stream['core_percent'], 3, '%')} | "
                f"{_f(cs.get('median_s'), 3) if cs.get('ok') else ('failed' if cs else '–')} | "
                f"{_f(cs.get('peak_rss_mib'), 1) if cs.get('ok') else '–'} | "
                f"{_f(m['pi_estimate_ms']['raspberry_pi_4'], 1)} | "
                f"{_f(m['pi_estimate_ms']['raspberry_pi_5'], 1)} |")
    if yam.get("latency"):
        cells = []
        for n in columns:
            row = next((r for r in yam["latency"] if r["threads"] == n), None)
            cells.append(_lat(row) if row else "–")
        lines.append(
            f"| YAMNet (peer, {yam['frames_per_window']} frames per 4 s) | tflite | "
            f"{_size(yam['file_bytes'])} | {_count(yam['params'])} | "
            f"{_count(yam['macs_per_window'])} | {accuracy_text(yam_acc or None)} | "
            f"{yam['latency'][0]['backend']} | " + " | ".join(cells) + " | – | – | – | – | "
            f"{_f(yam['pi_estimate_ms']['raspberry_pi_4'], 1)} | "
            f"{_f(yam['pi_estimate_ms']['raspberry_pi_5'], 1)} |")
    elif yam.get("skipped"):
        lines.append(f"\nYAMNet peer skipped: {yam['skipped']}.")

    lines += ["", "## Front-end cost per hop (ms, median / min)", "",
              "| front-end | used by | hop s | frames computed / reused per hop | streaming | "
              "from scratch | scratch log-mel only | librosa |", "|---|---|---|---|---|---|---|---|"]
    for fe in record["frontends"]:
        ph = fe["per_hop_ms"]

        def cell(s):
            return f"{s['median_ms']:.2f} / {s['min_ms']:.2f}" if s else "skipped"
        lines.append(
            f"| {fe['preset']} ({fe['sample_rate']} Hz, {fe['n_mels']} mels"
            f"{', resize ' + 'x'.join(map(str, fe['resize'])) if fe['resize'] else ''}) | "
            f"{', '.join(fe['used_by'])} | {fe['hop_seconds']:.3f} | "
            f"{fe['frames_computed_per_hop']:.0f} / {fe['frames_reused_per_hop']:.0f} | "
            f"{cell(ph['streaming'])} | {cell(ph['scratch'])} | {cell(ph['scratch_logmel'])} | "
            f"{cell(ph['librosa'])} |")
    in_graph = [m["name"] for m in record["models"] if m.get("frontend_in_graph")]
    if in_graph:
        lines += ["", f"Not in this table: {', '.join(in_graph)} (front-end in-graph: its cost "
                  "is inside the model's latency and streaming figures)."]
    notes = [fe["librosa_note"] for fe in record["frontends"] if fe.get("librosa_note")]
    if notes:
        lines += ["", "librosa peer: " + notes[0] + "."]

    r = record["ratios"]
    lines += ["", "## Headline ratios (same run; > 1 means the tested file is faster)", ""]
    for key, label in (
            ("paper_int8_over_tested_int8_latency_1thread",
             f"paper int8 / tested int8 per-window latency, 1 thread ({r.get('paper_file')} vs "
             f"{r.get('tested_file')})"),
            ("yamnet_over_tested_model_latency_1thread",
             "YAMNet per 4 s / tested model per window, 1 thread"),
            ("yamnet_over_tested_frontend_plus_model_1thread",
             "YAMNet per 4 s (includes its front-end) / tested model with its front-end in-graph, "
             "1 thread" if r.get("tested_frontend_in_graph") else
             "YAMNet per 4 s (includes its front-end) / tested model's front-end from scratch + "
             "model, 1 thread"),
            ("librosa_over_streaming_frontend", "librosa log-mel / streaming front-end, per hop"),
            ("librosa_over_scratch_logmel", "librosa log-mel / our log-mel from scratch, per window"),
            ("scratch_over_streaming_frontend", "from-scratch / streaming front-end, per hop"),
            ("track_accuracy_tested_minus_paper",
             "track accuracy, tested minus paper (points x 0.01)")):
        if r.get(key) is not None:
            lines.append(f"- {label}: **{_f(r[key], 2)}**")

    if yam.get("mapping"):
        lines += ["", "## YAMNet zero-shot mapping (GTZAN genre <- AudioSet classes)", ""]
        lines += [f"- {g}: {', '.join(c)}" for g, c in yam["mapping"].items()]
        lines += [f"", f"A track's genre is the one whose classes score highest, scores averaged "
                  f"over all 0.975 s frames of the track (0.48 s hop). Class names: "
                  f"`{Path(yam['class_map']).name}`."]

    pi = record["pi_estimate"]
    lines += ["", "## Raspberry Pi estimate (NOT measured)", "",
              "This machine is not a Pi. The Pi columns are " + pi["method"] + ":"]
    for rate in pi["rates"].values():
        lines.append(f"- {rate['device']}: {rate['macs_per_second_per_core'] / 1e9:.2f} GMAC/s "
                     f"= {rate['derivation']}; sources: {', '.join(rate['sources'])}")
    lines.append("- The rate is fp32 XNNPACK on MobileNet v1; small models run below it (per-op "
                 "overhead), int8 NEON kernels usually above. Run `edge-genre bench` on the Pi.")
    if record.get("python_floor"):
        lines += ["", f"Cold start floor (`python -c pass`): "
                  f"{record['python_floor']['median_s']:.3f} s, "
                  f"{record['python_floor']['peak_rss_mib']:.1f} MiB."]
    acc_notes = [f"- {m['name']}: {m['accuracy_note']}" for m in record["models"]
                 if m.get("accuracy_note")]
    cv_sources = [f"- {m['name']}: `{m['accuracy']['cv']['source']}`" for m in record["models"]
                  if (m.get("accuracy") or {}).get("cv", {}).get("source")]
    if acc_notes or cv_sources:
        lines += ["", "## Accuracy: where each figure comes from", ""]
        if cv_sources:
            lines += ["CV records in the model cards, made by:"] + cv_sources
        if acc_notes:
            lines += ([""] if cv_sources else []) + ["Not measured:"] + acc_notes
    if record.get("notes"):
        lines += ["", "Notes:"] + [f"- {n}" for n in record["notes"]]
    lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plot

#: Marker per accuracy source in the plot.
KINDS = {"card cv": ("o", "CV mean ± std (model card)"),
         "held-out": ("D", "held-out tracks of its run"),
         "zero-shot all tracks": ("^", "zero-shot, all tracks")}
NUMBER_FONT = 7.5  # points
KEY_FONT = 7.0
KEY_PITCH = 1.6  # line pitch of the key, in font sizes


def plot_thread(record: dict) -> int | None:
    """The thread count the plot's x axis shows: 1 if measured, else the fewest measured."""
    columns = thread_columns(record)
    return (1 if 1 in columns else min(columns)) if columns else None


def _short_acc(acc: dict) -> str:
    text = _pct(acc["track_accuracy"])
    if acc.get("source") == "card cv":
        if acc.get("track_accuracy_std") is not None:
            text += f" ± {100 * acc['track_accuracy_std']:.1f}"
        return text + f" CV ({acc['k']} folds)"
    if acc.get("source") == "zero-shot all tracks" or acc.get("zero_shot"):
        return text + f" zero-shot ({acc['tracks']} tracks)"
    return text + f" held-out ({acc['tracks']} tracks)"


def plot_points(record: dict) -> tuple[list[dict], list[str]]:
    """(points to draw, what is left out and why). A model without trained weights, or without
    an accuracy this bench may quote, has no point."""
    t = plot_thread(record)
    points, left_out = [], []
    for m in record["models"]:
        row = next((r for r in m.get("latency", []) if r["threads"] == t), None)
        acc = m.get("accuracy")
        if not m.get("trained", True):
            left_out.append(f"{m['name']} (untrained)")
            continue
        if not acc:
            left_out.append(f"{m['name']} (no quotable accuracy)")
            continue
        if not row:
            left_out.append(f"{m['name']} (no {t}-thread latency)")
            continue
        source = acc.get("source") or "held-out"
        err = acc.get("track_accuracy_std") if source == "card cv" else None
        peer = "" if m["role"] == TESTED_ROLE else f" ({m['role']} peer)"
        points.append({"label": f"{m['name']}{peer} [{row['backend']}]: {_short_acc(acc)}",
                       "x": row["per_window_ms"]["median_ms"],
                       "y": 100 * acc["track_accuracy"],
                       "err": None if err is None else 100 * err, "source": source,
                       "role": m["role"], "name": m["name"]})
    yam = record.get("yamnet") or {}
    row = next((r for r in yam.get("latency", []) if r["threads"] == t), None)
    if row and yam.get("accuracy"):
        acc = {**yam["accuracy"], "source": yam["accuracy"].get("source", "zero-shot all tracks")}
        points.append({"label": f"YAMNet per 4 s (peer): {_short_acc(acc)}",
                       "x": row["per_window_ms"]["median_ms"],
                       "y": 100 * acc["track_accuracy"], "err": None,
                       "source": acc["source"], "role": "yamnet", "name": "YAMNet"})
    return points, left_out


def _overlaps(a, b, pad: float = 0.0) -> bool:
    return not (a.x1 + pad <= b.x0 or b.x1 + pad <= a.x0 or a.y1 + pad <= b.y0
                or b.y1 + pad <= a.y0)


def number_runs(numbers) -> str:
    """"1, 3–6, 9": the numbers of the points that share one spot."""
    out, run = [], []
    for n in sorted(set(numbers)):
        if run and n != run[-1] + 1:
            out.append(run)
            run = []
        run.append(n)
    if run:
        out.append(run)
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}, {r[1]}" if len(r) == 2
                     else f"{r[0]}–{r[-1]}" for r in out)


#: Where a point's number may go, tried in order (offsets in points from the point).
NUMBER_OFFSETS = tuple((dx, dy) for dy in (7, -7, 16, -16, 25, -25, 34, -34, 43, -43)
                       for dx in (7, -7))
NUMBER_CLEARANCE = 2.5  # points kept free around each number


def _plain_log_ticks(axis) -> None:
    """Tick labels of a log axis as plain numbers (6, 10, 200), not 6x10^0; minor ticks labelled
    only when the axis spans about a decade or less (matplotlib's rule)."""
    from matplotlib.ticker import LogFormatter

    axis.set_major_formatter(LogFormatter())
    axis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


def figure(record: dict):
    """(figure, axes, text artists that must not overlap) of the accuracy-latency plot.

    Each point carries a number (points that fall on the same spot share one label, "2, 3"),
    placed greedily at the first offset around it that overlaps no other number or point; the
    key to the right lists the numbers top to bottom with model, backend and accuracy."""
    import textwrap

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.transforms import Bbox

    points, left_out = plot_points(record)
    points.sort(key=lambda p: (-p["y"], p["x"]))  # numbered top to bottom, as the key reads
    t = plot_thread(record)
    pitch_in = KEY_FONT * KEY_PITCH / 72.0
    axes_h = max(3.4, pitch_in * (len(points) + 6))  # the key and the marker legend
    top_in, bottom_in = 0.7, 0.95
    fig_h = axes_h + top_in + bottom_in
    fig = plt.figure(figsize=(11.0, fig_h))
    ax = fig.add_axes((0.07, bottom_in / fig_h, 0.5, axes_h / fig_h))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    seen_kinds = {}
    for i, p in enumerate(points):
        p["number"] = i + 1
        p["color"] = "tab:red" if p["role"] == "yamnet" else colors[i % len(colors)]
        marker = "s" if p["role"] == "paper" else KINDS.get(p["source"], ("o", ""))[0]
        filled = p["source"] != "held-out"
        if p["err"] is not None:
            ax.errorbar([p["x"]], [p["y"]], yerr=[[p["err"]], [p["err"]]], fmt="none",
                        ecolor=p["color"], elinewidth=0.9, capsize=3, zorder=2)
        ax.scatter([p["x"]], [p["y"]], marker=marker, s=46, zorder=3,
                   color=p["color"] if filled else "white", edgecolors=p["color"],
                   linewidths=1.2)
        seen_kinds.setdefault(p["source"], marker)
    ax.set_xscale("log")
    if points:
        xs = [p["x"] for p in points]
        ax.set_xlim(min(xs) / 1.8, max(xs) * 1.8)
    ax.set_ylim(0, 100)
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel(f"per-window latency, {t} thread{'s' if t and t != 1 else ''}, median "
                  "(ms, log scale)")
    ax.set_ylabel("track accuracy (%)")
    ax.set_title("edge-genre bench: accuracy vs latency\n" + machine_mod.one_line(
        record["machine"]), fontsize=8, loc="left")
    ax.grid(True, which="both", alpha=0.3)

    # Numbers beside the points: one per spot, greedy, never on another number or point.
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    px_per_pt = fig.dpi / 72.0
    near = 8 * px_per_pt  # markers closer than this share one number label
    spots: list[list[dict]] = []
    for p in points:
        p["px"] = xy = to_px((p["x"], p["y"]))
        for spot in spots:
            if any(abs(q["px"][0] - xy[0]) < near and abs(q["px"][1] - xy[1]) < near
                   for q in spot):
                spot.append(p)
                break
        else:
            spots.append([p])
    half = 4.0 * px_per_pt  # a marker's half size (s=46 points^2: 6.8 points across)
    taken = [Bbox.from_extents(p["px"][0] - half, p["px"][1] - half, p["px"][0] + half,
                               p["px"][1] + half) for p in points]
    for p in points:  # error bars: the line and its two caps
        if p["err"] is not None:
            lo, hi = to_px((p["x"], p["y"] - p["err"])), to_px((p["x"], p["y"] + p["err"]))
            line, cap = 0.6 * px_per_pt, 3.0 * px_per_pt
            taken.append(Bbox.from_extents(lo[0] - line, lo[1], hi[0] + line, hi[1]))
            for end in (lo, hi):
                taken.append(Bbox.from_extents(end[0] - cap, end[1] - line, end[0] + cap,
                                               end[1] + line))
    pad = NUMBER_CLEARANCE * px_per_pt
    texts = []
    for spot in spots:
        x, y = spot[0]["x"], spot[0]["y"]
        label = number_runs([p["number"] for p in spot])
        color = spot[0]["color"] if len({p["color"] for p in spot}) == 1 else "black"
        text = None
        for dx, dy in NUMBER_OFFSETS:
            if text is not None:
                text.remove()
            text = ax.annotate(label, (x, y), textcoords="offset points", xytext=(dx, dy),
                               ha="left" if dx > 0 else "right",
                               va="bottom" if dy > 0 else "top", fontsize=NUMBER_FONT,
                               color=color, fontweight="bold", zorder=4,
                               annotation_clip=False)
            box = text.get_window_extent(renderer)
            if not any(_overlaps(box, other, pad) for other in taken):
                break
        taken.append(text.get_window_extent(renderer))
        texts.append(text)

    # The key: one line per point, top to bottom, at a fixed pitch (cannot overlap).
    key_x = 0.07 + 0.5 + 0.015
    top = (bottom_in + axes_h) / fig_h
    for i, p in enumerate(points):
        texts.append(fig.text(key_x, top - (i + 0.5) * pitch_in / fig_h,
                              f"{p['number']}  {p['label']}", fontsize=KEY_FONT,
                              color=p["color"], va="center", ha="left"))
    handles = [plt.Line2D([], [], linestyle="", marker=KINDS[k][0], color="gray",
                          markerfacecolor="white" if k == "held-out" else "gray",
                          label=KINDS[k][1]) for k in KINDS if k in seen_kinds]
    if handles:
        fig.legend(handles=handles, loc="upper left", ncol=1, fontsize=7, frameon=False,
                   bbox_to_anchor=(key_x - 0.01, top - (len(points) + 0.6) * pitch_in / fig_h))
    if left_out:
        fig.text(0.07, 0.1 / fig_h, "\n".join(textwrap.wrap(
            "Not plotted: " + "; ".join(left_out), 160)), fontsize=6.5, color="dimgray",
            va="bottom")
    return fig, ax, texts


def plot(record: dict, path: Path) -> Path | None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    import matplotlib.pyplot as plt

    fig, _, _ = figure(record)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
