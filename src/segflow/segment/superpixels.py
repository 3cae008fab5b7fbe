"""SLIC superpixels (scikit-image)."""

from __future__ import annotations

import numpy as np
from skimage.segmentation import slic as sk_slic

from segflow.errors import ParameterError
from segflow.ops._checks import check_image


def slic(
    image: np.ndarray, *, n_segments: int = 200, compactness: float = 10.0, sigma: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Group pixels into about ``n_segments`` compact superpixels of similar colour.

    Parameters
    ----------
    image : ndarray
        Grey or RGB(A) image, uint8/uint16/float (scikit-image rescales to [0, 1]).
    compactness : float
        Balance of colour and space; higher gives more square superpixels (Lab units for
        colour images).

    Returns
    -------
    ndarray
        ``(H, W)`` int32 superpixel ids starting at 1.
    """
    arr = check_image(image)
    if n_segments < 1 or compactness <= 0:
        raise ParameterError("slic: n_segments must be >= 1 and compactness > 0")
    if arr.ndim == 3:
        arr = arr[..., :3]
    del seed  # SLIC is deterministic; kept for a uniform segmenter signature
    return sk_slic(
        arr, n_segments=n_segments, compactness=compactness, sigma=sigma, start_label=1,
        channel_axis=-1 if arr.ndim == 3 else None,
    ).astype(np.int32)
