"""Whether a model keeps up with ``listen``'s hop on this machine, measured once at start-up.

``listen`` makes one decision per hop: the front-end of the hop's new audio, then the model on
the last window. When that takes longer than the hop, decisions fall further behind the
microphone with every hop (and the capture queue overflows); ``--model music`` (1.9 G MACs a
window) on a Raspberry Pi, or any model with a short ``--hop``, can get there. ``listen`` times a
few decisions of the loaded model on noise before it starts (``seconds_per_decision``) and, when
they take more than ``PaceConfig.budget`` of the hop, says so once, naming a lighter shipped model
(``pace_problem``: the shipped models' MACs are in their cards) or a longer hop.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from edge_genre.edge.config import PaceConfig


def seconds_per_decision(clf, config: PaceConfig | None = None) -> float:
    """Median wall seconds of one live decision of ``clf``'s model on this machine: a hop of
    noise through a fresh window cut (``clf.windows()``: the front-end's new frames) and the
    model on the window it completes. One untimed decision first (the interpreter's first run
    allocates). ``clf``'s own stream is left alone."""
    config = config or PaceConfig()
    rng = np.random.default_rng(0)
    # Noise at about -20 dBFS: above any silence gate, so the model runs as on music.
    audio = (0.1 * rng.standard_normal(clf.window_samples + (config.windows + 1) * clf.hop_samples)
             ).astype(np.float32)
    stream = clf.windows()
    for _, x in stream.push_windows(audio[:clf.window_samples]):
        clf.runner.predict(x[None])  # the warm-up
    times = []
    pos = clf.window_samples
    for _ in range(config.windows):
        block = audio[pos:pos + clf.hop_samples]
        pos += clf.hop_samples
        t0 = time.perf_counter()
        for _, x in stream.push_windows(block):
            clf.runner.predict(x[None])
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def model_macs(card) -> int | None:
    macs = card.extra.get("macs") if isinstance(card.extra, dict) else None
    return int(macs) if isinstance(macs, (int, float)) and macs > 0 else None


def shipped_macs() -> dict[str, int]:
    """{name: MACs per window} of the shipped models whose cards say it."""
    from edge_genre.defaults import shipped_models, shipped_names
    from edge_genre.edge.modelfile import read_card

    out = {}
    for name in shipped_names():
        files = shipped_models(name)
        macs = model_macs(read_card(files[0])) if files else None
        if macs:
            out[name] = macs
    return out


def pace_problem(model: str, seconds: float, hop_seconds: float, macs: int | None,
                 shipped: dict[str, int], budget: float = PaceConfig.budget) -> str | None:
    """One line when a decision taking ``seconds`` does not fit ``budget`` of the hop, or None.

    ``model``: the loaded file's name; ``macs``: its MACs per window (None: unknown);
    ``shipped``: {name: MACs} of the shipped models (``shipped_macs``). The lighter model named
    is the heaviest shipped one whose decisions, scaled from this one's by MACs, would fit; the
    lightest when none would (with a longer hop)."""
    allowed = budget * hop_seconds
    if seconds <= allowed:
        return None
    line = (f"{model} takes {seconds * 1e3:.0f} ms a decision on this machine, more than "
            f"{budget:.0%} of the {hop_seconds:g} s hop: decisions will fall behind")
    lighter = sorted(((m, n) for n, m in shipped.items() if macs and m < macs), reverse=True)
    if not lighter:
        return line + "; give a longer --hop"
    fits = [(m, n) for m, n in lighter if seconds * m / macs <= allowed]
    m, n = fits[0] if fits else lighter[-1]
    line += f"; try the lighter --model {n} ({m / 1e6:,.0f} M MACs against {macs / 1e6:,.0f} M)"
    return line + ("" if fits else " with a longer --hop")


def check(clf, hop_seconds: float, config: PaceConfig | None = None) -> str | None:
    """``pace_problem`` for a loaded Classifier, timed here and now."""
    config = config or PaceConfig()
    seconds = seconds_per_decision(clf, config)
    if seconds <= config.budget * hop_seconds:
        return None  # keeps up: no need to read the shipped models' cards
    return pace_problem(clf.runner.path.name, seconds, hop_seconds, model_macs(clf.card),
                        shipped_macs(), config.budget)
