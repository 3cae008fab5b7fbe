"""k-means colour clustering that optimises the exact all-pixel objective, fast.

Clustering runs on **every pixel**: exact Lloyd iterations (:mod:`segflow.segment._lloyd`)
where pixels are grouped in small boxes of colour space and a whole box is assigned at once
when it lies inside one Voronoi cell. The objective is scikit-learn's on all pixels,
``sum_pixels ||x - c(x)||^2``, and the reported inertia is its exact value. Initial centres
come from weighted k-means++ (scikit-learn) on the box means, best of ``n_init``.

With ``spatial_weight > 0`` the pixel coordinates join the colour features (5-D boxes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from sklearn.cluster import KMeans

from segflow.errors import ParameterError
from segflow.ops._checks import check_image
from segflow.segment._lloyd import Boxes, _compact, lloyd, summarize


@dataclass(frozen=True)
class KMeansResult:
    """``labels``: ``(H, W)`` uint8 cluster ids, ordered dark to bright by cluster centre;
    ``centers``: ``(k, F)`` in the feature space; ``inertia``: the all-pixel objective;
    ``k``: the number of clusters used (chosen automatically when ``k`` was None)."""

    labels: np.ndarray
    centers: np.ndarray
    inertia: float
    k: int


def _uint8_boxes(pix: np.ndarray) -> Boxes:
    """Box statistics of 8-bit RGB pixels, exactly and fast (features are ``value / 255``).

    Boxes are 4 levels wide per channel (64 per axis). A value is ``v = 4 d + l`` (``d`` the
    box digit, ``l`` in 0..3), so the count, sum and sum of squares of a box follow from the
    counts of each low part ``l`` per box and channel: three integer histograms instead of
    four weighted ones over all pixels.
    """
    hi = [(pix[:, c] >> 2).astype(np.int32) for c in range(3)]
    grid_id = (hi[0] << 12) | (hi[1] << 6) | hi[2]
    ids, q = _compact(grid_id, 64**3)
    nb = len(ids)
    cnt = np.bincount(q, minlength=nb).astype(np.float64)
    digits = np.stack([(ids >> s) & 63 for s in (12, 6, 0)], 1).astype(np.float64)
    low = np.arange(4, dtype=np.float64)
    sums = np.empty((nb, 3))
    sqs = np.zeros(nb)
    for c in range(3):
        n_l = np.bincount(q * 4 + (pix[:, c] & 3), minlength=4 * nb).reshape(nb, 4)
        s1 = n_l @ low  # sum of the low parts
        s2 = n_l @ (low * low)  # sum of their squares
        d = digits[:, c]
        sums[:, c] = 4 * d * cnt + s1
        sqs += 16 * d * d * cnt + 8 * d * s1 + s2
    scale = 1.0 / 255.0
    return Boxes(q, ids, cnt, sums * scale, sqs * scale * scale, np.zeros(3),
                 np.full(3, 4 * scale), 64)


def _features(colours: np.ndarray, space: str) -> np.ndarray:
    """Colours (uint8/uint16/float, (N, C)) as float32 features in the chosen space."""
    x = colours.astype(np.float32)
    if colours.dtype == np.uint8:
        x *= np.float32(1 / 255.0)
    elif colours.dtype == np.uint16:
        x *= np.float32(1 / 65535.0)
    if space == "lab":
        if colours.shape[1] != 3:
            raise ParameterError("kmeans: space 'lab' needs an RGB image; use space 'rgb'")
        x = cv2.cvtColor(x.reshape(-1, 1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3)
    return x


def choose_k(x: np.ndarray, boxes: Boxes | None = None, *, k_max: int = 8, seed: int = 0) -> int:
    """Pick k by the elbow rule.

    Fit k = 1..k_max (weighted k-means on the box means, which tracks the all-pixel inertia
    closely) and take the k whose point on the normalised inertia curve lies farthest below
    the straight line from k=1 to k=k_max (the "kneedle" criterion).
    """
    b = boxes if boxes is not None else summarize(x)
    k_max = min(k_max, len(b.ids))
    if k_max < 3:
        return k_max
    ks = np.arange(1, k_max + 1)
    inertias = np.array([
        KMeans(n_clusters=int(k), n_init=1, random_state=seed).fit(b.means, sample_weight=b.cnt)
        .inertia_ for k in ks])
    if inertias[0] <= 0:
        return 1
    y = inertias / inertias[0]
    line = y[0] + (y[-1] - y[0]) * (ks - 1) / (k_max - 1)
    return int(ks[int(np.argmax(line - y))])


def kmeans(
    image: np.ndarray,
    *,
    k: int | None = 3,
    space: Literal["rgb", "lab"] = "rgb",
    spatial_weight: float = 0.0,
    seed: int = 0,
    n_init: int = 3,
    k_max: int = 8,
) -> KMeansResult:
    """Cluster pixels by colour (and optionally position) with k-means.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` grey or ``(H, W, 3|4)`` RGB(A) (alpha ignored); uint8, uint16 or float.
        Integer images are scaled to [0, 1] before clustering.
    k : int or None
        Number of clusters; ``None`` chooses it in 1..``k_max`` with :func:`choose_k`.
    space : {"rgb", "lab"}
        Feature space; Lab (CIE L*a*b*, L in 0..100) is closer to perceived colour difference.
    spatial_weight : float
        Weight of the pixel position ``(x, y) / max(H, W)`` relative to colour (x 100 in Lab);
        0 clusters by colour alone.
    seed : int
        Random seed; the same seed gives the same labels.
    n_init : int
        k-means++ restarts; the best is kept.

    Returns
    -------
    KMeansResult
    """
    arr = check_image(image)
    if k is not None and not 1 <= k <= 255:
        raise ParameterError(f"kmeans: k must be 1..255, got {k}")
    if space not in ("rgb", "lab"):
        raise ParameterError(f"kmeans: unknown space {space!r}; use rgb or lab")
    if spatial_weight < 0:
        raise ParameterError(f"kmeans: spatial_weight must be >= 0, got {spatial_weight}")
    if arr.ndim == 3:
        arr = arr[..., :3]
    h, w = arr.shape[:2]
    pix = arr.reshape(h * w, -1)
    x = _features(pix, space)
    boxes = None
    if spatial_weight > 0:
        scale = spatial_weight * (100.0 if space == "lab" else 1.0) / max(h, w)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) * np.float32(scale)
        x = np.hstack([x, xx.reshape(-1, 1), yy.reshape(-1, 1)])
    elif space == "rgb" and arr.dtype == np.uint8 and pix.shape[1] == 3:
        boxes = _uint8_boxes(pix)
    if k is None:
        k = choose_k(x, boxes, k_max=k_max, seed=seed)
    res = lloyd(x, k, seed=seed, n_init=n_init, boxes=boxes)
    k = res.centers.shape[0]
    # Order clusters dark to bright (first feature: R, L or grey) so ids are stable.
    order = np.argsort(res.centers[:, 0], kind="stable")
    rank = np.empty(k, np.uint8)
    rank[order] = np.arange(k, dtype=np.uint8)
    return KMeansResult(rank[res.labels].reshape(h, w), res.centers[order], res.inertia, int(k))
