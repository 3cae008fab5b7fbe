"""Evaluating predictions against ground truth in any supported format.

* semantic: ground truth = a dataset (any format with semantic masks) or a folder of mask
  PNGs; predictions = a folder of mask PNGs with the same file names;
* panoptic: ground truth and predictions = COCO panoptic (or segflow folders) datasets;
* instance: ground truth = COCO instances (dataset folder or JSON); predictions = a COCO
  results JSON (``image_id``, ``category_id``, ``segmentation`` RLE, ``score``), scored by
  pycocotools' ``COCOeval`` (mask AP, AP50, AP75, AP by size, AR).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

from segflow.annotations import LabelSchema
from segflow.errors import SegflowError
from segflow.formats import detect, open_dataset
from segflow.io import read_mask
from segflow.metrics import PanopticEvaluator, SemanticEvaluator


def _mask_files(root: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(root.rglob("*.png"))}


def evaluate_semantic(gt: Path, pred: Path, *, num_classes: int | None = None,
                      boundary_tolerance: int | None = None, worst: int = 5):
    """Returns (SemanticResult, schema or None, worst images [(name, miou)])."""
    gt, pred = Path(gt), Path(pred)
    preds = _mask_files(pred)
    schema: LabelSchema | None = None
    try:
        ds = open_dataset(gt)
        schema = ds.schema
        pairs = ((it.name, lambda it=it: it.semantic.ids) for it in ds)
        n_gt = len(ds)
    except SegflowError:
        files = _mask_files(gt)
        if not files:
            raise SegflowError(f"{gt}: no ground-truth masks (*.png) or dataset found") from None
        pairs = ((n, lambda p=p: read_mask(p)) for n, p in files.items())
        n_gt = len(files)
    n = num_classes or (schema.num_classes if schema else None)
    if n is None:
        raise SegflowError(f"{gt}: no schema.json; give --num-classes")
    # Names indexed by class id; ids outside the schema are not reported.
    names = (schema.names_by_id() + [None] * n)[:n] if schema is not None else None
    ev = SemanticEvaluator(n, ignore_index=schema.ignore_index if schema else 255,
                           class_names=names, boundary_tolerance=boundary_tolerance)
    missing, per_image = [], []
    for name, get in pairs:
        p = preds.get(name)
        if p is None:
            missing.append(name)
            continue
        per_image.append((name, ev.update(get(), read_mask(p), where=str(p))))
    if missing:
        raise SegflowError(f"{pred}: no prediction for {len(missing)} of {n_gt} images "
                           f"(first: {missing[0]}.png); names must match the ground truth")
    per_image.sort(key=lambda t: (np.nan_to_num(t[1], nan=2.0)))
    return ev.compute(), schema, per_image[:worst]


def evaluate_panoptic(gt: Path, pred: Path):
    gds, pds = open_dataset(gt), open_dataset(pred)
    if gds.kind != "panoptic" or pds.kind != "panoptic":
        raise SegflowError("panoptic evaluation needs panoptic ground truth and predictions "
                           "(COCO panoptic or segflow folders with panoptic/)")
    ev = PanopticEvaluator(gds.schema)
    pidx = {n: i for i, n in enumerate(pds.names)}
    for it in gds:
        if it.name not in pidx:
            raise SegflowError(f"{pred}: no prediction for {it.name}")
        ev.update(it.panoptic, pds[pidx[it.name]].panoptic, where=it.name)
    return ev.compute(), gds.schema


def evaluate_instances(gt: Path, pred: Path) -> dict:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = Path(gt)
    if gt.is_dir():
        if detect(gt) != "coco":
            raise SegflowError(f"{gt}: instance evaluation needs COCO instances ground truth")
        from segflow.formats.coco import find_json

        gt = find_json(gt, "instances")[0]
    try:
        results = json.loads(Path(pred).read_text())
    except FileNotFoundError:
        raise SegflowError(f"{pred}: no such results file") from None
    except json.JSONDecodeError as e:
        raise SegflowError(f"{pred}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(results, list):
        raise SegflowError(f"{pred}: a COCO results file is a JSON list of detections")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt))
        if not results:
            n = len(coco_gt.getAnnIds(iscrowd=False))
            return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0, "aps": 0.0, "apm": 0.0, "apl": 0.0,
                    "ar": 0.0, "counting_error": n / max(len(coco_gt.getImgIds()), 1),
                    "images": len(coco_gt.getImgIds())}
        known = set(coco_gt.getImgIds())
        for k, r in enumerate(results):
            if r.get("image_id") not in known:
                raise SegflowError(f"{pred}: detection {k} has unknown image_id {r.get('image_id')}")
        coco_dt = coco_gt.loadRes(results)
        e = COCOeval(coco_gt, coco_dt, iouType="segm")
        e.evaluate()
        e.accumulate()
        e.summarize()
    s = [float(v) for v in e.stats]
    # Counting error: per image, |detections scoring >= 0.5 - ground-truth objects (not crowd)|.
    n_gt = {i: 0 for i in coco_gt.getImgIds()}
    for a in coco_gt.dataset["annotations"]:
        if not a.get("iscrowd", 0):
            n_gt[a["image_id"]] += 1
    n_dt = dict.fromkeys(n_gt, 0)
    for r in results:
        if r.get("score", 1.0) >= 0.5:
            n_dt[r["image_id"]] += 1
    count_err = float(np.mean([abs(n_dt[i] - n_gt[i]) for i in n_gt])) if n_gt else 0.0
    return {"ap": s[0], "ap50": s[1], "ap75": s[2], "aps": s[3], "apm": s[4], "apl": s[5],
            "ar1": s[6], "ar10": s[7], "ar": s[8], "counting_error": count_err,
            "images": len(coco_gt.getImgIds())}
