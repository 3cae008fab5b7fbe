"""Readable training curves from a run's ``metrics.jsonl`` (for reports): the training loss,
raw and smoothed, with the validation loss; the validation metric per epoch with its final
value written on the plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_LABELS = {"miou": "mIoU", "ap50": "mask AP50", "ap": "mask AP", "pq": "PQ", "dice": "Dice",
           "pixel_accuracy": "pixel accuracy"}


def _smooth(y: np.ndarray, k: int) -> np.ndarray:
    if len(y) < 3 or k < 2:
        return y
    k = min(k, len(y))
    pad = np.concatenate([np.full(k // 2, y[0]), y, np.full(k - 1 - k // 2, y[-1])])
    return np.convolve(pad, np.ones(k) / k, mode="valid")


def plot_curves(metrics: str | Path, png: str | Path, *, metric: str | None = None,
                title: str | None = None) -> Path | None:
    """Write ``png`` from ``metrics`` (the Trainer's JSON lines); None when it has no record.
    ``metric``: the validation key to plot (default: mIoU, or AP50 for instance runs)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    p = Path(metrics)
    if not p.is_file():
        return None
    recs = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
    tr = [r for r in recs if r.get("type") == "train" and r.get("loss") is not None]
    va = [r for r in recs if r.get("type") == "val"]
    if not tr and not va:
        return None
    if metric is None:
        metric = "ap50" if any("ap50" in r for r in va) else "miou"
    fig = Figure(figsize=(11, 4), dpi=110)
    a, b = fig.subplots(1, 2)
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=11)
        ax.set_xlabel("optimiser step", fontsize=12)
    if tr:
        x = np.array([r["step"] for r in tr])
        y = np.array([r["loss"] for r in tr], float)
        a.plot(x, y, color="#1f77b4", alpha=0.3, lw=1, label="training loss")
        a.plot(x, _smooth(y, max(2, len(y) // 10)), color="#1f77b4", lw=2.2,
               label="training loss (smoothed)")
    vl = [r for r in va if r.get("val_loss") is not None]
    if vl:
        a.plot([r["step"] for r in vl], [r["val_loss"] for r in vl], "o-", color="#d62728", lw=2,
               label="validation loss")
    a.set_title("Loss", fontsize=13)
    a.set_ylabel("loss", fontsize=12)
    a.legend(fontsize=10, frameon=False)
    label = _LABELS.get(metric, metric)
    vm = [r for r in va if r.get(metric) is not None]
    if vm:
        xs, ys = [r["step"] for r in vm], [r[metric] for r in vm]
        b.plot(xs, ys, "o-", color="#2ca02c", lw=2.2, ms=6, label=f"validation {label}")
        b.annotate(f"{ys[-1]:.3f}", (xs[-1], ys[-1]), textcoords="offset points", xytext=(-10, 8),
                   ha="right", fontsize=12, fontweight="bold")
        b.legend(fontsize=10, frameon=False, loc="lower right")
    else:
        b.text(0.5, 0.5, "no validation yet", ha="center", va="center", transform=b.transAxes,
               fontsize=12, color="#666")
    b.set_ylim(0, 1)
    b.set_title(f"Validation {label} (after each epoch)", fontsize=13)
    if title:
        fig.suptitle(title, fontsize=14)
    fig.tight_layout()
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    return png
