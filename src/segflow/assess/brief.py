"""The brief: a task and its targets (``"miou >= 0.80"``, ``"iou[pedestrian] >= 0.60"``).

A target is ``METRIC[CLASS] OP NUMBER`` (the ``[CLASS]`` scope optional), OP one of ``>=``,
``>``, ``<=``, ``<``, NUMBER a finite decimal. Metric names are those the task's evaluator
produces (:data:`METRICS`); a class scope must name a class of the label schema. Anything else
is refused with a one-line :class:`~segflow.errors.ConfigError` naming the brief and target.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path

from segflow.errors import ConfigError

#: Per task: the whole-set metrics a target may name, and those that take a ``[class]`` scope.
METRICS: dict[str, dict[str, tuple[str, ...]]] = {
    "semantic": {"global": ("miou", "dice", "pixel_accuracy", "fw_iou"),
                 "class": ("iou", "dice")},
    "panoptic": {"global": ("pq", "sq", "rq", "pq_things", "pq_stuff"),
                 "class": ("pq", "sq", "rq")},
    "instance": {"global": ("ap", "ap50", "ap75"), "class": ()},
}

OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_TARGET = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(?:\[\s*([^\]]+?)\s*\])?\s*(>=|<=|>|<)\s*(\S+)\s*$",
                     re.IGNORECASE)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


@dataclass(frozen=True)
class Target:
    metric: str
    scope: str | None  # a class name, or None for the whole set
    op: str
    threshold: float
    text: str

    def met(self, value: float | None) -> bool:
        return value is not None and math.isfinite(value) and OPS[self.op](value, self.threshold)


@dataclass(frozen=True)
class Brief:
    task: str
    targets: list[Target]


def parse_target(text, task: str, *, where: str = "brief") -> Target:
    """One target string into a :class:`Target` (names checked against ``task``'s metrics)."""
    if not isinstance(text, str):
        raise ConfigError(f"{where}: a target is a string such as 'miou >= 0.80', got {text!r}")
    m = _TARGET.match(text)
    if not m:
        raise ConfigError(f"{where}: cannot read target {text!r}; write METRIC[CLASS] >= NUMBER, "
                          "e.g. 'miou >= 0.80' or 'iou[pedestrian] >= 0.60'")
    metric, scope, op, num = m.group(1).lower(), m.group(2), m.group(3), m.group(4)
    if not _NUMBER.match(num):  # float() would take 'nan', 'inf', '1_0'
        raise ConfigError(f"{where}: target {text!r}: the threshold {num!r} is not a finite number")
    thr = float(num)
    if not math.isfinite(thr):
        raise ConfigError(f"{where}: target {text!r}: the threshold {num!r} is not a finite number")
    names = METRICS[task]["class" if scope is not None else "global"]
    if metric not in names:
        kind = "per-class metric" if scope is not None else "metric"
        raise ConfigError(f"{where}: target {text!r}: unknown {kind} {metric!r} for task {task}; "
                          f"use one of {', '.join(names) or '(none)'}")
    return Target(metric, scope, op, thr, text.strip())


def parse_brief(data, *, where: str = "brief") -> Brief:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a brief is a mapping with 'task' and 'targets'")
    unknown = set(data) - {"task", "targets"}
    if unknown:
        raise ConfigError(f"{where}: unknown field {sorted(unknown)[0]!r}; a brief has task and targets")
    task = data.get("task")
    if task not in METRICS:
        raise ConfigError(f"{where}: task must be one of {', '.join(METRICS)}, got {task!r}")
    targets = data.get("targets")
    if not isinstance(targets, list) or not targets:
        raise ConfigError(f"{where}: 'targets' must be a non-empty list of strings such as "
                          "'miou >= 0.80'")
    return Brief(task, [parse_target(t, task, where=where) for t in targets])


def load_brief(path: str | Path) -> Brief:
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such brief file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(e).split())[:120]})") from None
    return parse_brief(data, where=str(path))


def check_classes(brief: Brief, class_names: list[str], *, where: str = "brief") -> None:
    """Every class scope names a class of the schema (``class_names``)."""
    for t in brief.targets:
        if t.scope is not None and t.scope not in class_names:
            raise ConfigError(f"{where}: target {t.text!r}: unknown class {t.scope!r}; the "
                              f"schema has {', '.join(class_names)}")
