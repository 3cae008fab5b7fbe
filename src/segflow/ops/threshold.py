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


@dataclass(frozen=True)
class ThresholdMethod:
    """One threshold method of the registry :data:`THRESHOLD_METHODS`.

    ``kind``: ``fixed`` (a given ``value``), ``global`` (one level from the histogram, see
    :func:`threshold_value`), ``multi`` (several levels: class ids, not a binary mask) or
    ``local`` (a level per pixel from its neighbourhood). ``binary`` is whether the mask is 0/1.
    """

    name: str
    kind: Literal["fixed", "global", "multi", "local"]
    summary: str

    @property
    def binary(self) -> bool:
        return self.kind != "multi"


#: The one list of threshold methods: ``threshold()``, the pipeline's threshold step, the CLI
#: (``segflow segment otsu``...) and the studio's assist tool all read it.
THRESHOLD_METHODS: dict[str, ThresholdMethod] = {m.name: m for m in (
    ThresholdMethod("fixed", "fixed", "a given level (value)"),
    ThresholdMethod("otsu", "global", "Otsu: least within-class variance"),
    ThresholdMethod("multi_otsu", "multi", "Otsu with classes - 1 levels: class ids"),
    ThresholdMethod("triangle", "global", "triangle: one dominant histogram peak"),
    ThresholdMethod("li", "global", "Li: least cross-entropy"),
    ThresholdMethod("yen", "global", "Yen: greatest correlation"),
    ThresholdMethod("adaptive_mean", "local", "local mean over block_size minus offset"),
    ThresholdMethod("adaptive_gaussian", "local", "local Gaussian mean over block_size minus offset"),
)}
METHODS: tuple[str, ...] = tuple(THRESHOLD_METHODS)
GLOBAL_METHODS: tuple[str, ...] = tuple(n for n, m in THRESHOLD_METHODS.items() if m.kind == "global")
Method = Literal[METHODS]  # type: ignore[valid-type]  # the names of THRESHOLD_METHODS


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
    method : str
        A ``global`` method of :data:`THRESHOLD_METHODS` (otsu, triangle, li, yen) or
        ``multi_otsu``.
    classes : int
        Number of classes for ``multi_otsu`` (returns ``classes - 1`` levels).

    Returns
    -------
    float or list of float
        The level ``t``; the foreground is ``image > t``. A constant image returns its value.
    """
    arr = check_image(image, gray=True)
    info = THRESHOLD_METHODS.get(method) if isinstance(method, str) else None
    if info is None or info.kind not in ("global", "multi"):
        auto = [n for n, m in THRESHOLD_METHODS.items() if m.kind in ("global", "multi")]
        raise ParameterError(
            f"threshold: unknown automatic method {method!r}; use one of {', '.join(auto)}")
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
    raise AssertionError(f"threshold method {method!r} is registered without an implementation")


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
        A name of :data:`THRESHOLD_METHODS`: ``fixed`` (needs ``value``), ``otsu``,
        ``multi_otsu`` (``classes`` classes), ``triangle``, ``li``, ``yen``, ``adaptive_mean``
        or ``adaptive_gaussian`` (local mean over ``block_size`` pixels minus ``offset``).
    invert : bool
        Select pixels at or below the level (dark objects). Ignored by ``multi_otsu``.

    Returns
    -------
    ThresholdResult
    """
    arr = check_image(image, gray=True)
    if not isinstance(method, str) or method not in THRESHOLD_METHODS:
        raise ParameterError(
            f"threshold: unknown method {method!r}; use one of {', '.join(METHODS)}"
        )
    kind = THRESHOLD_METHODS[method].kind
    if kind == "multi":
        levels = threshold_value(arr, method, classes=classes)
        mask = np.digitize(arr, bins=np.asarray(levels), right=True).astype(np.uint8)
        return ThresholdResult(mask, levels)
    if kind == "local":
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
    if kind == "fixed":
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
