"""The final assessment: a checkpoint measured against a brief's targets, with a verdict.

:func:`assess` predicts the ground truth, measures every target with a bootstrap interval
(:mod:`~segflow.assess.measure`), decides (:mod:`~segflow.assess.verdict`) and, given unlabelled
images, picks the next ones to label (:mod:`~segflow.assess.select`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from segflow.assess.brief import METRICS, Brief, Target, load_brief, parse_brief, parse_target
from segflow.assess.measure import Measurement, measure
from segflow.assess.select import entropy_score, next_images, select_diverse
from segflow.assess.verdict import MEETS, RETRAIN, TargetResult, decide, load_history

__all__ = ["METRICS", "MEETS", "RETRAIN", "Assessment", "Brief", "Measurement", "Target",
           "TargetResult", "assess", "decide", "entropy_score", "load_brief", "load_history",
           "measure", "next_images", "parse_brief", "parse_target", "select_diverse"]


@dataclass
class Assessment:
    brief: Brief
    measurement: Measurement
    targets: list[TargetResult]
    verdict: str
    reasons: list[str]
    next_images: list[dict] = field(default_factory=list)

    def cleanup(self) -> None:
        """Remove the temporary folder of predictions (after any report is written)."""
        import shutil

        m = self.measurement
        if m.scratch and m.predictions is not None:
            shutil.rmtree(m.predictions, ignore_errors=True)
            m.predictions = None

    def to_dict(self) -> dict:
        m = self.measurement
        per_class = {}
        for (metric, scope), v in m.values.items():
            if scope is not None:
                ci = m.ci.get((metric, scope))
                per_class.setdefault(scope, {})[metric] = {
                    "value": None if v != v else v, "ci": list(ci) if ci else None}
        for name, c in m.class_counts.items():
            per_class.setdefault(name, {}).update(c)
        return {"task": m.task, "targets": [t.to_dict() for t in self.targets],
                "verdict": self.verdict, "reasons": self.reasons, "next_images": self.next_images,
                "images": m.n_images, "resamples": m.resamples, "ci_level": 0.95,
                "per_class": per_class,
                "worst_images": [{"name": n, m.worst_metric: None if v != v else v}
                                 for n, v in m.worst],
                "notes": m.notes}


def assess(checkpoint: str | Path, gt: str | Path, brief: Brief, *, resamples: int = 1000,
           seed: int = 0, unlabelled: str | Path | None = None, n_next: int = 10,
           history: list[tuple[int, float]] | None = None, device: str = "auto",
           min_images: int = 5, min_pixels: int = 1000, min_objects: int = 20,
           keep: Path | None = None) -> Assessment:
    from segflow.assess.brief import check_classes
    from segflow.formats import open_dataset

    # the brief's class names first: a typo costs no model loading and no prediction
    check_classes(brief, [c.name for c in open_dataset(gt).schema.classes],
                  where=f"brief (schema of {gt})")
    if unlabelled is not None:
        from segflow.assess.select import check_next

        check_next(unlabelled, n_next)
    from segflow.predict.predictor import Predictor  # torch: only once the brief is checked

    pred = Predictor(checkpoint, device=device)
    m = measure(checkpoint, gt, brief, resamples=resamples, seed=seed, device=device,
                keep=keep, predictor=pred)
    results = []
    for t in brief.targets:
        v = m.values.get((t.metric, t.scope))
        v = None if v is None or v != v else v
        results.append(TargetResult(t.metric, t.scope, t.op, t.threshold, v,
                                    m.ci.get((t.metric, t.scope)), t.met(v), t.text))
    verdict, reasons = decide(results, m.class_counts, min_images=min_images,
                              min_pixels=min_pixels, min_objects=min_objects, history=history)
    nxt = next_images(pred, unlabelled, n_next) if unlabelled is not None else []
    return Assessment(brief, m, results, verdict, reasons, nxt)
