"""Measuring a checkpoint against ground truth: the values of ``segflow eval`` and bootstrap CIs.

The checkpoint predicts every ground-truth image; the predictions are written to a scratch
folder and scored by the very functions ``segflow eval`` calls (:mod:`segflow.evaluate`), so
the values are the same. For the confidence intervals each image's statistics are kept (its
confusion matrix, or its per-class PQ counts) and the aggregate is recomputed, with the same
evaluator's ``compute``, on resamples of the images drawn with replacement (a percentile
bootstrap over images, from a seeded ``numpy.random.Generator``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segflow.assess.brief import Brief, check_classes
from segflow.errors import SegflowError

Key = tuple[str, str | None]  # (metric, class name or None)


@dataclass
class Measurement:
    task: str
    values: dict[Key, float]  # every metric the task gives, whole set and per class
    ci: dict[Key, tuple[float, float] | None]
    resamples: int
    n_images: int
    class_counts: dict[str, dict[str, int]]  # class -> {"pixels" or "objects": n, "images": n}
    worst: list[tuple[str, float]]  # (image name, its score), lowest first
    worst_metric: str
    notes: list[str] = field(default_factory=list)
    predictions: Path | None = None  # the folder of predictions (semantic: one mask PNG each)
    scratch: bool = False  # predictions is a temporary folder (removed by Assessment.cleanup)


def _f(v) -> float:
    v = float(v)
    return v if np.isfinite(v) else float("nan")


def bootstrap(stats: np.ndarray, aggregate: Callable[[np.ndarray], dict[Key, float]], *,
              resamples: int, seed: int) -> dict[Key, tuple[float, float] | None]:
    """Percentile 95% intervals of ``aggregate(sum of per-image stats)`` over resamples of the
    images (``stats``: ``(n_images, ...)``) drawn with replacement. A metric that is NaN in a
    resample (a class absent from it) is left out of that resample; with fewer than half the
    resamples finite its interval is None."""
    n = len(stats)
    if n == 0 or resamples < 1:
        return {}
    rng = np.random.default_rng(seed)
    draws: dict[Key, list[float]] = {}
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, n, n), minlength=n)
        summed = np.tensordot(counts, stats, axes=1)
        for k, v in aggregate(summed).items():
            draws.setdefault(k, []).append(v)
    out: dict[Key, tuple[float, float] | None] = {}
    for k, vs in draws.items():
        a = np.asarray(vs, np.float64)
        a = a[np.isfinite(a)]
        out[k] = (float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5))) \
            if len(a) >= resamples / 2 else None
    return out


def _semantic_values(r) -> dict[Key, float]:
    v: dict[Key, float] = {("miou", None): _f(r.miou), ("dice", None): _f(r.mean_dice),
                           ("pixel_accuracy", None): _f(r.pixel_accuracy),
                           ("fw_iou", None): _f(r.fw_iou)}
    for k, name in enumerate(r.class_names):
        if name is not None:
            v[("iou", name)] = _f(r.iou[k])
            v[("dice", name)] = _f(r.dice[k])
    return v


def _panoptic_values(r) -> dict[Key, float]:
    v: dict[Key, float] = {("pq", None): _f(r.pq), ("sq", None): _f(r.sq), ("rq", None): _f(r.rq),
                           ("pq_things", None): _f(r.things["pq"]),
                           ("pq_stuff", None): _f(r.stuff["pq"])}
    for name, d in r.per_class.items():
        for m in ("pq", "sq", "rq"):
            v[(m, name)] = _f(d[m])
    return v


def _check_schema(pred, schema, gt: Path, task: str) -> None:
    """The ground truth's classes are the checkpoint's (instance formats such as COCO carry
    only the thing classes: there, a subset of them)."""
    mine = [(c.id, c.name) for c in pred.schema.classes]
    theirs = [(c.id, c.name) for c in schema.classes]
    if mine != theirs and not (task == "instance" and set(theirs) <= set(mine)):
        raise SegflowError(f"{gt}: its label schema ({', '.join(c.name for c in schema.classes)}) "
                           f"is not the checkpoint's "
                           f"({', '.join(c.name for c in pred.schema.classes)})")


def _images(ds, gt: Path):
    for it in ds:
        if it.image_path is None:
            raise SegflowError(f"{gt}: {it.name} has no image file; assessment predicts every "
                               "ground-truth image")
        yield it, it.image()


def measure_semantic(pred, gt: Path, brief: Brief, ds, *, resamples: int, seed: int,
                     worst: int, keep: Path | None) -> Measurement:
    from segflow import evaluate
    from segflow.io import read_mask, write_mask
    from segflow.metrics import SemanticEvaluator

    out = keep or Path(tempfile.mkdtemp(prefix="segflow-assess-"))
    for it, img in _images(ds, gt):
        write_mask(out / f"{it.name}.png", pred.predict(img), palette=pred.schema.palette())
    res, schema, worst_list, _ = evaluate.evaluate_semantic(gt, out, worst=worst)
    n = schema.num_classes
    names = (schema.names_by_id() + [None] * n)[:n]
    ev = SemanticEvaluator(n, ignore_index=schema.ignore_index, class_names=names)
    cms = []
    for it in ds:  # each image's confusion matrix, as the evaluator adds it
        before = ev.cm.copy()
        ev.update(it.semantic.ids, read_mask(out / f"{it.name}.png"), where=it.name)
        cms.append(ev.cm - before)
    stats = np.stack(cms) if cms else np.zeros((0, n, n), np.int64)

    def aggregate(summed: np.ndarray) -> dict[Key, float]:
        ev.cm = summed.astype(np.int64)
        return _semantic_values(ev.compute())

    counts = {name: {"pixels": int(stats[:, k].sum()), "images": int((stats[:, k].sum(1) > 0).sum())}
              for k, name in enumerate(names) if name is not None}
    return Measurement("semantic", _semantic_values(res),
                       bootstrap(stats, aggregate, resamples=resamples, seed=seed), resamples,
                       len(stats), counts, [(a, _f(b)) for a, b in worst_list], "miou",
                       predictions=out, scratch=keep is None)


def measure_panoptic(pred, gt: Path, brief: Brief, ds, *, resamples: int, seed: int,
                     worst: int, keep: Path | None) -> Measurement:
    from segflow import evaluate
    from segflow.formats import Sample, coco_panoptic, open_dataset
    from segflow.metrics import PanopticEvaluator

    if pred.instance:
        raise SegflowError("a panoptic brief needs a semantic checkpoint (its thing classes are "
                           "split into objects)")
    out = keep or Path(tempfile.mkdtemp(prefix="segflow-assess-"))
    coco_panoptic.write(out, pred.schema, (Sample(it.name, None, pred.panoptic(img))
                                           for it, img in _images(ds, gt)))
    res, schema = evaluate.evaluate_panoptic(gt, out)
    pds = open_dataset(out)
    pidx = {n: i for i, n in enumerate(pds.names)}
    ev = PanopticEvaluator(schema)
    per, names = [], []
    for it in ds:
        before = [a.copy() for a in (ev.tp, ev.fp, ev.fn, ev.iou)]
        ev.update(it.panoptic, pds[pidx[it.name]].panoptic, where=it.name)
        per.append(np.stack([a - b for a, b in zip((ev.tp, ev.fp, ev.fn, ev.iou), before)]))
        names.append(it.name)
    stats = np.stack(per).astype(np.float64) if per else np.zeros((0, 4, len(ev.tp)))

    def aggregate(summed: np.ndarray) -> dict[Key, float]:
        ev.tp, ev.fp, ev.fn = (np.rint(summed[i]).astype(np.int64) for i in range(3))
        ev.iou = summed[3]
        return _panoptic_values(ev.compute())

    scores = [aggregate(s)[("pq", None)] for s in stats]
    order = sorted(range(len(names)), key=lambda i: np.nan_to_num(scores[i], nan=2.0))[:worst]
    ids = {c.id: c.name for c in schema.classes}
    counts = {ids[c]: {"objects": int(stats[:, 0, c].sum() + stats[:, 2, c].sum()),
                       "images": int(((stats[:, 0, c] + stats[:, 2, c]) > 0).sum())}
              for c in schema.ids if c < stats.shape[2]}
    values = _panoptic_values(res)
    ci = bootstrap(stats, aggregate, resamples=resamples, seed=seed)
    return Measurement("panoptic", values, ci, resamples, len(names), counts,
                       [(names[i], scores[i]) for i in order], "pq", predictions=out,
                       scratch=keep is None)


def measure_instance(pred, gt: Path, brief: Brief, ds, *, resamples: int, seed: int,
                     worst: int, keep: Path | None) -> Measurement:
    from segflow import evaluate

    if not pred.makes_objects:
        raise SegflowError("an instance brief needs a checkpoint that makes objects (Mask R-CNN, "
                           "or a U-Net with a distance head)")
    out = keep or Path(tempfile.mkdtemp(prefix="segflow-assess-"))
    paths = [it.image_path for it in ds if it.image_path is not None]
    if len(paths) != len(ds):
        raise SegflowError(f"{gt}: some images have no file; assessment predicts every "
                           "ground-truth image")
    _, failures = pred.run(paths, out, overlay=False, progress=False)
    if failures:
        raise SegflowError(failures[0])
    d, coco = evaluate.coco_instance_eval(gt, out / "detections.json")
    values = {(m, None): _f(d[m]) for m in ("ap", "ap50", "ap75")}
    counts: dict[str, dict[str, int]] = {c.name: {"objects": 0, "images": 0}
                                         for c in ds.schema.classes if c.id in ds.schema.thing_ids}
    ids = {c.id: c.name for c in ds.schema.classes}
    for it in ds:
        seen = set()
        for o in (it.instances.items if it.instances is not None else []):
            name = ids.get(o.category_id)
            if name in counts:
                counts[name]["objects"] += 1
                seen.add(name)
        for name in seen:
            counts[name]["images"] += 1
    ci = _coco_bootstrap(coco, resamples=resamples, seed=seed) if coco is not None else {}
    notes = ["worst images: not listed for instance briefs (COCOeval gives no per-image AP)"]
    if coco is None:
        notes.append("no detections at all: AP is 0, without an interval")
    return Measurement("instance", values, ci, resamples, len(ds), counts, [], "ap", notes=notes,
                       predictions=out, scratch=keep is None)


def coco_resample(e, idx) -> list[float]:
    """COCOeval's stats (AP, AP50, AP75, ...) over the images ``idx`` (indices into the
    evaluated image ids, repeats allowed), from the per-image matches ``e.evaluate()`` made."""
    import contextlib
    import copy
    import io

    p = e._paramsEval
    ids = list(p.imgIds)
    n, k0, a0 = len(ids), len(p.catIds) if p.useCats else 1, len(p.areaRng)
    r = copy.copy(e)
    r.params, r._paramsEval = copy.copy(e.params), copy.copy(p)
    r.params.imgIds = r._paramsEval.imgIds = [ids[i] for i in idx]
    r.evalImgs = [e.evalImgs[k * a0 * n + a * n + int(i)] for k in range(k0) for a in range(a0)
                  for i in idx]
    with contextlib.redirect_stdout(io.StringIO()):
        r.accumulate()
        r.summarize()
    return [float(v) for v in r.stats]


def _coco_bootstrap(e, *, resamples: int, seed: int) -> dict[Key, tuple[float, float] | None]:
    """Bootstrap over images for COCOeval's AP: ``evaluate()`` matched each image once; a
    resample lays those per-image matches out again with the drawn images (repeats allowed)
    and reruns ``accumulate()`` and ``summarize()``, which pool the detections of the listed
    images (pycocotools has no per-image AP to sum, so its own pooling is reused)."""
    n = len(e._paramsEval.imgIds)
    if n == 0 or resamples < 1:
        return {}
    rng = np.random.default_rng(seed)
    draws: dict[Key, list[float]] = {("ap", None): [], ("ap50", None): [], ("ap75", None): []}
    for _ in range(resamples):
        for m, v in zip(("ap", "ap50", "ap75"), coco_resample(e, rng.integers(0, n, n))):
            draws[(m, None)].append(v if v >= 0 else float("nan"))  # -1: no ground truth
    out: dict[Key, tuple[float, float] | None] = {}
    for k, vs in draws.items():
        a = np.asarray(vs)
        a = a[np.isfinite(a)]
        out[k] = (float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5))) \
            if len(a) >= resamples / 2 else None
    return out


MEASURES = {"semantic": measure_semantic, "panoptic": measure_panoptic,
            "instance": measure_instance}


def measure(checkpoint: str | Path, gt: str | Path, brief: Brief, *, resamples: int = 1000,
            seed: int = 0, worst: int = 6, device: str = "auto", keep: Path | None = None,
            predictor=None) -> Measurement:
    """Predict the ground-truth dataset ``gt`` with ``checkpoint`` and measure every metric of
    ``brief.task`` with ``resamples`` bootstrap resamples (``seed``: the Generator's seed)."""
    from segflow.formats import open_dataset

    if not 0 <= resamples <= 100_000:
        raise SegflowError(f"--resamples must be 0..100000, got {resamples}")
    if not 0 <= seed < 2**63:
        raise SegflowError(f"--seed must be 0..2^63-1, got {seed}")
    gt = Path(gt)
    ds = open_dataset(gt)
    if len(ds) == 0:
        raise SegflowError(f"{gt}: no images in the ground truth")
    check_classes(brief, [c.name for c in ds.schema.classes], where=f"brief (schema of {gt})")
    if predictor is None:
        from segflow.predict.predictor import Predictor

        predictor = Predictor(checkpoint, device=device)
    _check_schema(predictor, ds.schema, gt, brief.task)
    if brief.task == "semantic" and predictor.instance:
        raise SegflowError("a semantic brief needs a semantic checkpoint, not Mask R-CNN")
    return MEASURES[brief.task](predictor, gt, brief, ds, resamples=resamples, seed=seed,
                                worst=worst, keep=keep)
