"""k-means colour clustering that optimises the exact all-pixel objective, fast.

Many pixels of a photo share a colour: a 1920x1080 photo has ~2 M pixels but typically a few
hundred thousand distinct RGB triples. k-means on all pixels and *weighted* k-means on the
distinct colours (each weighted by its pixel count) have the same objective,
``sum_pixels ||x - c(x)||^2``, the same minimisers and the same inertia, so we cluster the
distinct colours with scikit-learn's ``KMeans(sample_weight=counts)`` and map the result back
through the inverse index. No pixel is dropped or approximated.

With ``spatial_weight > 0`` the pixel coordinates join the features, every pixel becomes
distinct and we cluster all pixels directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from sklearn.cluster import KMeans

from segflow.errors import ParameterError
from segflow.ops._checks import check_image


@dataclass(frozen=True)
class KMeansResult:
    """``labels``: ``(H, W)`` uint8 cluster ids, ordered dark to bright by cluster centre;
    ``centers``: ``(k, F)`` in the feature space; ``inertia``: the all-pixel objective;
    ``k``: the number of clusters used (chosen automatically when ``k`` was None)."""

    labels: np.ndarray
    centers: np.ndarray
    inertia: float
    k: int


def _distinct(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of an ``(N, C)`` array with counts and the inverse index."""
    if pixels.dtype == np.uint8 and pixels.shape[1] <= 3:
        # Pack up to 3 bytes into one int and count with bincount (linear time, no sort).
        code = np.zeros(pixels.shape[0], np.int32)
        for c in range(pixels.shape[1]):
            code <<= 8
            code |= pixels[:, c]
        counts = np.bincount(code, minlength=1 << (8 * pixels.shape[1]))
        present = np.flatnonzero(counts)
        lut = np.zeros(counts.shape[0], np.int32)
        lut[present] = np.arange(present.size, dtype=np.int32)
        inverse = lut[code]
        uniq = np.empty((present.size, pixels.shape[1]), np.uint8)
        for c in range(pixels.shape[1] - 1, -1, -1):
            uniq[:, c] = present & 0xFF
            present = present >> 8
        return uniq, counts[np.flatnonzero(counts)], inverse
    uniq, inverse, counts = np.unique(pixels, axis=0, return_inverse=True, return_counts=True)
    return uniq, counts, inverse.ravel()


def _features(colours: np.ndarray, space: str) -> np.ndarray:
    """Colours (uint8/uint16/float, (N, C)) as float features in the chosen space."""
    x = colours.astype(np.float32)
    if colours.dtype == np.uint8:
        x /= 255.0
    elif colours.dtype == np.uint16:
        x /= 65535.0
    if space == "lab":
        if colours.shape[1] != 3:
            raise ParameterError("kmeans: space 'lab' needs an RGB image; use space 'rgb'")
        x = cv2.cvtColor(x.reshape(-1, 1, 3), cv2.COLOR_RGB2Lab).reshape(-1, 3)
    return x


def _fit(x, w, k, seed, n_init):
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    km.fit(x, sample_weight=w)
    return km


def choose_k(x: np.ndarray, w: np.ndarray | None, *, k_max: int = 8, seed: int = 0) -> int:
    """Pick k by the elbow rule.

    Fit k = 1..k_max and take the k whose point on the normalised inertia curve lies
    farthest below the straight line from k=1 to k=k_max (the "kneedle" criterion).
    """
    ks = np.arange(1, k_max + 1)
    inertias = np.array([_fit(x, w, int(k), seed, 1).inertia_ for k in ks])
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
        Weight of the pixel position ``(x, y) / max(H, W)`` relative to colour; 0 clusters by
        colour alone (exactly, over distinct colours).
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
    if spatial_weight == 0:
        colours, counts, inverse = _distinct(pix)
        x = _features(colours, space)
        weights = counts.astype(np.float64)
    else:
        x = _features(pix, space)
        scale = spatial_weight * (100.0 if space == "lab" else 1.0) / max(h, w)
        yy, xx = np.mgrid[0:h, 0:w]
        x = np.hstack([x, (xx.reshape(-1, 1) * scale).astype(np.float32),
                       (yy.reshape(-1, 1) * scale).astype(np.float32)])
        weights, inverse = None, np.arange(h * w)
    n_distinct = x.shape[0]
    if k is None:
        k = choose_k(x, weights, k_max=min(k_max, n_distinct), seed=seed)
    k = min(k, n_distinct)
    km = _fit(x, weights, k, seed, n_init)
    # Order clusters dark to bright (first feature: R, L or grey) so ids are stable.
    order = np.argsort(km.cluster_centers_[:, 0], kind="stable")
    rank = np.empty(k, np.uint8)
    rank[order] = np.arange(k, dtype=np.uint8)
    labels = rank[km.labels_][inverse].reshape(h, w)
    return KMeansResult(labels, km.cluster_centers_[order], float(km.inertia_), int(k))
