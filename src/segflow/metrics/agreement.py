"""Agreement between annotators: per-class IoU/Dice, boundary F1, PQ and a disagreement map.

Label maps are ``(H, W)`` integer arrays of class ids ``0..num_classes-1``; ``ignore_index``
marks pixels an annotator left out of scoring. The functions are symmetric in the annotators
(no side is the ground truth), except PQ, which follows the COCO panoptic rules with the first
annotator of a pair in the ground-truth role (:class:`~segflow.metrics.PanopticEvaluator`).

* **Confusion** of a pair: one histogram over the pixel codes ``a * (C + 1) + b`` (OpenCV's
  ``calcHist`` when the codes fit a byte, else ``numpy.bincount``), pixels where either side is
  the ignore id skipped. IoU_c = TP / (TP + FP + FN), Dice_c = 2 TP / (2 TP + FP + FN); mIoU and
  mean Dice over the classes either side used.
* **Boundary F1** at a tolerance of ``d`` px: a class's boundary pixels are its pixels with an
  8-neighbour of another label (image borders are not boundaries); a boundary pixel of one
  annotator is matched when the other annotator has a boundary pixel *of the same class* within
  the disk of radius ``d`` (OpenCV's elliptic structuring element of size ``2d + 1``, the disk of
  DAVIS's ``db_eval_boundary``, Perazzi et al., CVPR 2016). Precision and recall are counted per
  class as in the BF score of Csurka et al. (BMVC 2013) and summed over images;
  F1 = 2PR / (P + R). This is the definition of :func:`segflow.metrics.boundary_f1` (the
  evaluator's, one class at a time, and the reference of the tests), computed for all classes
  at once: boundary pixels whose 3x3 neighbourhood is the same in both maps are matched as
  they are; for the others, the lowest and highest class of the other map's boundary within
  the disk (one erosion and one dilation) settle all but the pixels where three or more
  classes meet, which are looked up offset by offset.
* **Error kinds** of an annotation against a reference: missed, over-painted, wrong class.

The disagreement map and majority vote of ``k`` annotators are in
:mod:`segflow.metrics.voting`; consensus in :mod:`segflow.metrics.consensus`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from segflow.errors import ParameterError, SegflowError

MAX_TOLERANCE = 100  # px; a wider band says nothing about boundaries
_KERNEL3 = np.ones((3, 3), np.uint8)


# ---- inputs ----------------------------------------------------------------------------------


def _check_n(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer):
        raise ParameterError(f"num_classes must be an integer, got {num_classes!r}")
    if not 1 <= num_classes <= 65000:
        raise ParameterError(f"num_classes must be 1..65000, got {num_classes}")
    return int(num_classes)


def check_tolerance(tolerance) -> int:
    """A boundary tolerance in whole pixels, 0..100 (NaN, infinities and fractions refused)."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float | np.integer | np.floating):
        raise ParameterError(f"tolerance must be a whole number of pixels, got {tolerance!r}")
    if not np.isfinite(tolerance) or tolerance != int(tolerance) or not 0 <= tolerance <= MAX_TOLERANCE:
        raise ParameterError(f"tolerance must be a whole number of pixels 0..{MAX_TOLERANCE}, "
                             f"got {tolerance}")
    return int(tolerance)


def compact(labels: np.ndarray, num_classes: int, ignore_index: int = 255,
            *, where: str = "labels") -> np.ndarray:
    """Class ids as a uint8/uint16 map with the ignore id moved to ``num_classes``.

    Raises :class:`SegflowError` for non-integer arrays, wrong dimensions and ids outside
    ``0..num_classes-1`` (other than the ignore id)."""
    n = _check_n(num_classes)
    a = np.asarray(labels)
    if a.dtype == bool:
        a = a.view(np.uint8)
    if a.ndim != 2:
        raise SegflowError(f"{where}: a label map must be 2-D (H, W), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise SegflowError(f"{where}: label maps must hold integer class ids, got {a.dtype}")
    out_dtype = np.uint8 if n + 1 <= 255 else np.uint16
    if a.dtype == np.uint8 and out_dtype == np.uint8:
        lut = np.arange(256, dtype=np.uint8)
        lut[n:] = 255  # out of range
        if 0 <= ignore_index < 256:
            lut[ignore_index] = n
        out = cv2.LUT(a, lut) if a.size else a.copy()
        bad = out == 255 if n < 255 and a.size and out.max() == 255 else None
    else:
        a64 = a.astype(np.int64, copy=False)
        ign = a64 == ignore_index
        bad = ((a64 < 0) | (a64 >= n)) & ~ign
        out = np.where(ign, n, a64).astype(out_dtype) if a.size else a64.astype(out_dtype)
        if not bad.any():
            bad = None
    if bad is not None and bad.any():
        v = a[bad].ravel()[0]
        raise SegflowError(f"{where}: class id {v} is outside 0..{n - 1} (ignore id "
                           f"{ignore_index}); check the label schema")
    return out


def ne(c: np.ndarray, value: int) -> np.ndarray:
    """uint8 mask (255) of the pixels of ``c`` not equal to ``value`` (OpenCV's compare,
    array to array: a Python scalar is ambiguous to OpenCV for arrays of up to four pixels)."""
    return cv2.compare(c, np.full_like(c, value), cv2.CMP_NE)


def _same_shape(a: np.ndarray, b: np.ndarray, where: str) -> None:
    if a.shape != b.shape:
        raise SegflowError(f"{where}: label maps differ in size: {a.shape[1]}x{a.shape[0]} and "
                           f"{b.shape[1]}x{b.shape[0]} (W x H); they must match")


# ---- pair statistics --------------------------------------------------------------------------


def confusion(a: np.ndarray, b: np.ndarray, num_classes: int, *, ignore_index: int = 255,
              where: str = "agreement") -> np.ndarray:
    """``(C, C)`` int64 pixel counts, rows = ``a``'s class, columns = ``b``'s; pixels where either
    map holds the ignore id are left out."""
    n = _check_n(num_classes)
    ca = compact(a, n, ignore_index, where=where)
    cb = compact(b, n, ignore_index, where=where)
    _same_shape(ca, cb, where)
    return _confusion_compact(ca, cb, n)


def _confusion_compact(ca: np.ndarray, cb: np.ndarray, n: int) -> np.ndarray:
    m = n + 1  # class ids and the ignore slot
    if m * m <= 256 and ca.dtype == np.uint8:
        code = cv2.scaleAdd(ca, m, cb) if ca.size else ca  # a * m + b, exact within a byte
        hist = cv2.calcHist([code], [0], None, [256], [0, 256])[:, 0] if ca.size else np.zeros(256)
        counts = np.rint(hist[: m * m]).astype(np.int64)
    else:
        code = ca.astype(np.int64) * m + cb
        counts = np.bincount(code.ravel(), minlength=m * m)
    return counts.reshape(m, m)[:n, :n].copy()


def _disk_offsets(d: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1))
    return np.argwhere(k > 0) - d  # (S, 2): dy, dx


def _boundary_mask(c: np.ndarray) -> np.ndarray:
    """uint8 mask (255) of the pixels with an 8-neighbour of another label (the border
    replicated, so the image edge is no boundary)."""
    # Some neighbour differs exactly when the 3x3 maximum and minimum differ: the
    # morphological gradient is non-zero.
    grad = cv2.morphologyEx(c, cv2.MORPH_GRADIENT, _KERNEL3, borderType=cv2.BORDER_REPLICATE)
    return ne(grad, 0)


def _with_sentinel(c: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``c`` where ``mask`` (uint8 255/0) is set, the dtype's maximum (no class) elsewhere."""
    inv = cv2.bitwise_not(mask)
    if c.dtype != np.uint8:
        inv = inv.astype(c.dtype) * np.array(257, c.dtype)  # 255 -> 65535
    return cv2.bitwise_or(c, inv)


def _matched(idx: np.ndarray, cls: np.ndarray, other: np.ndarray, d: int) -> np.ndarray:
    """For boundary pixels at flat indices ``idx`` of classes ``cls``: is there a pixel of the
    same class in ``other`` (classes on its boundary pixels, a sentinel elsewhere) within the
    disk of radius ``d``?"""
    h, w = other.shape
    offs = _disk_offsets(d)
    out = np.zeros(len(idx), bool)
    if len(offs) > 81:
        # Wide disks: one dilation per class is cheaper than visiting every offset.
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1))
        for c in np.unique(cls):
            near = cv2.dilate((other == c).view(np.uint8), k).ravel()
            sel = cls == c
            out[sel] = near[idx[sel]] > 0
        return out
    offs = offs[np.argsort((offs ** 2).sum(1), kind="stable")]  # nearest first
    ys, xs = np.divmod(idx, w)
    inner = (ys >= d) & (ys < h - d) & (xs >= d) & (xs < w - d)
    # Inside a margin of d every offset stays in the image: plain flat gathers. Pixels once
    # matched are dropped, so where the maps agree most are settled by the first offset.
    flat = other.ravel()
    todo = np.flatnonzero(inner)
    at, cl = idx[todo], cls[todo]
    for dy, dx in offs:
        hit = flat[at + (dy * w + dx)] == cl
        if hit.any():
            out[todo[hit]] = True
            keep = ~hit
            todo, at, cl = todo[keep], at[keep], cl[keep]
            if not len(todo):
                break
    # The few pixels near the image edge: offsets checked against the bounds.
    todo = np.flatnonzero(~inner)
    for dy, dx in offs:
        if not len(todo):
            break
        yy, xx = ys[todo] + dy, xs[todo] + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        hit = ok & (other[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)] == cls[todo])
        out[todo[hit]] = True
        todo = todo[~hit]
    return out


def _class_hist(c: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Pixels of each class 0..n-1 of ``c`` under ``mask`` (uint8, non-zero = counted)."""
    if c.dtype == np.uint8:
        h = cv2.calcHist([c], [0], mask, [256], [0, 256])[:n, 0]
        return np.rint(h).astype(np.int64)
    return np.bincount(c[mask > 0].ravel(), minlength=n + 2)[:n].astype(np.int64)


def boundary_counts(a: np.ndarray, b: np.ndarray, num_classes: int, *, tolerance: int = 2,
                    ignore_index: int = 255, where: str = "agreement") -> np.ndarray:
    """``(C, 4)`` int64 per class: (matched boundary pixels of ``b``, boundary pixels of ``b``,
    matched of ``a``, of ``a``) -- the order of :func:`segflow.metrics.boundary_f1` with ``a``
    as ground truth. Boundary pixels on an ignore pixel of either map are left out."""
    n = _check_n(num_classes)
    d = check_tolerance(tolerance)
    ca = compact(a, n, ignore_index, where=where)
    cb = compact(b, n, ignore_index, where=where)
    _same_shape(ca, cb, where)
    return _boundary_counts_compact(ca, cb, n, d)


def _boundary_counts_compact(ca: np.ndarray, cb: np.ndarray, n: int, d: int) -> np.ndarray:
    out = np.zeros((n, 4), np.int64)
    if ca.size == 0:
        return out
    ba = _boundary_mask(ca)
    bb = _boundary_mask(cb)
    if ca.max() == n or cb.max() == n:  # some pixels are ignored (n is the ignore slot)
        valid = cv2.bitwise_and(ne(ca, n), ne(cb, n))
        ba = cv2.bitwise_and(ba, valid)
        bb = cv2.bitwise_and(bb, valid)
    out[:, 1] = _class_hist(cb, bb, n)
    out[:, 3] = _class_hist(ca, ba, n)
    out[:, 0] = out[:, 1]
    out[:, 2] = out[:, 3]
    # Where both maps are equal over a pixel's 3x3 neighbourhood, a boundary pixel of one is a
    # boundary pixel of the same class of the other: matched. Only the boundary pixels near a
    # difference are looked at.
    diff = cv2.compare(ca, cb, cv2.CMP_NE)
    if not cv2.countNonZero(diff):
        return out
    hot = cv2.dilate(diff, _KERNEL3)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * d + 1, 2 * d + 1))
    for src, src_b, oth, oth_b, col in ((ca, ba, cb, bb, 2), (cb, bb, ca, ba, 0)):
        pts = cv2.findNonZero(cv2.bitwise_and(src_b, hot))  # (N, 1, 2) x, y; None if empty
        if pts is None:
            continue
        idx = pts[:, 0, 1].astype(np.int64) * src.shape[1] + pts[:, 0, 0]
        cls = src.ravel()[idx]
        # The lowest and highest class among the other map's boundary pixels in the disk
        # around each pixel (two morphology passes). Both are classes present there, so a
        # pixel whose class is one of them is matched, and one outside [lowest, highest] is
        # not; only pixels strictly between (three or more classes meet) are looked up.
        other = _with_sentinel(oth, oth_b)
        lowest = cv2.erode(other, disk).ravel()[idx]
        plus1 = cv2.add(oth, np.ones_like(oth), dst=np.zeros_like(oth), mask=oth_b)  # class+1 or 0
        highest = cv2.dilate(plus1, disk).ravel()[idx].astype(np.int64) - 1
        found = (lowest == cls) | (highest == cls)
        unsure = ~found & (lowest < cls) & (highest > cls)
        if unsure.any():
            found[unsure] = _matched(idx[unsure], cls[unsure], other, d)
        out[:, col] -= np.bincount(cls[~found], minlength=n)[:n]
    return out


# ---- scores from counts -----------------------------------------------------------------------


def scores(cm: np.ndarray, bf: np.ndarray | None = None, *,
           report: np.ndarray | None = None) -> dict:
    """IoU, Dice (and boundary F1) per class and their means from summed counts.

    ``report``: boolean mask of the classes to score (e.g. without a void label, whose
    confusion with other classes still counts against them). A class neither side used has
    no score (NaN) and is left out of the means."""
    cm = np.asarray(cm, np.float64)
    n = cm.shape[0]
    rep = np.ones(n, bool) if report is None else np.asarray(report, bool)
    tp = np.diag(cm)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = tp / (tp + fp + fn)
        dice = 2 * tp / (2 * tp + fp + fn)
    present = rep & ((tp + fp + fn) > 0)
    out = {"iou": np.where(present, iou, np.nan), "dice": np.where(present, dice, np.nan),
           "miou": float(iou[present].mean()) if present.any() else float("nan"),
           "dice_mean": float(dice[present].mean()) if present.any() else float("nan")}
    if bf is not None:
        f1 = bf1_scores(bf)
        f1 = np.where(rep, f1, np.nan)
        out["boundary_f1"] = f1
        out["boundary_f1_mean"] = float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan")
    return out


def bf1_scores(bf: np.ndarray) -> np.ndarray:
    """Per-class boundary F1 from ``(C, 4)`` counts; NaN where neither side has a boundary."""
    mp, np_, mg, ng = (np.asarray(bf, np.float64)[:, i] for i in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(np_ > 0, mp / np_, 0.0)
        rec = np.where(ng > 0, mg / ng, 0.0)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
    return np.where((np_ == 0) & (ng == 0), np.nan, f1)


@dataclass
class PairStats:
    """Summed counts of one pair of annotators (over one image or many)."""

    confusion: np.ndarray
    boundary: np.ndarray

    def __iadd__(self, other: PairStats) -> PairStats:
        self.confusion += other.confusion
        self.boundary += other.boundary
        return self

    def scores(self, report: np.ndarray | None = None) -> dict:
        return scores(self.confusion, self.boundary, report=report)


def pair_stats(a: np.ndarray, b: np.ndarray, num_classes: int, *, tolerance: int = 2,
               ignore_index: int = 255, where: str = "agreement") -> PairStats:
    """Confusion and boundary counts of one pair of label maps, each map read once."""
    n = _check_n(num_classes)
    d = check_tolerance(tolerance)
    ca = compact(a, n, ignore_index, where=where)
    cb = compact(b, n, ignore_index, where=where)
    _same_shape(ca, cb, where)
    return PairStats(_confusion_compact(ca, cb, n), _boundary_counts_compact(ca, cb, n, d))


# ---- one annotation against a reference --------------------------------------------------------

AGREE, MISSED, OVERPAINTED, WRONG_CLASS = 0, 1, 2, 3


def error_kinds(annotation: np.ndarray, reference: np.ndarray, num_classes: int, *,
                background=None, ignore_index: int = 255,
                where: str = "reference") -> np.ndarray:
    """Where and how an annotation departs from a reference, per pixel (uint8):

    * 0 (``AGREE``): same class, or ignored by either side;
    * 1 (``MISSED``): the reference has a foreground class, the annotation a background one;
    * 2 (``OVERPAINTED``): the annotation has a foreground class where the reference has a
      background one;
    * 3 (``WRONG_CLASS``): both foreground, or both background, and different (every
      difference when ``background`` is None).

    ``background``: a class id or ids meaning "nothing painted here" (a background class; for
    panoptic labels the stuff classes and void).
    """
    n = _check_n(num_classes)
    ca = compact(annotation, n, ignore_index, where=where)
    cr = compact(reference, n, ignore_index, where=where)
    _same_shape(ca, cr, where)
    return _error_kinds_compact(ca, cr, n, background)


def _error_kinds_compact(ca: np.ndarray, cr: np.ndarray, n: int, background) -> np.ndarray:
    out = cv2.compare(ca, cr, cv2.CMP_NE)
    if ca.size and (ca.max() == n or cr.max() == n):
        out = cv2.bitwise_and(out, cv2.bitwise_and(ne(ca, n), ne(cr, n)))
    out = np.minimum(out, WRONG_CLASS)
    if background is not None and out.size:
        ids = np.atleast_1d(np.asarray(background))
        if not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= n:
            raise ParameterError(f"background must be class ids 0..{n - 1}, got {background!r}")
        is_bg = np.zeros(256 if ca.dtype == np.uint8 else 65536, np.uint8)
        is_bg[ids] = 1
        if ca.dtype == np.uint8:
            bg_a, bg_r = cv2.LUT(ca, is_bg), cv2.LUT(cr, is_bg)
        else:
            bg_a, bg_r = is_bg[ca], is_bg[cr]
        # Where they differ: 3 (wrong class), less 2 where only the annotation is background
        # (missed), less 1 where only the reference is (over-painted). All in uint8.
        only_a = bg_a & (1 - bg_r)
        only_r = bg_r & (1 - bg_a)
        out = (out > 0).view(np.uint8) * (3 - 2 * only_a - only_r)
    return out


def reference_stats(annotation: np.ndarray, reference: np.ndarray, num_classes: int, *,
                    tolerance: int = 2, ignore_index: int = 255, background=None,
                    where: str = "reference") -> tuple[PairStats, np.ndarray]:
    """:func:`pair_stats` (the reference first) and :func:`error_kinds` of one annotation,
    reading each map once."""
    n = _check_n(num_classes)
    d = check_tolerance(tolerance)
    ca = compact(annotation, n, ignore_index, where=where)
    cr = compact(reference, n, ignore_index, where=where)
    _same_shape(ca, cr, where)
    stats = PairStats(_confusion_compact(cr, ca, n), _boundary_counts_compact(cr, ca, n, d))
    return stats, _error_kinds_compact(ca, cr, n, background)


# ---- a whole data set ---------------------------------------------------------------------------


class AgreementEvaluator:
    """Accumulates agreement of ``k`` annotators over images.

    Parameters
    ----------
    num_classes : int
        Class ids are ``0..num_classes-1``.
    report : boolean array, optional
        The classes to score (e.g. without a void label added for unlabelled pixels).
    tolerance : int
        Boundary tolerance in pixels (0..100).
    """

    def __init__(self, k: int, num_classes: int, *, ignore_index: int = 255, tolerance: int = 2,
                 report: np.ndarray | None = None):
        if k < 2:
            raise SegflowError(f"agreement needs at least two annotators, got {k}")
        self.k = k
        self.n = _check_n(num_classes)
        self.ignore_index = ignore_index
        self.tol = check_tolerance(tolerance)
        self.report = report
        self.pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        self.stats = {p: PairStats(np.zeros((self.n, self.n), np.int64),
                                   np.zeros((self.n, 4), np.int64)) for p in self.pairs}

    def update(self, maps: list[np.ndarray], *, where: str = "agreement") -> dict:
        """Add one image (``k`` label maps); returns its per-pair scores."""
        if len(maps) != self.k:
            raise SegflowError(f"{where}: expected {self.k} label maps, got {len(maps)}")
        cs = [compact(m, self.n, self.ignore_index, where=where) for m in maps]
        for c in cs[1:]:
            _same_shape(cs[0], c, where)
        per_pair = {}
        for i, j in self.pairs:
            st = PairStats(_confusion_compact(cs[i], cs[j], self.n),
                           _boundary_counts_compact(cs[i], cs[j], self.n, self.tol))
            self.stats[(i, j)] += st
            per_pair[(i, j)] = st.scores(self.report)
        return per_pair

    def pair_scores(self) -> dict:
        return {p: st.scores(self.report) for p, st in self.stats.items()}

    def total(self) -> PairStats:
        """All pairs summed: per-class figures over every pair of annotators."""
        out = PairStats(np.zeros((self.n, self.n), np.int64), np.zeros((self.n, 4), np.int64))
        for st in self.stats.values():
            out += st
        return out

    def between(self) -> np.ndarray:
        """``(C, C)`` symmetric: pixels (summed over pairs) labelled ``i`` by one annotator and
        ``j`` by the other, diagonal zero."""
        cm = self.total().confusion
        out = cm + cm.T
        np.fill_diagonal(out, 0)
        return out
