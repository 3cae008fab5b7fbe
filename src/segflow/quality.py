"""Quality control over whole datasets: agreement and consensus of annotators.

Each annotator's labels are one dataset, in any format :func:`segflow.formats.open_dataset`
reads, holding the same images (same names and sizes) and the same label schema.

What is compared, per task:

* ``semantic``: the semantic masks (or the category maps of panoptic labels); the schema's
  ignore id is left out.
* ``instance`` / ``panoptic``: the category maps, with unlabelled (void) pixels as one more
  label that is not reported but counts against the classes (an object one annotator drew and
  the other did not lowers that class's IoU); plus PQ of every pair (COCO panoptic rules, the
  first annotator of the pair as ground truth). For ``instance`` only the objects are compared
  (overlaps resolved by :func:`segflow.annotations.panoptic_from`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segflow.annotations import Instances, LabelSchema, Panoptic, SemanticMask, panoptic_from
from segflow.errors import SegflowError
from segflow.formats import Dataset, Item, open_dataset
from segflow.metrics.agreement import AgreementEvaluator, check_tolerance
from segflow.metrics.panoptic import PanopticEvaluator
from segflow.metrics.voting import disagreement

TASKS = ("semantic", "instance", "panoptic")


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise SegflowError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    return task


def open_annotators(paths: list[str | Path], fmt: str | None = None) -> list[Dataset]:
    """Open two or more annotator datasets and check they hold the same images and schema
    (sizes are checked image by image as they are read)."""
    if len(paths) < 2:
        raise SegflowError(f"need at least two annotator datasets, got {len(paths)}")
    sets = [open_dataset(p, fmt) for p in paths]
    a = sets[0]
    for p, ds in zip(paths[1:], sets[1:]):
        if ds.names != a.names:
            only_a = sorted(set(a.names) - set(ds.names))
            only_b = sorted(set(ds.names) - set(a.names))
            if only_a or only_b:
                first = min(only_a[:1] + only_b[:1])
                has, lacks = (paths[0], p) if first in only_a else (p, paths[0])
                raise SegflowError(f"{lacks}: has no image {first!r}, which {has} has; "
                                   "annotator datasets must hold the same images")
        if _schema_key(ds.schema) != _schema_key(a.schema):
            raise SegflowError(f"{p}: label schema differs from {paths[0]}'s "
                               f"({_schema_key(ds.schema)} vs {_schema_key(a.schema)})")
    return sets


def _schema_key(s: LabelSchema) -> list[tuple[int, str]]:
    return sorted((c.id, c.name) for c in s.classes)


def _items(sets: list[Dataset], paths: list, i: int) -> list[Item]:
    """Image ``i`` of every annotator (by name), its size checked against the first."""
    name = sets[0].names[i]
    items = [sets[0][i]] + [ds[ds.names.index(name)] if ds.names[i] != name else ds[i]
                            for ds in sets[1:]]
    h, w = items[0].height, items[0].width
    for p, it in zip(paths[1:], items[1:]):
        if (it.height, it.width) != (h, w):
            raise SegflowError(f"{p}: image {name!r} is {it.width}x{it.height}, in {paths[0]} "
                               f"{w}x{h}; annotator datasets must match in size")
    return items


def _panoptic(item: Item, schema: LabelSchema, task: str, where: str) -> Panoptic:
    if task == "instance":
        inst = item.instances if item.instances is not None else (
            item.panoptic.to_instances() if item.panoptic is not None else None)
        if inst is None:
            raise SegflowError(f"{where}: {item.name} has no objects; use --task semantic")
        return panoptic_from(None, inst, schema)
    if item.panoptic is not None:
        return item.panoptic
    if item.instances is None:
        raise SegflowError(f"{where}: {item.name} has no panoptic labels; use --task semantic")
    return panoptic_from(item.semantic, item.instances, schema)


def _class_map(pan: Panoptic, void: int) -> np.ndarray:
    """Category map with ``void`` for unlabelled pixels, in the smallest unsigned dtype (the
    agreement functions take a fast path for bytes)."""
    cm = pan.category_map(void)
    return cm.astype(np.uint8 if void < 255 else np.uint16)


def _semantic(item: Item, schema: LabelSchema, where: str) -> np.ndarray:
    if item.semantic is not None:
        return item.semantic.ids
    if item.panoptic is not None:
        return item.panoptic.category_map(schema.ignore_index)
    raise SegflowError(f"{where}: {item.name} has no semantic labels; use --task instance")


def agree(paths: list[str | Path], *, task: str = "semantic", tolerance: int = 2,
          out: str | Path | None = None, fmt: str | None = None, progress: bool = False) -> dict:
    """Agreement of two or more annotator datasets; returns the JSON-ready report (keys
    ``annotators``, ``task``, ``tolerance``, ``pairs``, ``per_class``, ``per_image`` (worst
    first), ``confused`` (class pairs most often disagreed on) and ``outputs`` (heat-maps
    written to ``out``, one PNG per image))."""
    from rich.progress import track

    from segflow.io import write_image
    from segflow.ops.draw import draw_disagreement

    _check_task(task)
    tol = check_tolerance(tolerance)
    paths = [str(p) for p in paths]
    sets = open_annotators(paths, fmt)
    schema = sets[0].schema
    k = len(sets)
    void = schema.num_classes  # unlabelled pixels (instance / panoptic)
    n = schema.num_classes + (task != "semantic")
    report = np.zeros(n, bool)
    report[schema.ids] = True
    ignore = schema.ignore_index if task == "semantic" else -1
    ev = AgreementEvaluator(k, n, ignore_index=ignore, tolerance=tol, report=report)
    pq = {p: PanopticEvaluator(schema) for p in ev.pairs} if task != "semantic" else None
    out_dir = Path(out) if out is not None else None
    outputs, per_image = [], []
    for i in track(range(len(sets[0])), description="agreement", disable=not progress):
        items = _items(sets, paths, i)
        name = items[0].name
        if task == "semantic":
            maps = [_semantic(it, schema, p) for it, p in zip(items, paths)]
        else:
            pans = [_panoptic(it, schema, task, p) for it, p in zip(items, paths)]
            maps = [_class_map(pan, void) for pan in pans]
        pair = ev.update(maps, where=f"{name}")
        row = {"name": name,
               "miou": _mean([s["miou"] for s in pair.values()]),
               "boundary_f1": _mean([s["boundary_f1_mean"] for s in pair.values()])}
        if pq is not None:
            img_pq = []
            for (a, b), pev in pq.items():
                pev.update(pans[a], pans[b], where=name)
                one = PanopticEvaluator(schema)
                one.update(pans[a], pans[b], where=name)
                r = one.compute()
                img_pq.append(r.pq if r.n_classes else float("nan"))
            row["pq"] = _mean(img_pq)
        dis = disagreement(maps, n, ignore_index=ignore, where=name)
        row["disagreement"] = dis.fraction
        per_image.append(row)
        if out_dir is not None:
            img = items[0].image() if items[0].image_path is not None else None
            outputs.append(str(write_image(out_dir / f"{name}.png",
                                           draw_disagreement(dis.count, k, img))))
    per_image.sort(key=lambda r: (np.nan_to_num(r["miou"], nan=2.0), r["name"]))
    names = schema.names_by_id()
    pairs = []
    for (a, b), s in ev.pair_scores().items():
        d = {"a": paths[a], "b": paths[b], "miou": _num(s["miou"]), "dice": _num(s["dice_mean"]),
             "boundary_f1": _num(s["boundary_f1_mean"])}
        if pq is not None:
            r = pq[(a, b)].compute()
            d["pq"] = r.pq if r.n_classes else None
            d["sq"], d["rq"] = (r.sq, r.rq) if r.n_classes else (None, None)
        pairs.append(d)
    tot = ev.total().scores(report)
    per_class = {names[c]: {"id": int(c), "iou": _num(tot["iou"][c]), "dice": _num(tot["dice"][c]),
                            "boundary_f1": _num(tot["boundary_f1"][c])}
                 for c in schema.ids if np.isfinite(tot["iou"][c])}
    btw = ev.between()
    iu = np.triu_indices(n, 1)
    order = np.argsort(-btw[iu], kind="stable")[:10]
    label = [*names, "(unlabelled)"] if task != "semantic" else names
    confused = [{"classes": [label[iu[0][j]], label[iu[1][j]]], "pixels": int(btw[iu][j])}
                for j in order if btw[iu][j] > 0]
    for r in per_image:
        for key in ("miou", "boundary_f1", "pq"):
            if key in r:
                r[key] = _num(r[key])
    return {"annotators": paths, "task": task, "tolerance": tol, "images": len(per_image),
            "pairs": pairs, "per_class": per_class, "per_image": per_image,
            "confused": confused, "outputs": outputs}


def _mean(vals) -> float:
    v = [x for x in vals if x is not None and np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def _num(v) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def consensus(paths: list[str | Path], out: str | Path, *, task: str = "semantic",
              method: str = "majority", to: str | None = None, fmt: str | None = None,
              progress: bool = False) -> dict:
    """Write the consensus of two or more annotator datasets as a dataset in format ``to``
    (default: folders for semantic and panoptic, coco for instances); returns a summary."""
    from rich.progress import track

    from segflow.formats import FORMATS, Sample, write_dataset
    from segflow.metrics.consensus import (
        METHODS,
        instance_consensus,
        panoptic_consensus,
        semantic_consensus,
    )

    _check_task(task)
    if method not in METHODS:
        raise SegflowError(f"unknown consensus method {method!r}; use one of {', '.join(METHODS)}")
    to = to or ("coco" if task == "instance" else "folders")
    if to not in FORMATS:
        raise SegflowError(f"unknown output format {to!r}; use one of {', '.join(FORMATS)}")
    if task == "semantic" and to != "folders":
        raise SegflowError(f"--format {to} cannot hold semantic masks alone; use folders")
    paths = [str(p) for p in paths]
    sets = open_annotators(paths, fmt)
    schema = sets[0].schema

    def image_of(it: Item):
        return it.image() if it.image_path is not None else None

    def each():
        for i in track(range(len(sets[0])), description=f"consensus ({method})",
                       disable=not progress):
            items = _items(sets, paths, i)
            yield items

    if task == "semantic":
        write_dataset(out, "folders", schema, (
            Sample(items[0].name, image_of(items[0]), semantic=SemanticMask(
                semantic_consensus([_semantic(it, schema, p) for it, p in zip(items, paths)],
                                   schema.num_classes, method=method,
                                   ignore_index=schema.ignore_index, where=items[0].name),
                schema.ignore_index))
            for items in each()))
    elif task == "instance":
        def inst_items():
            for items in each():
                sets_ = [_panoptic(it, schema, "instance", p).to_instances()
                         for it, p in zip(items, paths)]
                inst = instance_consensus(sets_, method=method, where=items[0].name)
                yield Sample(items[0].name, image_of(items[0]), panoptic_from(None, inst, schema), inst)
        write_dataset(out, to, schema, inst_items())
    else:
        def pan_items():
            for items in each():
                pans = [_panoptic(it, schema, "panoptic", p) for it, p in zip(items, paths)]
                yield Sample(items[0].name, image_of(items[0]),
                             panoptic_consensus(pans, schema, method=method, where=items[0].name))
        write_dataset(out, to, schema, pan_items())
    return {"annotators": paths, "task": task, "method": method, "format": to,
            "images": len(sets[0]), "outputs": [str(out)]}


# ---- one annotation against a reference (qualification, honeypots) ---------------------------

METRICS = {"semantic": ("miou", "boundary_f1"), "instance": ("pq", "miou", "boundary_f1"),
           "panoptic": ("pq", "miou", "boundary_f1")}


@dataclass
class ReferenceScore:
    """An annotation scored against a reference: ``score`` is the chosen ``metric`` (None when
    nothing could be scored); ``pixels`` counts the errors by kind; ``heatmap_png`` is the
    error map (missed blue, over-painted red, wrong class yellow) as an indexed PNG with
    transparency, to lay over the image."""

    metric: str
    score: float | None
    miou: float | None
    boundary_f1: float | None
    pq: float | None
    per_class: dict
    pixels: dict
    heatmap_png: bytes = field(repr=False)

    def to_dict(self) -> dict:
        return {"metric": self.metric, "score": self.score, "miou": self.miou,
                "boundary_f1": self.boundary_f1, "pq": self.pq, "per_class": self.per_class,
                "pixels": self.pixels}


def score_against_reference(annotation, reference, schema: LabelSchema, *,
                            task: str = "semantic", metric: str | None = None,
                            tolerance: int = 2, background: int | None = None) -> ReferenceScore:
    """Score one annotation of an image against its reference labels.

    Parameters
    ----------
    annotation, reference
        ``semantic``: ``(H, W)`` class-id arrays (or :class:`SemanticMask`); ``instance`` and
        ``panoptic``: :class:`Panoptic` or :class:`Instances`.
    metric : {"miou", "boundary_f1", "pq"}, optional
        The figure returned as ``score``: by default mIoU for semantic, PQ otherwise.
    background : int or list of int, optional
        Semantic only: the class(es) that mean "nothing here", which separate missed and
        over-painted pixels from wrong classes (default: class 0 when the schema has one).
        For instance and panoptic labels, the stuff classes and unlabelled pixels play that
        part: a thing drawn over the road is over-painted.

    The reference is the ground truth of PQ (COCO panoptic rules); IoU, Dice and boundary F1
    are symmetric.
    """
    from segflow.metrics.agreement import reference_stats
    from segflow.ops.draw import error_map_png

    _check_task(task)
    metric = metric or METRICS[task][0]
    if metric not in METRICS[task]:
        raise SegflowError(f"metric {metric!r} does not fit task {task}; use one of "
                           f"{', '.join(METRICS[task])}")
    names = schema.names_by_id()
    pq = None
    if task == "semantic":
        a, r = (x.ids if isinstance(x, SemanticMask) else np.asarray(x)
                for x in (annotation, reference))
        n, ignore = schema.num_classes, schema.ignore_index
        if background is None and 0 in schema.ids:
            background = 0
    else:
        pa, pr = (_as_panoptic(x, schema, task) for x in (annotation, reference))
        if pa.seg_ids.shape != pr.seg_ids.shape:
            raise SegflowError(f"annotation is {pa.seg_ids.shape[1]}x{pa.seg_ids.shape[0]}, the "
                               f"reference {pr.seg_ids.shape[1]}x{pr.seg_ids.shape[0]}")
        n, ignore = schema.num_classes + 1, -1
        void = schema.num_classes  # unlabelled pixels
        a, r = _class_map(pa, void), _class_map(pr, void)
        background = [*schema.stuff_ids, void]
        ev = PanopticEvaluator(schema)
        ev.update(pr, pa, where="reference")
        res = ev.compute()
        pq = res.pq if res.n_classes else None
    report = np.zeros(n, bool)
    report[schema.ids] = True
    stats, kinds = reference_stats(a, r, n, tolerance=tolerance, ignore_index=ignore,
                                   background=background)
    s = stats.scores(report)
    counts = _kind_counts(kinds)
    per_class = {names[c]: {"id": int(c), "iou": _num(s["iou"][c]), "dice": _num(s["dice"][c]),
                            "boundary_f1": _num(s["boundary_f1"][c])}
                 for c in schema.ids if np.isfinite(s["iou"][c])}
    figures = {"miou": _num(s["miou"]), "boundary_f1": _num(s["boundary_f1_mean"]), "pq": pq}
    return ReferenceScore(metric, figures[metric], figures["miou"], figures["boundary_f1"], pq,
                          per_class, {"missed": int(counts[1]), "overpainted": int(counts[2]),
                                      "wrong_class": int(counts[3]), "total": int(kinds.size)},
                          error_map_png(kinds))


def _kind_counts(kinds: np.ndarray) -> np.ndarray:
    import cv2

    if kinds.size == 0:
        return np.zeros(4, np.int64)
    return np.rint(cv2.calcHist([kinds], [0], None, [4], [0, 4])[:, 0]).astype(np.int64)


def _as_panoptic(x, schema: LabelSchema, task: str) -> Panoptic:
    if isinstance(x, Instances):
        return panoptic_from(None, x, schema)
    if isinstance(x, Panoptic):
        return panoptic_from(None, x.to_instances(), schema) if task == "instance" else x
    raise SegflowError(f"task {task} needs Panoptic or Instances labels, got {type(x).__name__}")


__all__ = ["TASKS", "ReferenceScore", "agree", "consensus", "open_annotators",
           "score_against_reference"]


def prelabel_edit_rate(prelabel, final, *, ignore_index: int | None = None) -> float:
    """The fraction of pixels a human changed between a pre-label and the saved label.

    ``prelabel`` and ``final`` are ``(H, W)`` class-id arrays of the same image (semantic masks,
    or the category maps of instance/panoptic labels). Pixels equal to ``ignore_index`` in the
    final label are left out. 0.0 means the pre-label was accepted as it came; 1.0 that every
    pixel was repainted. An image with no counted pixel gives 0.0.
    """
    p, f = np.asarray(prelabel), np.asarray(final)
    if p.shape != f.shape:
        raise SegflowError(f"pre-label is {p.shape[1]}x{p.shape[0]} but the label is "
                           f"{f.shape[1]}x{f.shape[0]}: not the same image")
    keep = np.ones(f.shape, bool) if ignore_index is None else f != ignore_index
    n = int(keep.sum())
    return float(((p != f) & keep).sum() / n) if n else 0.0
