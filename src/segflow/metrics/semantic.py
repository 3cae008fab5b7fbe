"""Semantic segmentation metrics from a streaming confusion matrix.

Per image, ``update`` adds the ``(gt, pred)`` pixel pairs to a ``C x C`` confusion matrix with
one ``bincount`` (pixels whose ground truth is the ignore id are skipped), so any number of
images evaluates in constant memory. From the matrix:

* pixel accuracy = trace / total
* IoU_c = TP_c / (TP_c + FP_c + FN_c); mIoU = mean over classes present in the ground truth or
  the prediction (a class absent from both has no IoU: NaN, left out of the mean)
* frequency-weighted IoU = sum_c freq_c IoU_c, freq_c the share of ground-truth pixels
* Dice_c (= F1_c) = 2 TP_c / (2 TP_c + FP_c + FN_c); mean Dice likewise
* per-image averaging (``miou_image``, ``iou_image``): IoU computed per image for the classes
  present in it (ground truth or prediction), averaged per class over those images, and mIoU as
  the mean over all (image, class) pairs — the definition of torchmetrics' ``MeanIoU``
* boundary F1 (Csurka et al.): precision and recall of boundary pixels within a tolerance of
  ``boundary_tolerance`` pixels, per class, accumulated as counts over images
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segflow.errors import SegflowError


@dataclass
class SemanticResult:
    confusion: np.ndarray
    class_ids: list[int]
    class_names: list[str]
    pixel_accuracy: float
    iou: np.ndarray
    dice: np.ndarray
    miou: float
    mean_dice: float
    fw_iou: float
    iou_image: np.ndarray | None = None
    miou_image: float | None = None
    boundary_f1: np.ndarray | None = None
    mean_boundary_f1: float | None = None

    def to_dict(self) -> dict:
        def f(v):
            return None if v is None or not np.isfinite(v) else float(v)

        per = {}
        for k, (cid, name) in enumerate(zip(self.class_ids, self.class_names)):
            if name is None:  # an id the label schema does not define
                continue
            d = {"id": cid, "iou": f(self.iou[k]), "dice": f(self.dice[k])}
            if self.boundary_f1 is not None:
                d["boundary_f1"] = f(self.boundary_f1[k])
            per[name] = d
        out = {"miou": f(self.miou), "pixel_accuracy": f(self.pixel_accuracy),
               "dice": f(self.mean_dice), "fw_iou": f(self.fw_iou),
               "miou_image": f(self.miou_image), "per_class": per}
        if self.mean_boundary_f1 is not None:
            out["boundary_f1"] = f(self.mean_boundary_f1)
        return out


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Inner boundary pixels of a binary mask (8-neighbourhood)."""
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)) > 0


def boundary_f1(gt: np.ndarray, pred: np.ndarray, cid: int, tolerance: int = 2,
                valid: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """Counts for the boundary F1 of class ``cid``: (matched pred, pred, matched gt, gt)."""
    bg = _boundary(gt == cid)
    bp = _boundary(pred == cid)
    if valid is not None:
        bg &= valid
        bp &= valid
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    near_g = cv2.dilate(bg.view(np.uint8), k) > 0
    near_p = cv2.dilate(bp.view(np.uint8), k) > 0
    return int((bp & near_g).sum()), int(bp.sum()), int((bg & near_p).sum()), int(bg.sum())


class SemanticEvaluator:
    """Accumulates a confusion matrix over images; ``compute()`` gives every metric.

    Parameters
    ----------
    num_classes : int
        Class ids are 0..num_classes-1; prediction ids outside are an error.
    ignore_index : int
        Ground-truth pixels with this id are not scored.
    boundary_tolerance : int or None
        Also compute boundary F1 with this tolerance in pixels (slower).
    """

    def __init__(self, num_classes: int, *, ignore_index: int = 255,
                 class_names: list[str | None] | None = None,
                 boundary_tolerance: int | None = None):
        self.n = int(num_classes)
        self.ignore_index = ignore_index
        self.names = class_names or [str(i) for i in range(self.n)]
        self.cm = np.zeros((self.n, self.n), np.int64)
        self.tol = boundary_tolerance
        self.bf = np.zeros((self.n, 4), np.int64)
        self.img_score = np.zeros(self.n, np.float64)
        self.img_count = np.zeros(self.n, np.int64)
        self.images = 0

    def update(self, gt: np.ndarray, pred: np.ndarray, *, where: str = "") -> float:
        """Add one image (``gt`` and ``pred``: ``(H, W)`` integer class ids); returns that
        image's mIoU (over the classes present in it; NaN when nothing is scored)."""
        gt = np.asarray(gt)
        pred = np.asarray(pred)
        if gt.shape != pred.shape:
            raise SegflowError(f"{where or 'eval'}: prediction is {pred.shape[::-1]}, "
                               f"ground truth {gt.shape[::-1]} (W, H); they must match")
        valid = gt != self.ignore_index
        g = gt[valid].astype(np.int64, copy=False)
        p = pred[valid].astype(np.int64, copy=False)
        if g.size and (g.max() >= self.n or g.min() < 0):
            raise SegflowError(f"{where or 'eval'}: ground-truth class {int(g.max())} is outside "
                               f"0..{self.n - 1}; check the label schema")
        if p.size and (p.max() >= self.n or p.min() < 0):
            raise SegflowError(f"{where or 'eval'}: predicted class {int(p.max())} is outside "
                               f"0..{self.n - 1}; check the label schema")
        cm = np.bincount(g * self.n + p, minlength=self.n * self.n).reshape(self.n, self.n)
        self.cm += cm
        tp = np.diag(cm)
        union = cm.sum(0) + cm.sum(1) - tp
        present = union > 0
        self.img_score[present] += tp[present] / union[present]
        self.img_count += present
        image_miou = float(np.mean(tp[present] / union[present])) if present.any() else float("nan")
        if self.tol is not None:
            present = np.union1d(np.unique(g), np.unique(p))
            for c in present:
                self.bf[c] += boundary_f1(gt, pred, int(c), self.tol, valid)
        self.images += 1
        return image_miou

    def merge(self, other: SemanticEvaluator) -> None:
        """Add what ``other`` (same classes and options) counted: images scored elsewhere (a
        worker process, a Ray task) and merged in image order give the result of one pass."""
        self.cm += other.cm
        self.bf += other.bf
        self.img_score += other.img_score
        self.img_count += other.img_count
        self.images += other.images

    def compute(self) -> SemanticResult:
        cm = self.cm.astype(np.float64)
        tp = np.diag(cm)
        fp = cm.sum(0) - tp
        fn = cm.sum(1) - tp
        total = cm.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = tp / (tp + fp + fn)
            dice = 2 * tp / (2 * tp + fp + fn)
            freq = cm.sum(1) / total if total else np.zeros(self.n)
            acc = tp.sum() / total if total else float("nan")
        present = (tp + fp + fn) > 0
        miou = float(np.mean(iou[present])) if present.any() else float("nan")
        mdice = float(np.mean(dice[present])) if present.any() else float("nan")
        fw = float(np.nansum(freq * np.where(present, iou, 0.0)))
        bf1 = mbf1 = None
        if self.tol is not None:
            mp, np_, mg, ng = (self.bf[:, i].astype(np.float64) for i in range(4))
            with np.errstate(divide="ignore", invalid="ignore"):
                prec = np.where(np_ > 0, mp / np_, np.where(ng > 0, 0.0, np.nan))
                rec = np.where(ng > 0, mg / ng, np.where(np_ > 0, 0.0, np.nan))
                bf1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
            bf1 = np.where(np.isnan(prec) & np.isnan(rec), np.nan, bf1)
            mbf1 = float(np.nanmean(bf1)) if np.isfinite(bf1).any() else float("nan")
        with np.errstate(divide="ignore", invalid="ignore"):
            iou_img = self.img_score / self.img_count
        miou_img = (float(self.img_score.sum() / self.img_count.sum()) if self.img_count.sum()
                    else float("nan"))
        return SemanticResult(self.cm.copy(), list(range(self.n)), self.names, float(acc), iou,
                              dice, miou, mdice, fw, iou_img, miou_img, bf1, mbf1)


def majority_mapping(labels: np.ndarray, gt: np.ndarray, k: int) -> np.ndarray:
    """Name each of ``k`` unsupervised clusters by the ground-truth class it overlaps most
    (an oracle mapping, used to score k-means and similar baselines); returns a lookup table."""
    mapping = np.zeros(k, np.int64)
    for c in range(k):
        sel = gt[labels == c]
        mapping[c] = np.bincount(sel).argmax() if sel.size else 0
    return mapping
