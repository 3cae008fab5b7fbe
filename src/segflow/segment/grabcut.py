"""GrabCut foreground extraction from a box (OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

from segflow.errors import ParameterError
from segflow.ops._checks import check_image
from segflow.ops.draw import to_display_rgb


def grabcut(
    image: np.ndarray, box: list[int] | tuple[int, int, int, int], *, iterations: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Segment the object inside ``box`` = ``[x, y, width, height]`` with GrabCut.

    Colour models (Gaussian mixtures) of the object and the background are fitted and refined
    by graph cuts; everything outside the box is background.

    Parameters
    ----------
    image : ndarray
        Grey or RGB(A); converted to 8-bit RGB as OpenCV requires.
    iterations : int
        GrabCut iterations (5 is OpenCV's usual choice).

    Returns
    -------
    ndarray
        ``(H, W)`` uint8, 1 for the object, 0 elsewhere.
    """
    rgb = to_display_rgb(check_image(image))
    h, w = rgb.shape[:2]
    if len(box) != 4:
        raise ParameterError(f"grabcut: box must be [x, y, width, height], got {box}")
    x, y, bw, bh = (int(v) for v in box)
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + bw, w), min(y + bh, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ParameterError(f"grabcut: box {list(box)} is empty or outside the {w}x{h} image")
    if (x0, y0, x1, y1) == (0, 0, w, h):
        # a box over the whole image (a drag past every edge) leaves GrabCut no background
        # sample: take the image's outer frame, 2% of the shorter side, as the background
        m = max(1, min(w, h) // 50)
        if w <= 2 * m + 1 or h <= 2 * m + 1:
            raise ParameterError(f"grabcut: the {w}x{h} image is too small for a box over all of it")
        x0, y0, x1, y1 = m, m, w - m, h - m
    if iterations < 1:
        raise ParameterError(f"grabcut: iterations must be >= 1, got {iterations}")
    cv2.setRNGSeed(seed)
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    cv2.grabCut(bgr, mask, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
