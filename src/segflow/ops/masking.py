"""Applying segmentation masks to images."""

from __future__ import annotations

import numpy as np

from segflow.errors import ParameterError
from segflow.ops._checks import check_image, check_mask


def apply_mask(image: np.ndarray, mask: np.ndarray, *, fill: float = 0) -> np.ndarray:
    """Keep the pixels under ``mask`` and set the rest to ``fill``.

    Parameters
    ----------
    image : ndarray
        Grey or colour, any supported dtype.
    mask : ndarray
        ``(H, W)``; non-zero means keep.

    Returns
    -------
    ndarray
        Same shape and dtype as ``image``.
    """
    arr = check_image(image)
    m = check_mask(mask)
    if m.shape != arr.shape[:2]:
        raise ParameterError(
            f"apply_mask: mask shape {m.shape} differs from image shape {arr.shape[:2]}"
        )
    out = arr.copy()
    out[m == 0] = fill
    return out
