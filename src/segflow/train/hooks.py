"""Trainer hooks: how a training run reports progress and is told to stop, without branches in
the loop.

Every trainer (:class:`segflow.train.trainer.Trainer` for images, semantic and Mask R-CNN, and
:class:`segflow.volume.train.VolumeTrainer`) takes ``hooks=(h1, h2, ...)`` and calls, in order:

- ``on_step(trainer, rec)`` after each optimiser step; ``rec`` has ``step``, ``total_steps``,
  ``epoch``, ``loss``, ``lr``, ``elapsed_s`` (seconds since ``fit`` started), ``eta_s`` and
  ``images_per_s``;
- ``on_eval(trainer, rec)`` after each validation; ``rec`` has ``step``, ``epoch`` and the
  metrics (``miou``, ``ap50``, ``dice``, ...);
- ``on_checkpoint(trainer, path)`` after each checkpoint is written (``last.pt``, ``best.pt``);
- ``should_stop(trainer)`` after each step: one True ends the run, with ``last.pt`` saved first,
  and ``fit`` returns ``{"stopped": True, ...}``; ``resume(last.pt)`` then continues exactly.

The terminal progress bar (:class:`RichProgress`) and the ``metrics.jsonl`` log
(:class:`MetricsLog`) are hooks too; the trainer adds them itself.
"""

from __future__ import annotations

import json
from pathlib import Path


class Hooks:
    """Base class: every method does nothing. Override the ones you need."""

    def on_step(self, trainer, rec: dict) -> None:
        pass

    def on_eval(self, trainer, rec: dict) -> None:
        pass

    def on_checkpoint(self, trainer, path: Path) -> None:
        pass

    def should_stop(self, trainer) -> bool:
        return False


class MetricsLog(Hooks):
    """Appends to ``OUT/metrics.jsonl``: a ``train`` record every ``log_every`` steps (and at
    step 1), and every ``val`` record."""

    def __init__(self, path: str | Path, log_every: int):
        self.path, self.every = Path(path), log_every

    def _write(self, rec: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def on_step(self, trainer, rec: dict) -> None:
        if rec["step"] % self.every == 0 or rec["step"] == 1:
            self._write({"type": "train", "step": rec["step"], "epoch": rec["epoch"],
                         "loss": rec["loss"], "lr": rec["lr"],
                         "images_per_s": rec["images_per_s"]})

    def on_eval(self, trainer, rec: dict) -> None:
        self._write(rec)


class RichProgress(Hooks):
    """The terminal progress bar (rich): steps done, loss, images/s, time left. Use as a context
    manager around ``fit`` (the trainer does)."""

    def __init__(self, name: str, total: int, completed: int = 0):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                            MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[ips]:.1f} img/s"),
                            TimeRemainingColumn())
        self.task = self.bar.add_task(name, total=total, completed=completed, loss=float("nan"),
                                      ips=0.0)

    def __enter__(self):
        self.bar.start()
        return self

    def __exit__(self, *exc):
        self.bar.stop()
        return False

    def on_step(self, trainer, rec: dict) -> None:
        self.bar.update(self.task, completed=rec["step"], loss=rec["loss"],
                        ips=rec["images_per_s"])


class StopAfter(Hooks):
    """Stops a run once it has reached ``step`` optimiser steps (tests, budgets)."""

    def __init__(self, step: int):
        self.step = step

    def should_stop(self, trainer) -> bool:
        return trainer.step >= self.step


class Recorder(Hooks):
    """Keeps every call it gets, in order (``calls``: ``(name, payload)``); for tests and for
    callers that poll a run."""

    def __init__(self):
        self.calls: list[tuple[str, object]] = []

    def on_step(self, trainer, rec: dict) -> None:
        self.calls.append(("step", dict(rec)))

    def on_eval(self, trainer, rec: dict) -> None:
        self.calls.append(("eval", dict(rec)))

    def on_checkpoint(self, trainer, path: Path) -> None:
        self.calls.append(("checkpoint", Path(path)))

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)
