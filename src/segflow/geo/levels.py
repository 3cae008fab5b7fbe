"""Global thresholds of a raster too large to hold: levels from a 256-bin histogram summed over
windows, equal to what :func:`segflow.ops.threshold_value` returns on the whole 8-bit image.

Otsu on 8-bit images runs in OpenCV, which takes no histogram, so :func:`otsu_8u` is a line-by-
line port of OpenCV's ``getThreshVal_Otsu_8u`` (same double arithmetic in the same order, so the
same level). The one departure: a histogram whose between-class variance ties exactly at two
levels (a symmetric histogram of a few grey values) may get the other of the two, as OpenCV's
compiled arithmetic (fused multiply-adds) rounds the tie differently. Yen and multi-Otsu call
scikit-image with ``hist=``, given the histogram trimmed to the image's min..max exactly as
scikit-image bins an integer image.
"""

from __future__ import annotations

import numpy as np

#: Automatic threshold methods a windowed run can compute from a streamed histogram.
STREAMED = ("otsu", "yen", "multi_otsu")

_FLT_EPSILON = float(np.finfo(np.float32).eps)


def otsu_8u(hist: np.ndarray) -> float:
    """OpenCV's Otsu level from a 256-bin histogram (foreground: ``image > level``)."""
    h = [int(v) for v in hist]
    n = sum(h)
    scale = 1.0 / n
    mu = 0.0
    for i in range(256):
        mu += i * float(h[i])
    mu *= scale
    mu1 = q1 = 0.0
    max_sigma = max_val = 0.0
    for i in range(256):
        p_i = h[i] * scale
        mu1 *= q1
        q1 += p_i
        q2 = 1.0 - q1
        if min(q1, q2) < _FLT_EPSILON or max(q1, q2) > 1.0 - _FLT_EPSILON:
            continue
        mu1 = (mu1 + i * p_i) / q1
        mu2 = (mu - q1 * mu1) / q2
        sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2)
        if sigma > max_sigma:
            max_sigma = sigma
            max_val = float(i)
    return max_val


def level_from_hist(hist: np.ndarray, method: str, *, classes: int = 3) -> float | list[float]:
    """The level of ``method`` for an 8-bit image with this 256-bin histogram.

    An empty histogram (no valid pixel) gives 0; a single grey value gives that value, as
    :func:`segflow.ops.threshold_value` does for a constant image.
    """
    from skimage import filters as skfilters

    from segflow.errors import ParameterError

    hist = np.asarray(hist, np.int64)
    nz = np.flatnonzero(hist)
    if nz.size <= 1:
        v = float(nz[0]) if nz.size else 0.0
        return [v] * (classes - 1) if method == "multi_otsu" else v
    lo, hi = int(nz[0]), int(nz[-1])
    trimmed = (hist[lo:hi + 1], np.arange(lo, hi + 1))
    if method == "otsu":
        return otsu_8u(hist)
    if method == "yen":
        return float(skfilters.threshold_yen(hist=trimmed))
    if method == "multi_otsu":
        try:
            # scikit-image normalises an image's histogram before multi-Otsu: do the same.
            prob = (trimmed[0] / np.sum(trimmed[0]), trimmed[1])
            return [float(v) for v in skfilters.threshold_multiotsu(classes=classes, hist=prob)]
        except ValueError as e:
            raise ParameterError(f"threshold: multi_otsu failed ({e}); lower classes") from None
    raise ParameterError(f"threshold: {method!r} cannot be computed from a streamed histogram; "
                         f"use one of {', '.join(STREAMED)} or fixed")
