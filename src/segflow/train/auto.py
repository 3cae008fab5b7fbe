"""``segflow train DATA --minutes N``: plan, save the config, train, evaluate on held-out data."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from segflow.train.plan import Plan, make_plan


@dataclass
class AutoResult:
    plan: Plan
    config_path: Path
    out: str
    steps: int
    metrics: dict = field(default_factory=dict)
    minutes: float = 0.0


def save_plan(plan: Plan, path: Path) -> Path:
    """Write the plan's YAML and check it loads back into the same config."""
    from segflow.train.config import load_config

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(plan.to_yaml())
    if load_config(path).model_dump() != plan.validate().model_dump():
        raise AssertionError(f"{path}: the written plan does not load back as planned")
    return path


def panoptic_quality(checkpoint: Path, dataset, indices: list[int], device: str = "cpu") -> dict:
    """PQ of a semantic checkpoint (things split by its distance head, else the distance
    transform) on ``dataset[indices]``."""
    import numpy as np

    from segflow.annotations import SemanticMask, panoptic_from
    from segflow.metrics.panoptic import PanopticEvaluator
    from segflow.predict.predictor import Predictor

    pr = Predictor(checkpoint, device=device)
    schema = dataset.schema
    ev = PanopticEvaluator(schema)
    for i in indices:
        it = dataset[i]
        gt = it.panoptic
        if gt is None:
            gt = panoptic_from(it.semantic, it.instances, schema)
        inst, sem = pr.instances(it.image())
        ev.update(gt, panoptic_from(SemanticMask(sem.astype(np.int32), schema.ignore_index), inst,
                                    schema), where=it.name)
    r = ev.compute()
    return {"pq": r.pq, "pq_things": r.things["pq"], "pq_stuff": r.stuff["pq"], "sq": r.sq,
            "rq": r.rq}


def auto_train(data: str | Path, *, task: str | None = None, minutes: float | None = 10.0,
               steps: int | None = None, device: str = "cpu", preset: str | None = None,
               out: str | Path | None = None, seed: int = 0, val: str | Path | None = None,
               cache: Path | None = None, remeasure: bool = False, progress: bool = True,
               evaluate: bool = True, config_out: str | Path | None = None) -> AutoResult:
    """Plan (the budget includes the planning), save the config (``config_out``, default
    ``OUT/plan.yaml``), train from the saved file, and score the final weights on the held-out
    images: mIoU (semantic), mask AP (instance) or PQ (panoptic)."""
    from segflow.train.config import load_config
    from segflow.train.trainer import Trainer

    t0 = time.perf_counter()
    plan = make_plan(data, task=task, minutes=minutes, steps=steps, device=device, preset=preset,
                     out=out, seed=seed, val=val, cache=cache, remeasure=remeasure)
    path = save_plan(plan, Path(config_out) if config_out else Path(plan.config["out"]) / "plan.yaml")
    cfg = load_config(path)
    tr = Trainer(cfg, device=device, progress=progress)
    tr.fit()
    metrics: dict = {}
    if evaluate and len(tr.val_set):
        if plan.task == "panoptic":
            metrics = panoptic_quality(Path(cfg.out) / "last.pt", tr.val_ds, tr.val_set.indices,
                                       device)
        else:
            metrics = tr.validate()
        metrics["held_out_images"] = len(tr.val_set)
    return AutoResult(plan=plan, config_path=path, out=cfg.out, steps=tr.step, metrics=metrics,
                      minutes=(time.perf_counter() - t0) / 60)
