"""A straightforward per-image port of panopticapi's ``pq_compute_single_core`` (the COCO
reference), kept as the benchmark's peer: dictionaries of segments, ``np.unique`` over the
combined label map, Python loops over pairs — as the reference does it."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

OFFSET = 256 * 256 * 256
VOID = 0


def pq_single(gt_ids, gt_segs, pred_ids, pred_segs, stats):
    """``*_segs``: {id: {"category_id", "iscrowd", "isthing"}}; stats: per-class dict."""
    gt_segms = {k: dict(v, area=0) for k, v in gt_segs.items()}
    pred_segms = {k: dict(v, area=0) for k, v in pred_segs.items()}
    labels, cnt = np.unique(gt_ids, return_counts=True)
    for lab, c in zip(labels, cnt):
        if lab in gt_segms:
            gt_segms[lab]["area"] = c
    labels, cnt = np.unique(pred_ids, return_counts=True)
    for lab, c in zip(labels, cnt):
        if lab in pred_segms:
            pred_segms[lab]["area"] = c
    pan_gt_pred = gt_ids.astype(np.uint64) * OFFSET + pred_ids.astype(np.uint64)
    gt_pred_map = {}
    labels, cnt = np.unique(pan_gt_pred, return_counts=True)
    for lab, c in zip(labels, cnt):
        gt_pred_map[(int(lab // OFFSET), int(lab % OFFSET))] = c
    gt_matched, pred_matched = set(), set()
    for (g, p), inter in gt_pred_map.items():
        if g not in gt_segms or p not in pred_segms:
            continue
        if gt_segms[g]["iscrowd"] == 1:
            continue
        if gt_segms[g]["category_id"] != pred_segms[p]["category_id"]:
            continue
        union = pred_segms[p]["area"] + gt_segms[g]["area"] - inter - gt_pred_map.get((VOID, p), 0)
        iou = inter / union
        if iou > 0.5:
            s = stats[gt_segms[g]["category_id"]]
            s["tp"] += 1
            s["iou"] += iou
            gt_matched.add(g)
            pred_matched.add(p)
    crowd = {}
    for g, info in gt_segms.items():
        if info["iscrowd"] == 1:
            crowd[info["category_id"]] = g
            continue
        if g in gt_matched:
            continue
        stats[info["category_id"]]["fn"] += 1
    for p, info in pred_segms.items():
        if p in pred_matched:
            continue
        inter = gt_pred_map.get((VOID, p), 0)
        if info["category_id"] in crowd:
            inter += gt_pred_map.get((crowd[info["category_id"]], p), 0)
        if inter / max(info["area"], 1) > 0.5:
            continue
        stats[info["category_id"]]["fp"] += 1
    return stats


def new_stats():
    return defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "iou": 0.0})
