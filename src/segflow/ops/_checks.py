"""Shared argument checks for ops (one-line ParameterError messages)."""

from __future__ import annotations

import numpy as np

from segflow.errors import ParameterError

_SUPPORTED = (np.uint8, np.uint16, np.float32, np.float64)


def check_image(image: np.ndarray, name: str = "image", *, gray: bool = False) -> np.ndarray:
    """Return ``image`` as an array, refusing shapes and dtypes the ops do not handle."""
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype.type not in _SUPPORTED:
        raise ParameterError(
            f"{name}: unsupported dtype {arr.dtype}; use uint8, uint16 or float32"
        )
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ParameterError(
            f"{name}: expected (H, W) grey or (H, W, 3|4) colour, got shape {arr.shape}"
        )
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if gray and arr.ndim != 2:
        raise ParameterError(f"{name}: expected a grey (H, W) image; add a grayscale step first")
    if arr.size == 0:
        raise ParameterError(f"{name}: the image is empty (shape {arr.shape})")
    return arr


def check_mask(mask: np.ndarray, name: str = "mask", *, nonzero_ok: bool = False) -> np.ndarray:
    """A 2-D binary mask as uint8 0/1.

    With ``nonzero_ok`` a uint8 mask is returned as it is (no copy), for callers such as
    OpenCV's connected components that read any non-zero value as foreground.
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ParameterError(f"{name}: expected a 2-D mask, got shape {arr.shape}")
    if nonzero_ok and arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.view(np.uint8)
    return (arr != 0).view(np.uint8)


def odd_ksize(sigma: float) -> int:
    """An odd kernel size covering +-3 sigma (OpenCV's own rule for 8-bit images)."""
    k = int(round(sigma * 3)) * 2 + 1
    return max(k, 3)
