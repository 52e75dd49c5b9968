"""The bench record as files: ``bench.json`` (everything), ``bench.md`` (tables) and
``bench.png`` (track accuracy against per-window latency on one thread)."""
from __future__ import annotations

import json
from pathlib import Path

from edge_genre.benchmarks import machine as machine_mod

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


def _acc(m) -> str:
    acc = m.get("accuracy")
    if acc:
        return f"{100 * acc['track_accuracy']:.1f}% ({acc['tracks']})"
    return "untrained" if not m.get("trained", True) else "–"


def markdown(record: dict) -> str:
    mach = record["machine"]
    threads = record["settings"]["threads"]
    many = max(threads)
    lines = [
        "# edge-genre bench",
        "",
        f"Command: `{record['command']}` ({record['created']}, {record['duration_s']} s).",
        f"Machine: {machine_mod.one_line(mach)}; 1-minute load {mach.get('load_average_1m')} at "
        "the start. Backends: " + ", ".join(f"{k} {v}" for k, v in mach["backends"].items()) + ".",
        "",
        "Latency is wall time per 4 s window of the model alone (median, then p90 / p99, ms); "
        "streaming is front-end + model + decision per hop on one thread. Accuracy is track "
        "accuracy on held-out tracks (count in brackets): "
        f"{record['held_out']['description']}. Absolute figures are from a shared machine: "
        "compare within this table, not across runs.",
        "",
        f"| model | format | size | params | MACs / window | track acc. | backend | "
        f"1 thread ms | {many} threads ms | stream RTF | % of a core | cold start s | peak RSS MiB |"
        " Pi 4 est. ms | Pi 5 est. ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in record["models"]:
        for lat in [r for r in m.get("latency", []) if r["threads"] == 1] or [None]:
            backend = lat["backend"] if lat else "–"
            many_row = next((r for r in m.get("latency", []) if r["threads"] == many
                             and lat and r["backend"] == backend), None)
            stream = next((s for s in m.get("streaming", []) if s["backend"] == backend), None)
            cs = m.get("cold_start") or {}
            name = m["name"] + ("" if m["role"] == "edge" else f" ({m['role']} peer)")
            lines.append(
                f"| {name} | {m['format']} {m['quantization']} | {_size(m['file_bytes'])} | "
                f"{_count(m['params'])} | {_count(m['macs'])} | {_acc(m)} | {backend} | "
                f"{_lat(lat) if lat else '–'} | {_lat(many_row) if many_row else '–'} | "
                f"{_f(stream and stream['real_time_factor'], 5)} | "
                f"{_f(stream and stream['core_percent'], 3, '%')} | "
                f"{_f(cs.get('median_s'), 3) if cs.get('ok') else 'failed'} | "
                f"{_f(cs.get('peak_rss_mib'), 1) if cs.get('ok') else '–'} | "
                f"{_f(m['pi_estimate_ms']['raspberry_pi_4'], 1)} | "
                f"{_f(m['pi_estimate_ms']['raspberry_pi_5'], 1)} |")
    yam = record.get("yamnet") or {}
    if yam.get("latency"):
        one = next((r for r in yam["latency"] if r["threads"] == 1), None)
        many_row = next((r for r in yam["latency"] if r["threads"] == many), None)
        lines.append(
            f"| YAMNet (peer, {yam['frames_per_window']} frames per 4 s) | tflite | "
            f"{_size(yam['file_bytes'])} | {_count(yam['params'])} | "
            f"{_count(yam['macs_per_window'])} | "
            f"{100 * yam['accuracy']['track_accuracy']:.1f}% zero-shot "
            f"({yam['accuracy']['tracks']}) | {one['backend'] if one else '–'} | "
            f"{_lat(one) if one else '–'} | {_lat(many_row) if many_row else '–'} | – | – | – | – | "
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
    notes = [fe["librosa_note"] for fe in record["frontends"] if fe.get("librosa_note")]
    if notes:
        lines += ["", "librosa peer: " + notes[0] + "."]

    r = record["ratios"]
    lines += ["", "## Headline ratios (same run; > 1 means the edge side is faster)", ""]
    for key, label in (
            ("paper_int8_over_edge_int8_latency_1thread",
             f"paper int8 / edge int8 per-window latency, 1 thread ({r.get('paper_file')} vs "
             f"{r.get('edge_file')})"),
            ("yamnet_over_edge_model_latency_1thread",
             "YAMNet per 4 s / edge model per window, 1 thread"),
            ("yamnet_over_edge_frontend_plus_model_1thread",
             "YAMNet per 4 s (includes its front-end) / edge front-end from scratch + model, 1 thread"),
            ("librosa_over_streaming_frontend", "librosa log-mel / streaming front-end, per hop"),
            ("librosa_over_scratch_logmel", "librosa log-mel / our log-mel from scratch, per window"),
            ("scratch_over_streaming_frontend", "from-scratch / streaming front-end, per hop"),
            ("track_accuracy_edge_minus_paper", "track accuracy, edge minus paper (points x 0.01)")):
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
    if record.get("notes"):
        lines += ["", "Notes:"] + [f"- {n}" for n in record["notes"]]
    lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- plot


def plot(record: dict, path: Path) -> Path | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    marker = {"edge": "o", "paper": "s"}
    untrained = []
    for m in record["models"]:
        one = next((r for r in m.get("latency", []) if r["threads"] == 1), None)
        if not one:
            continue
        x = one["per_window_ms"]["median_ms"]
        label = f"{m['name']} [{one['backend']}]"
        if m.get("accuracy"):
            y = 100 * m["accuracy"]["track_accuracy"]
            ax.scatter([x], [y], marker=marker.get(m["role"], "o"), s=45, zorder=3)
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=7)
        else:
            untrained.append((x, label))
    yam = record.get("yamnet") or {}
    one = next((r for r in yam.get("latency", []) if r["threads"] == 1), None)
    if one:
        x, y = one["per_window_ms"]["median_ms"], 100 * yam["accuracy"]["track_accuracy"]
        ax.scatter([x], [y], marker="^", s=55, color="tab:red", zorder=3)
        ax.annotate("YAMNet zero-shot (per 4 s)", (x, y), textcoords="offset points",
                    xytext=(5, 4), fontsize=7)
    for x, label in untrained:
        ax.axvline(x, linestyle="--", linewidth=0.8, color="gray")
        ax.text(x, 2, f" {label}\n (untrained: no accuracy)", rotation=90, fontsize=6,
                va="bottom", color="dimgray")
    ax.set_xscale("log")
    ax.set_ylim(0, 100)
    ax.set_xlabel("per-window latency, 1 thread, median (ms, log scale)")
    ax.set_ylabel("track accuracy on held-out tracks (%)")
    ax.set_title("edge-genre bench: accuracy vs latency\n" + machine_mod.one_line(
        record["machine"]), fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
