"""Colour conversion and intensity normalisation."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from segflow.errors import ParameterError
from segflow.ops._checks import check_image

#: ITU-R BT.601 luma weights, the ones OpenCV's ``cvtColor(RGB2GRAY)`` and Pillow use.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def grayscale(image: np.ndarray) -> np.ndarray:
    """Convert an RGB(A) image to grey with BT.601 luma ``Y = 0.299 R + 0.587 G + 0.114 B``.

    Parameters
    ----------
    image : ndarray
        ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA (alpha ignored), uint8, uint16 or float32;
        a grey ``(H, W)`` image is returned unchanged.

    Returns
    -------
    ndarray
        ``(H, W)`` of the input dtype and range (integers are rounded, as OpenCV does).
    """
    arr = check_image(image)
    if arr.ndim == 2:
        return arr
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    code = cv2.COLOR_RGBA2GRAY if arr.shape[2] == 4 else cv2.COLOR_RGB2GRAY
    return cv2.cvtColor(arr, code)


def normalize(
    image: np.ndarray,
    method: Literal["minmax", "zscore", "percentile"] = "minmax",
    *,
    low: float = 1.0,
    high: float = 99.0,
    dtype: Literal["float32", "uint8"] = "float32",
) -> np.ndarray:
    """Normalise intensities.

    * ``minmax``: ``(x - min) / (max - min)`` to [0, 1].
    * ``percentile``: clip to the ``low``/``high`` percentiles, then scale to [0, 1].
    * ``zscore``: ``(x - mean) / std``, zero mean and unit variance (``dtype`` must be float32).

    A constant image maps to zeros. Colour images are normalised over all channels together.

    Parameters
    ----------
    image : ndarray, uint8/uint16/float
    dtype : {"float32", "uint8"}
        float32 keeps [0, 1] (z-score: unbounded); uint8 rescales [0, 1] to 0..255.
    """
    arr = check_image(image)
    if method not in ("minmax", "zscore", "percentile"):
        raise ParameterError(
            f"normalize: unknown method {method!r}; use minmax, zscore or percentile"
        )
    if not 0 <= low < high <= 100:
        raise ParameterError(f"normalize: need 0 <= low < high <= 100, got {low}, {high}")
    x = arr.astype(np.float32)
    if method == "zscore":
        if dtype != "float32":
            raise ParameterError("normalize: zscore output is unbounded; use dtype float32")
        std = float(x.std())
        return (x - float(x.mean())) / std if std > 0 else np.zeros_like(x)
    if method == "minmax":
        lo, hi = float(x.min()), float(x.max())
    else:
        lo, hi = (float(v) for v in np.percentile(x, [low, high]))
    if hi <= lo:
        out = np.zeros_like(x)
    else:
        out = np.clip((x - lo) / (hi - lo), 0.0, 1.0, out=x)
    if dtype == "uint8":
        return np.rint(out * 255).astype(np.uint8)
    return out


def clahe(image: np.ndarray, *, clip_limit: float = 2.0, tile_grid: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation (OpenCV's CLAHE).

    Grey uint8/uint16 images are equalised directly; RGB uint8 images on the L channel of Lab,
    so hues are kept. Returns the input dtype and shape.
    """
    arr = check_image(image)
    if clip_limit <= 0 or tile_grid < 1:
        raise ParameterError("clahe: clip_limit must be > 0 and tile_grid >= 1")
    if arr.dtype not in (np.uint8, np.uint16):
        raise ParameterError(
            "clahe: needs uint8 or uint16 input; add normalize with dtype uint8 first"
        )
    op = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(tile_grid, tile_grid))
    if arr.ndim == 2:
        return op.apply(arr)
    if arr.dtype != np.uint8:
        raise ParameterError("clahe: colour images must be uint8")
    rgb = arr[..., :3]
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lab[..., 0] = op.apply(np.ascontiguousarray(lab[..., 0]))
    out = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    if arr.shape[2] == 4:
        out = np.dstack([out, arr[..., 3]])
    return out
