"""The verdict: "meets the brief" when every target is met, else "retrain", with the reasons.

Reasons name the failing targets (value, interval, threshold), the classes with few examples in
the ground truth (fewer than ``min_images`` images or ``min_pixels`` pixels / ``min_objects``
objects), and, given a learning curve (``history``: training-set sizes and the metric each run
reached), whether more data is likely to help, judged by the gain per doubling of the training
images (a least-squares line of the metric against log2 of the size).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segflow.errors import ConfigError

MEETS, RETRAIN = "meets the brief", "retrain"
#: A learning curve rising less than this per doubling of the training images is "flat".
FLAT_GAIN = 0.01


@dataclass
class TargetResult:
    metric: str
    scope: str | None
    op: str
    threshold: float
    value: float | None
    ci: tuple[float, float] | None
    met: bool
    text: str

    def to_dict(self) -> dict:
        return {"metric": self.metric, "scope": self.scope, "op": self.op,
                "threshold": self.threshold, "value": self.value,
                "ci": list(self.ci) if self.ci is not None else None, "met": self.met,
                "target": self.text}


def load_history(path: str | Path) -> list[tuple[int, float]]:
    """A learning curve: a JSON list of ``{"n_train_images": N, "metric": V}`` objects or
    ``[N, V]`` pairs, N a positive integer and V a finite number."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such history file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, list):
        raise ConfigError(f"{path}: a history is a JSON list of {{n_train_images, metric}} objects")
    out = []
    for k, r in enumerate(data):
        if isinstance(r, dict):
            n, v = r.get("n_train_images"), r.get("metric")
        elif isinstance(r, list) and len(r) == 2:
            n, v = r
        else:
            n = v = None
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 10**12 or \
                isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"{path}: entry {k} must have n_train_images (a positive integer) "
                              f"and metric (a finite number), got {r!r}")
        out.append((n, float(v)))
    return sorted(out)


def curve_gain(history: list[tuple[int, float]]) -> float | None:
    """The metric's gain per doubling of the training images (None with < 2 distinct sizes)."""
    if len({n for n, _ in history}) < 2:
        return None
    x = np.log2([n for n, _ in history])
    y = np.array([v for _, v in history])
    return float(np.polyfit(x, y, 1)[0])


def decide(results: list[TargetResult], class_counts: dict[str, dict[str, int]], *,
           min_images: int = 5, min_pixels: int = 1000, min_objects: int = 20,
           history: list[tuple[int, float]] | None = None) -> tuple[str, list[str]]:
    """(verdict, reasons)."""
    reasons = []
    failing = [r for r in results if not r.met]
    for r in failing:
        val = "no value (the class is absent from ground truth and predictions)" \
            if r.value is None else f"{r.value:.4f}"
        ci = f" (95% CI {r.ci[0]:.4f}-{r.ci[1]:.4f})" if r.ci is not None else ""
        reasons.append(f"target not met: {r.text} measured {val}{ci}")
    for name, c in class_counts.items():
        unit = "pixels" if "pixels" in c else "objects"
        floor = min_pixels if unit == "pixels" else min_objects
        if c["images"] < min_images or c[unit] < floor:
            reasons.append(f"class {name!r} lacks examples: {c[unit]} {unit} in {c['images']} "
                           f"ground-truth image(s) (want >= {floor} {unit} in >= {min_images})")
    if history:
        gain = curve_gain(history)
        if gain is None:
            reasons.append("learning curve: one training-set size only; give runs of several "
                           "sizes to judge whether more data helps")
        elif gain >= FLAT_GAIN:
            n_last = history[-1][0]
            need = ""
            for r in failing:
                if r.value is not None and r.op in (">=", ">"):
                    more = n_last * 2 ** ((r.threshold - r.value) / gain)
                    need = f"; about {round(more)} training images for {r.text} if the trend holds"
                    break
            reasons.append(f"learning curve: +{gain:.3f} per doubling of the training images over "
                           f"{len(history)} runs, so more labelled data is likely to help{need}")
        else:
            reasons.append(f"learning curve: flat ({gain:+.3f} per doubling over {len(history)} "
                           "runs): more data alone is unlikely to help; change the model, the "
                           "training or the labels")
    else:
        reasons.append("no learning curve given (--history): whether more data helps is not judged")
    return (RETRAIN if failing else MEETS), reasons
