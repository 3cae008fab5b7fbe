"""Overlap and surface metrics of 3-D masks, in millimetres using the voxel spacing.

Surfaces follow MONAI's definition (``monai.metrics.utils.get_mask_edges``): a mask's edge is
the mask minus its binary erosion (6-connectivity, outside the volume is background). From
each edge voxel of one mask, the distance (mm, anisotropic spacing) to the nearest edge voxel
of the other comes from one Euclidean distance transform per direction
(``scipy.ndimage.distance_transform_edt(..., sampling=spacing)``).

* Hausdorff 95: ``max(P95(d(pred -> gt)), P95(d(gt -> pred)))``, as MONAI's
  ``compute_hausdorff_distance(percentile=95)``.
* Surface Dice at tolerance ``t`` mm (Nikolov et al. 2021, MONAI's ``compute_surface_dice``):
  the share of both edges lying within ``t`` of the other edge.

Empty masks: both empty -> NaN (nothing to score); one empty -> HD95 = inf and surface Dice = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from segflow.errors import SegflowError
from segflow.volume.ops import _spacing

_CROSS = ndimage.generate_binary_structure(3, 1)


def _pair(gt, pred, where: str = "metrics"):
    g, p = np.asarray(gt), np.asarray(pred)
    if g.shape != p.shape:
        raise SegflowError(f"{where}: prediction shape {p.shape} differs from ground truth {g.shape}")
    if g.ndim != 3:
        raise SegflowError(f"{where}: expected 3-D masks, got shape {g.shape}")
    return g != 0, p != 0


def dice(gt: np.ndarray, pred: np.ndarray) -> float:
    """Dice of two binary masks (non-zero = foreground); NaN when both are empty."""
    g, p = _pair(gt, pred)
    s = int(g.sum()) + int(p.sum())
    return float("nan") if s == 0 else 2.0 * int((g & p).sum()) / s


def iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """Intersection over union of two binary masks; NaN when both are empty."""
    g, p = _pair(gt, pred)
    u = int((g | p).sum())
    return float("nan") if u == 0 else int((g & p).sum()) / u


def edges(mask: np.ndarray) -> np.ndarray:
    """Edge voxels: the mask minus its 6-connected erosion (outside counts as background)."""
    m = np.asarray(mask) != 0
    return m & ~ndimage.binary_erosion(m, _CROSS, border_value=0)


def _crop(g: np.ndarray, p: np.ndarray, margin: int = 1):
    """Both masks cropped to the box around their union, plus a margin (the distances between
    their edges do not depend on what lies outside)."""
    u = g | p
    sl = ndimage.find_objects(u.astype(np.uint8))[0]
    sl = tuple(slice(max(0, s.start - margin), min(n, s.stop + margin)) for s, n in zip(sl, u.shape))
    return g[sl], p[sl]


def surface_distances(gt: np.ndarray, pred: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray]:
    """``(d(pred edge -> gt edge), d(gt edge -> pred edge))`` in mm; both masks non-empty."""
    g, p = _pair(gt, pred)
    s = _spacing(spacing)
    g, p = _crop(g, p)
    eg, ep = edges(g), edges(p)
    dg = ndimage.distance_transform_edt(~eg, sampling=s)
    dp = ndimage.distance_transform_edt(~ep, sampling=s)
    return dg[ep], dp[eg]


def hd95(gt: np.ndarray, pred: np.ndarray, spacing, *, percentile: float = 95.0) -> float:
    """Symmetric percentile Hausdorff distance in mm (see the module docstring)."""
    g, p = _pair(gt, pred, "hd95")
    if not g.any() and not p.any():
        return float("nan")
    if not g.any() or not p.any():
        return float("inf")
    a, b = surface_distances(g, p, spacing)
    return float(max(np.percentile(a, percentile), np.percentile(b, percentile)))


def surface_dice(gt: np.ndarray, pred: np.ndarray, spacing, tolerance_mm: float = 1.0) -> float:
    """Normalised surface Dice at ``tolerance_mm`` (see the module docstring)."""
    if not (np.isfinite(tolerance_mm) and tolerance_mm >= 0):
        raise SegflowError(f"surface Dice: tolerance must be finite and >= 0 mm, got {tolerance_mm}")
    g, p = _pair(gt, pred, "surface dice")
    if not g.any() and not p.any():
        return float("nan")
    if not g.any() or not p.any():
        return 0.0
    a, b = surface_distances(g, p, spacing)
    return float(((a <= tolerance_mm).sum() + (b <= tolerance_mm).sum()) / (a.size + b.size))


@dataclass
class VolumeScores:
    """Per-class means over volumes: HD95 over volumes where it is finite (``hd95_inf`` counts
    the volumes where one of the two masks was empty), surface Dice over volumes where the
    class is in the ground truth or the prediction."""

    class_ids: list[int]
    hd95_mm: np.ndarray
    hd95_inf: np.ndarray
    surface_dice: np.ndarray
    tolerance_mm: float


class SurfaceEvaluator:
    """Accumulates HD95 and surface Dice per class over volumes (Dice/IoU come from
    :class:`segflow.metrics.SemanticEvaluator`, whose confusion matrix works on 3-D arrays)."""

    def __init__(self, num_classes: int, *, tolerance_mm: float = 1.0, ignore_index: int = 255,
                 skip_background: bool = True):
        if not (np.isfinite(tolerance_mm) and tolerance_mm >= 0):
            raise SegflowError(f"--tolerance-mm must be finite and >= 0, got {tolerance_mm}")
        self.n, self.tol, self.ignore = int(num_classes), float(tolerance_mm), ignore_index
        self.first = 1 if skip_background else 0
        self.hd_sum = np.zeros(self.n)
        self.hd_n = np.zeros(self.n, np.int64)
        self.hd_inf = np.zeros(self.n, np.int64)
        self.sd_sum = np.zeros(self.n)
        self.sd_n = np.zeros(self.n, np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray, spacing) -> None:
        g, p = np.asarray(gt), np.asarray(pred)
        valid = g != self.ignore
        for c in range(self.first, self.n):
            gc, pc = (g == c) & valid, (p == c) & valid
            if not gc.any() and not pc.any():
                continue
            h = hd95(gc, pc, spacing)
            if np.isfinite(h):
                self.hd_sum[c] += h
                self.hd_n[c] += 1
            else:
                self.hd_inf[c] += 1
            self.sd_sum[c] += surface_dice(gc, pc, spacing, self.tol)
            self.sd_n[c] += 1

    def compute(self) -> VolumeScores:
        with np.errstate(divide="ignore", invalid="ignore"):
            hd = np.where(self.hd_n > 0, self.hd_sum / np.maximum(self.hd_n, 1), np.nan)
            sd = np.where(self.sd_n > 0, self.sd_sum / np.maximum(self.sd_n, 1), np.nan)
        return VolumeScores(list(range(self.n)), hd, self.hd_inf.copy(), sd, self.tol)
