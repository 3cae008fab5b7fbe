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

from pathlib import Path

import numpy as np

from segflow.annotations import LabelSchema, Panoptic, SemanticMask, panoptic_from
from segflow.errors import SegflowError
from segflow.formats import Dataset, Item, open_dataset
from segflow.metrics.agreement import AgreementEvaluator, check_tolerance, disagreement
from segflow.metrics.panoptic import PanopticEvaluator

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
            maps = [pan.category_map(void) for pan in pans]
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

    from segflow.formats.convert import WRITERS, write_dataset
    from segflow.formats.folders import write as write_folders
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
    if to not in WRITERS:
        raise SegflowError(f"unknown output format {to!r}; use one of {', '.join(WRITERS)}")
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
        write_folders(Path(out), schema, (
            (items[0].name, image_of(items[0]),
             SemanticMask(semantic_consensus([_semantic(it, schema, p) for it, p in zip(items, paths)],
                                             schema.num_classes, method=method,
                                             ignore_index=schema.ignore_index, where=items[0].name),
                          schema.ignore_index), None)
            for items in each()))
    elif task == "instance":
        def inst_items():
            for items in each():
                sets_ = [_panoptic(it, schema, "instance", p).to_instances()
                         for it, p in zip(items, paths)]
                inst = instance_consensus(sets_, method=method, where=items[0].name)
                yield items[0].name, image_of(items[0]), panoptic_from(None, inst, schema), inst
        write_dataset(out, to, schema, inst_items())
    else:
        def pan_items():
            for items in each():
                pans = [_panoptic(it, schema, "panoptic", p) for it, p in zip(items, paths)]
                yield (items[0].name, image_of(items[0]),
                       panoptic_consensus(pans, schema, method=method, where=items[0].name), None)
        write_dataset(out, to, schema, pan_items())
    return {"annotators": paths, "task": task, "method": method, "format": to,
            "images": len(sets[0]), "outputs": [str(out)]}


__all__ = ["TASKS", "agree", "consensus", "open_annotators"]
