"""Panoptic quality (PQ, SQ, RQ) with the COCO panoptic rules, accumulated per image.

For each image (``Panoptic`` ground truth and prediction; id 0 is void):

* a predicted and a ground-truth segment of the same class match when their IoU > 0.5, the
  union leaving out the predicted pixels that fall on void; matches are unique by construction;
* unmatched, non-crowd ground-truth segments are false negatives;
* an unmatched prediction is a false positive unless more than half of it lies on void or on a
  crowd region of its class;
* per class: PQ = sum IoU(TP) / (TP + FP/2 + FN/2), SQ = sum IoU / TP, RQ = TP / (TP + FP/2 + FN/2);
  overall, things and stuff are the means over the classes that have any TP, FP or FN.

These are panopticapi's rules (the COCO reference). torchmetrics' ``PanopticQuality`` departs
from them in one place: it also leaves out of the union the ground-truth pixels that the
prediction left unlabelled, and drops a ground-truth segment that is mostly unlabelled in the
prediction; with predictions that label every pixel the two agree exactly (tested).

The pair counts of an image come from one ``bincount`` over dense segment indices, so an image
costs two passes over its pixels; only per-class sums are kept between images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segflow.annotations import LabelSchema, Panoptic
from segflow.errors import SegflowError


@dataclass
class PanopticResult:
    pq: float
    sq: float
    rq: float
    things: dict
    stuff: dict
    per_class: dict
    n_classes: int

    def to_dict(self) -> dict:
        return {"pq": self.pq, "sq": self.sq, "rq": self.rq, "things": self.things,
                "stuff": self.stuff, "per_class": self.per_class}


class PanopticEvaluator:
    """Accumulates PQ statistics over images; ``compute()`` returns :class:`PanopticResult`."""

    def __init__(self, schema: LabelSchema):
        self.schema = schema
        n = max(schema.ids) + 1 if schema.classes else 0
        self.tp = np.zeros(n, np.int64)
        self.fp = np.zeros(n, np.int64)
        self.fn = np.zeros(n, np.int64)
        self.iou = np.zeros(n, np.float64)
        self.known = set(schema.ids)
        self.images = 0

    def update(self, gt: Panoptic, pred: Panoptic, *, where: str = "") -> None:
        if gt.seg_ids.shape != pred.seg_ids.shape:
            raise SegflowError(f"{where or 'eval'}: prediction is {pred.seg_ids.shape[::-1]}, "
                               f"ground truth {gt.seg_ids.shape[::-1]}; they must match")
        for s in [*gt.segments, *pred.segments]:
            if s.category_id not in self.known:
                raise SegflowError(f"{where or 'eval'}: segment {s.id} has unknown class "
                                   f"{s.category_id}; known: {sorted(self.known)}")
        pairs, gids, pids = _pair_counts(gt, pred)
        ng, np_ = len(gids) + 1, len(pids) + 1
        g_area = pairs.sum(1)
        p_area = pairs.sum(0)
        gseg = {s.id: s for s in gt.segments}
        pseg = {s.id: s for s in pred.segments}
        gcat = np.array([-1] + [gseg[i].category_id for i in gids], np.int64)
        gcrowd = np.array([False] + [gseg[i].iscrowd for i in gids])
        pcat = np.array([-2] + [pseg[i].category_id for i in pids], np.int64)

        # Candidate matches: same class, gt not crowd, overlapping.
        gi, pi = np.nonzero(pairs[1:, 1:] > 0)
        gi += 1
        pi += 1
        same = (gcat[gi] == pcat[pi]) & ~gcrowd[gi]
        gi, pi = gi[same], pi[same]
        inter = pairs[gi, pi]
        union = p_area[pi] + g_area[gi] - inter - pairs[0, pi]
        iou = inter / union
        ok = iou > 0.5
        gi, pi, iou = gi[ok], pi[ok], iou[ok]
        np.add.at(self.tp, gcat[gi], 1)
        np.add.at(self.iou, gcat[gi], iou)
        g_matched = np.zeros(ng, bool)
        g_matched[gi] = True
        p_matched = np.zeros(np_, bool)
        p_matched[pi] = True

        # False negatives: unmatched, non-crowd ground truth (void excluded).
        fn = ~g_matched[1:] & ~gcrowd[1:] & (g_area[1:] > 0)
        np.add.at(self.fn, gcat[1:][fn], 1)

        # False positives: unmatched predictions not mostly on void or same-class crowd.
        crowd_overlap = np.zeros(np_, np.int64)
        for k in np.flatnonzero(gcrowd):
            same_cls = pcat == gcat[k]
            crowd_overlap[same_cls] += pairs[k, same_cls]
        ignored = (pairs[0] + crowd_overlap) > 0.5 * np.maximum(p_area, 1)
        fp = ~p_matched[1:] & ~ignored[1:] & (p_area[1:] > 0)
        np.add.at(self.fp, pcat[1:][fp], 1)
        self.images += 1

    def compute(self) -> PanopticResult:
        tp, fp, fn, iou = (a.astype(np.float64) for a in (self.tp, self.fp, self.fn, self.iou))
        denom = tp + 0.5 * fp + 0.5 * fn
        with np.errstate(divide="ignore", invalid="ignore"):
            pq = np.where(denom > 0, iou / denom, 0.0)
            sq = np.where(tp > 0, iou / tp, 0.0)
            rq = np.where(denom > 0, tp / denom, 0.0)
        per_class = {}
        for c in self.schema.classes:
            if denom[c.id] > 0:
                per_class[c.name] = {"id": c.id, "pq": float(pq[c.id]), "sq": float(sq[c.id]),
                                     "rq": float(rq[c.id]), "tp": int(tp[c.id]),
                                     "fp": int(fp[c.id]), "fn": int(fn[c.id])}

        def avg(ids):
            ids = [i for i in ids if denom[i] > 0]
            if not ids:
                return {"pq": 0.0, "sq": 0.0, "rq": 0.0, "n": 0}
            return {"pq": float(pq[ids].mean()), "sq": float(sq[ids].mean()),
                    "rq": float(rq[ids].mean()), "n": len(ids)}

        allc = avg(self.schema.ids)
        return PanopticResult(allc["pq"], allc["sq"], allc["rq"], avg(self.schema.thing_ids),
                              avg(self.schema.stuff_ids), per_class, allc["n"])


def _pair_counts(gt: Panoptic, pred: Panoptic) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels per (ground-truth segment, predicted segment) pair, as an ``(Sg + 1, Sp + 1)``
    table over the dense indices (row and column 0: void), with both sorted id lists. Labels
    with fewer than 256 segments (one image's labels, nearly always) take OpenCV's 2-D
    histogram of two uint8 maps; others one ``bincount`` over int64 pair codes."""
    gs, ps = gt.small_index(), pred.small_index()
    if gs is not None and ps is not None and gt.seg_ids.size < 1 << 24:  # float32 counts exact
        import cv2

        (g, gids), (p, pids) = gs, ps
        ng, np_ = len(gids) + 1, len(pids) + 1
        hist = cv2.calcHist([g, p], [0, 1], None, [ng, np_], [0, ng, 0, np_])
        return hist.astype(np.int64), gids, pids
    g, gids = gt.dense_index()
    p, pids = pred.dense_index()
    ng, np_ = len(gids) + 1, len(pids) + 1
    return np.bincount(g * np_ + p, minlength=ng * np_).reshape(ng, np_), gids, pids
