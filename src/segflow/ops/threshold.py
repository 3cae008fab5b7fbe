"""Thresholds: a fixed value or one chosen automatically from the histogram.

Convention (as scikit-image): the foreground is ``image > t``. ``invert=True`` selects dark
objects instead. 8-bit Otsu, triangle and adaptive thresholds run in OpenCV (fast); the other
methods and dtypes use scikit-image's implementations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from skimage import filters as skfilters

from segflow.errors import ParameterError
from segflow.ops._checks import check_image

Method = Literal[
    "fixed", "otsu", "multi_otsu", "triangle", "li", "yen", "adaptive_mean", "adaptive_gaussian"
]
METHODS: tuple[str, ...] = (
    "fixed", "otsu", "multi_otsu", "triangle", "li", "yen", "adaptive_mean", "adaptive_gaussian",
)
GLOBAL_METHODS = ("otsu", "triangle", "li", "yen")


@dataclass(frozen=True)
class ThresholdResult:
    """A thresholded image.

    ``mask`` is uint8: 0/1 for binary methods, class ids 0..classes-1 for ``multi_otsu``.
    ``threshold`` is the level used (a list of levels for ``multi_otsu``; ``None`` for the
    adaptive methods, whose level varies per pixel).
    """

    mask: np.ndarray
    threshold: float | list[float] | None


def _not_constant(arr: np.ndarray) -> bool:
    lo, hi, _, _ = cv2.minMaxLoc(arr)  # one pass, faster than NumPy's min() and max()
    return lo != hi


def threshold_value(image: np.ndarray, method: str = "otsu", *, classes: int = 3):
    """The automatic threshold level of a grey image.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` uint8, uint16 or float.
    method : {"otsu", "triangle", "li", "yen", "multi_otsu"}
    classes : int
        Number of classes for ``multi_otsu`` (returns ``classes - 1`` levels).

    Returns
    -------
    float or list of float
        The level ``t``; the foreground is ``image > t``. A constant image returns its value.
    """
    arr = check_image(image, gray=True)
    lo, hi = arr.min(), arr.max()
    if lo == hi:  # constant image: nothing to separate; every pixel is background
        return [float(lo)] * (classes - 1) if method == "multi_otsu" else float(lo)
    if method == "otsu":
        if arr.dtype == np.uint8:
            t, _ = cv2.threshold(arr, 0, 1, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
            return float(t)
        return float(skfilters.threshold_otsu(arr))
    if method == "triangle":
        if arr.dtype == np.uint8:
            t, _ = cv2.threshold(arr, 0, 1, cv2.THRESH_BINARY | cv2.THRESH_TRIANGLE)
            return float(t)
        return float(skfilters.threshold_triangle(arr))
    if method == "li":
        return float(skfilters.threshold_li(arr))
    if method == "yen":
        return float(skfilters.threshold_yen(arr))
    if method == "multi_otsu":
        if not 2 <= classes <= 5:
            raise ParameterError(f"threshold: classes must be 2..5 for multi_otsu, got {classes}")
        try:
            levels = skfilters.threshold_multiotsu(arr, classes=classes)
        except ValueError as e:
            raise ParameterError(f"threshold: multi_otsu failed ({e}); lower classes") from None
        return [float(v) for v in levels]
    raise ParameterError(
        f"threshold: unknown automatic method {method!r}; use one of {', '.join(GLOBAL_METHODS)}"
    )


def threshold(
    image: np.ndarray,
    method: Method = "otsu",
    *,
    value: float | None = None,
    classes: int = 3,
    block_size: int = 35,
    offset: float = 0.0,
    invert: bool = False,
) -> ThresholdResult:
    """Threshold a grey image into a mask.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` uint8, uint16 or float; colour images must be converted with ``grayscale``.
    method : str
        ``fixed`` (needs ``value``), ``otsu``, ``multi_otsu`` (``classes`` classes),
        ``triangle``, ``li``, ``yen``, ``adaptive_mean`` or ``adaptive_gaussian``
        (local mean over ``block_size`` pixels minus ``offset``).
    invert : bool
        Select pixels at or below the level (dark objects). Ignored by ``multi_otsu``.

    Returns
    -------
    ThresholdResult
    """
    arr = check_image(image, gray=True)
    if method not in METHODS:
        raise ParameterError(
            f"threshold: unknown method {method!r}; use one of {', '.join(METHODS)}"
        )
    if method == "multi_otsu":
        levels = threshold_value(arr, "multi_otsu", classes=classes)
        mask = np.digitize(arr, bins=np.asarray(levels), right=True).astype(np.uint8)
        return ThresholdResult(mask, levels)
    if method.startswith("adaptive"):
        if block_size < 3 or block_size % 2 == 0:
            raise ParameterError(f"threshold: block_size must be odd and >= 3, got {block_size}")
        if arr.dtype == np.uint8:
            am = (cv2.ADAPTIVE_THRESH_MEAN_C if method == "adaptive_mean"
                  else cv2.ADAPTIVE_THRESH_GAUSSIAN_C)
            tt = cv2.THRESH_BINARY_INV if invert else cv2.THRESH_BINARY
            return ThresholdResult(cv2.adaptiveThreshold(arr, 1, am, tt, block_size, offset), None)
        local = skfilters.threshold_local(
            arr, block_size, method="mean" if method == "adaptive_mean" else "gaussian",
            offset=offset,
        )
        mask = arr <= local if invert else arr > local
        return ThresholdResult(mask.view(np.uint8), None)
    if method == "fixed":
        if value is None:
            raise ParameterError("threshold: method 'fixed' needs a value, e.g. value: 128")
        t = float(value)
    elif method == "otsu" and arr.dtype == np.uint8 and _not_constant(arr):
        # One OpenCV call computes the level and applies it.
        tt = cv2.THRESH_BINARY_INV if invert else cv2.THRESH_BINARY
        t, mask = cv2.threshold(arr, 0, 1, tt | cv2.THRESH_OTSU)
        return ThresholdResult(mask, float(t))
    else:
        t = threshold_value(arr, method)
    if arr.dtype == np.uint8:
        tt = cv2.THRESH_BINARY_INV if invert else cv2.THRESH_BINARY
        # cv2 compares src > thresh; for uint8 a fractional level is floored first.
        _, mask = cv2.threshold(arr, float(np.floor(t)), 1, tt)
        return ThresholdResult(mask, t)
    mask = arr <= t if invert else arr > t
    return ThresholdResult(mask.view(np.uint8), t)
