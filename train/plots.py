"""PNG plots of a run: training curves and a confusion matrix (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(history: list[dict], path, title: str = "") -> Path:
    """Accuracy (train, val window, val track) and loss (train, val) per epoch."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("accuracy", "train (window, augmented)"),
                       ("val_accuracy", "valid window"), ("val_track_accuracy", "valid track")):
        if any(key in h for h in history):
            ax_acc.plot(epochs, [h.get(key, np.nan) for h in history], marker=".", label=label)
    for key, label in (("loss", "train"), ("val_loss", "valid")):
        if any(key in h for h in history):
            ax_loss.plot(epochs, [h.get(key, np.nan) for h in history], marker=".", label=label)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1), title="accuracy")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a fitted head has no loss curve
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def confusion(report, path) -> Path:
    """Track-level confusion matrix of an ``evaluate.Report``, titled with its split."""
    plt = _pyplot()
    cm = np.asarray(report.confusion)
    n = len(report.labels)
    fig, ax = plt.subplots(figsize=(6.5, 6))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), report.labels, rotation=45, ha="right")
    ax.set_yticks(range(n), report.labels)
    ax.set(xlabel="predicted", ylabel="true")
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > cm.max() / 2 else "black")
    split = report.split if len(report.split) < 70 else report.split[:67] + "..."
    ax.set_title(f"track accuracy {report.track_accuracy:.1%}\n{split}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
