"""Blurring and smoothing filters (OpenCV)."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from segflow.errors import ParameterError
from segflow.ops._checks import check_image, odd_ksize


def blur(
    image: np.ndarray,
    method: Literal["gaussian", "median", "bilateral"] = "gaussian",
    *,
    sigma: float = 1.0,
    ksize: int | None = None,
    sigma_color: float = 25.0,
) -> np.ndarray:
    """Smooth an image.

    * ``gaussian``: ``cv2.GaussianBlur`` with standard deviation ``sigma`` (pixels); the kernel
      size defaults to ``2*round(3*sigma)+1``. Borders are reflected (``BORDER_REFLECT_101``).
    * ``median``: ``cv2.medianBlur`` with an odd ``ksize`` (default 3). uint8 takes any size;
      uint16/float32 take 3 or 5 (OpenCV's limit).
    * ``bilateral``: ``cv2.bilateralFilter``, edge-preserving; ``sigma`` is the spatial sigma,
      ``sigma_color`` the range sigma in grey levels (uint8) or intensity units (float32).

    Parameters
    ----------
    image : ndarray
        Grey or colour, uint8, uint16 or float32.

    Returns
    -------
    ndarray
        Same shape and dtype as the input.
    """
    arr = check_image(image)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    if method == "gaussian":
        if sigma <= 0:
            raise ParameterError(f"blur: sigma must be > 0, got {sigma}")
        k = ksize or odd_ksize(sigma)
        if k % 2 == 0:
            raise ParameterError(f"blur: ksize must be odd, got {k}")
        return cv2.GaussianBlur(arr, (k, k), sigmaX=sigma, sigmaY=sigma)
    if method == "median":
        k = ksize or 3
        if k < 3 or k % 2 == 0:
            raise ParameterError(f"blur: median ksize must be odd and >= 3, got {k}")
        if arr.dtype != np.uint8 and k > 5:
            raise ParameterError(
                f"blur: median ksize {k} needs uint8 input (uint16/float allow 3 or 5)"
            )
        if arr.ndim == 3 and arr.shape[2] == 4 and arr.dtype != np.uint8:
            raise ParameterError("blur: median on 4-channel images needs uint8")
        return cv2.medianBlur(arr, k)
    if method == "bilateral":
        if arr.dtype == np.uint16:
            raise ParameterError("blur: bilateral needs uint8 or float32 input")
        d = ksize or odd_ksize(sigma)
        if arr.ndim == 3 and arr.shape[2] == 4:
            out = cv2.bilateralFilter(np.ascontiguousarray(arr[..., :3]), d, sigma_color, sigma)
            return np.dstack([out, arr[..., 3]])
        return cv2.bilateralFilter(arr, d, sigma_color, sigma)
    raise ParameterError(
        f"blur: unknown method {method!r}; use gaussian, median or bilateral"
    )
