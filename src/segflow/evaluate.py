"""Evaluating predictions against ground truth in any supported format.

* semantic: ground truth = a dataset (any format with semantic masks) or a folder of mask
  PNGs; predictions = a folder of mask PNGs with the same file names. Without a schema the
  class ids are those found in the masks (ground truth and predictions together);
* panoptic: ground truth and predictions = COCO panoptic datasets (a folder, or panopticapi's
  ``NAME.json`` with its ``NAME/`` PNG folder) or segflow folders;
* instance: ground truth = COCO instances (dataset folder or JSON); predictions = a COCO
  results JSON (``image_id`` -- or ``file_name``, as ``segflow predict`` writes --,
  ``category_id``, ``segmentation`` RLE, ``score``), scored by pycocotools' ``COCOeval``
  (mask AP, AP50, AP75, AP by size, AR).
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

#: The most classes a semantic evaluation takes: its confusion matrix is classes^2 int64.
MAX_CLASSES = 4096


def _mask_files(root: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(root.rglob("*.png"))}


def _infer_classes(files: dict[str, Path], preds: dict[str, Path], ignore: int) -> list[int]:
    """The class ids in a schema-less set: every id in the ground-truth masks and in the
    matching predictions (the ignore id excepted)."""
    found: set[int] = set()
    for name, p in files.items():
        for path in (p, preds.get(name)):
            if path is not None:
                found.update(np.unique(read_mask(path)).tolist())
    found.discard(ignore)
    return sorted(found)


def evaluate_semantic(gt: Path, pred: Path, *, num_classes: int | None = None,
                      boundary_tolerance: int | None = None, worst: int = 5, engine=None):
    """Returns (SemanticResult, schema or None, worst images [(name, miou)], inferred class
    ids or None). Without a schema and ``num_classes``, the class ids are inferred from the
    masks (a first pass over them). ``engine`` (:func:`segflow.engines.get_engine`) scores the
    images elsewhere, one task each; their counts are merged in image order, so the result is
    that of one pass."""
    gt, pred = Path(gt), Path(pred)
    preds = _mask_files(pred)
    schema: LabelSchema | None = None
    inferred: list[int] | None = None
    try:
        ds = open_dataset(gt)
    except SegflowError:
        ds = None
    if ds is not None:
        if ds.kind == "instances":
            raise SegflowError(f"{gt}: holds object instances, not semantic masks; use "
                               "--task instance, or convert it first")
        schema = ds.schema
        pairs = ((it.name, lambda it=it: it.semantic.ids) for it in ds)
        refs = [(name, ("dataset", str(gt), k)) for k, name in enumerate(ds.names)]
        n_gt = len(ds)
    else:
        files = _mask_files(gt) if gt.is_dir() else {}
        if not files:
            raise SegflowError(f"{gt}: no ground-truth masks (*.png) or dataset found")
        pairs = ((n, lambda p=p: read_mask(p)) for n, p in files.items())
        refs = [(n, ("mask", str(p), 0)) for n, p in files.items()]
        n_gt = len(files)
        if num_classes is None:
            inferred = _infer_classes(files, preds, 255)
            if inferred and inferred[-1] >= MAX_CLASSES:
                raise SegflowError(f"{gt}: the masks hold ids up to {inferred[-1]}; are they "
                                   "instance ids? Give class masks, a schema.json or --num-classes")
    if num_classes is not None and not 1 <= num_classes <= MAX_CLASSES:
        raise SegflowError(f"--num-classes must be 1..{MAX_CLASSES}, got {num_classes}")
    n = num_classes or (schema.num_classes if schema else max(inferred or [0]) + 1)
    # Names indexed by class id; ids outside the schema (or not found) are not reported.
    if schema is not None:
        names = (schema.names_by_id() + [None] * n)[:n]
    elif inferred is not None:
        present = set(inferred)
        names = [str(i) if i in present else None for i in range(n)]
    else:
        names = None
    ev = SemanticEvaluator(n, ignore_index=schema.ignore_index if schema else 255,
                           class_names=names, boundary_tolerance=boundary_tolerance)
    missing, per_image = [], []
    if engine is not None:
        missing = [name for name, _ in refs if name not in preds]
        todo = [(name, ref) for name, ref in refs if name in preds] if not missing else []
        got: list = [None] * len(todo)

        def done(i, r):
            got[i] = r

        def crashed(i, e):
            return SegflowError(f"{todo[i][0]}: worker failed ({type(e).__name__}: {e})")

        engine.map(_score_pair, [(ev.n, ev.ignore_index, ev.tol, ref, str(preds[name]))
                                 for name, ref in todo], done, crashed)
        for (name, _), r in zip(todo, got):
            if isinstance(r, SegflowError):
                raise r
            ev.merge(r[0])
            per_image.append((name, r[1]))
    for name, get in pairs if engine is None else ():
        p = preds.get(name)
        if p is None:
            missing.append(name)
            continue
        per_image.append((name, ev.update(get(), read_mask(p), where=str(p))))
    if missing:
        raise SegflowError(f"{pred}: no prediction for {len(missing)} of {n_gt} images "
                           f"(first: {missing[0]}.png); names must match the ground truth")
    per_image.sort(key=lambda t: (np.nan_to_num(t[1], nan=2.0)))
    return ev.compute(), schema, per_image[:worst], inferred


_DATASETS: dict = {}  # dataset root -> Dataset, opened once per worker process


def _score_pair(n: int, ignore: int, tol, ref: tuple, pred: str):
    """An engine's work item: one image's counts, as an evaluator of its own, and its mIoU
    (a SegflowError is returned, to be raised where the run was started)."""
    kind, path, k = ref
    try:
        if kind == "dataset":
            if path not in _DATASETS:
                _DATASETS[path] = open_dataset(Path(path))
            gt = _DATASETS[path][k].semantic.ids
        else:
            gt = read_mask(path)
        ev = SemanticEvaluator(n, ignore_index=ignore, boundary_tolerance=tol)
        return ev, ev.update(gt, read_mask(pred), where=pred)
    except SegflowError as e:
        return e


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
    return coco_instance_eval(gt, pred)[0]


def coco_instance_eval(gt: Path, pred: Path):
    """(the metrics of :func:`evaluate_instances`, the evaluated ``COCOeval``, or None when
    there are no detections); the ``COCOeval`` lets ``segflow assess`` resample images."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from segflow.formats.coco import find_json

    gt = Path(gt)
    if not gt.exists():
        raise SegflowError(f"{gt}: no such ground-truth folder or file")
    if gt.is_file() and detect(gt) != "coco":
        raise SegflowError(f"{gt}: instance evaluation needs COCO instances ground truth")
    try:  # a folder: its annotations/instances_*.json even beside panoptic ones (Detectron2)
        gt = find_json(gt, "instances")[0]
    except SegflowError:
        raise SegflowError(f"{gt}: instance evaluation needs COCO instances ground truth") from None
    if detect(gt) != "coco":
        raise SegflowError(f"{gt}: instance evaluation needs COCO instances ground truth")
    try:
        results = json.loads(Path(pred).read_text())
    except FileNotFoundError:
        raise SegflowError(f"{pred}: no such results file") from None
    except json.JSONDecodeError as e:
        raise SegflowError(f"{pred}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(results, list):
        raise SegflowError(f"{pred}: a COCO results file is a JSON list of detections")
    from segflow.formats.base import read_json, require_keys

    data = read_json(gt, "COCO instances annotations")
    require_keys(data, ("images", "annotations", "categories"), gt, "COCO instances")
    for k, a in enumerate(data["annotations"]):
        if isinstance(a, dict):
            # pycocotools' matcher takes annotation id 0 for "unmatched": Label Studio numbers
            # from 0, so its first object could never be found. Ids only name objects here.
            a["id"] = k + 1
        if isinstance(a, dict) and not a.get("segmentation") and len(a.get("bbox") or []) == 4:
            x, y, w, h = a["bbox"]  # a box without a mask (Label Studio's rectangles): the box,
            a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]  # as segflow reads it
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = data
        coco_gt.createIndex()
        if not results:
            n = len(coco_gt.getAnnIds(iscrowd=False))
            return {"ap": 0.0, "ap50": 0.0, "ap75": 0.0, "aps": 0.0, "apm": 0.0, "apl": 0.0,
                    "ar": 0.0, "counting_error": n / max(len(coco_gt.getImgIds()), 1),
                    "images": len(coco_gt.getImgIds())}, None
        known = set(coco_gt.getImgIds())
        by_name = {Path(str(im["file_name"]).replace("\\", "/")).stem: i
                   for i, im in coco_gt.imgs.items()}
        for k, r in enumerate(results):
            if not isinstance(r, dict):
                raise SegflowError(f"{pred}: detection {k} is not a JSON object")
            if "image_id" not in r and "file_name" in r:  # as segflow predict writes them
                stem = Path(str(r["file_name"]).replace("\\", "/")).stem
                if stem not in by_name:
                    raise SegflowError(f"{pred}: detection {k} is for {r['file_name']}, which "
                                       f"is not among the ground truth's images")
                r["image_id"] = by_name[stem]
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
            "images": len(coco_gt.getImgIds())}, e
