"""GrabCut foreground extraction from a box (OpenCV)."""

from __future__ import annotations

import cv2
import numpy as np

from segflow.errors import ParameterError
from segflow.ops._checks import check_image
from segflow.ops.draw import to_display_rgb


def grabcut(
    image: np.ndarray, box: list[int] | tuple[int, int, int, int], *, iterations: int = 5,
    seed: int = 0, context: int | None = None, min_side: int = 0,
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
    context : int or None
        Fit the background model on a band of this many pixels around the box only, not on
        the whole image. A small object next to look-alikes elsewhere in the image (identical
        cans on a shelf) is otherwise taken for background, and nothing is found.
    min_side : int
        Upsample the cropped region (bicubic) until the box's longer side has this many
        pixels, so the colour models of a small box have enough samples; the mask is brought
        back to the image's size by area averaging. 0: never.

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
    if context is not None or min_side > 0:
        m = max(int(context or 0), 1) if context is not None else max(h, w)
        cx0, cy0, cx1, cy1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
        crop = rgb[cy0:cy1, cx0:cx1]
        f = max(1.0, min_side / max(x1 - x0, y1 - y0))
        if f > 1:
            crop = cv2.resize(crop, None, fx=f, fy=f, interpolation=cv2.INTER_CUBIC)
        fx, fy = crop.shape[1] / (cx1 - cx0), crop.shape[0] / (cy1 - cy0)
        sub = grabcut(crop, [int((x0 - cx0) * fx), int((y0 - cy0) * fy),
                             max(2, int((x1 - x0) * fx)), max(2, int((y1 - y0) * fy))],
                      iterations=iterations, seed=seed)
        if f > 1:
            sub = (cv2.resize(sub.astype(np.float32), (cx1 - cx0, cy1 - cy0),
                              interpolation=cv2.INTER_AREA) >= 0.5).astype(np.uint8)
        out = np.zeros((h, w), np.uint8)
        out[cy0:cy1, cx0:cx1] = sub
        return out
    cv2.setRNGSeed(seed)
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    cv2.grabCut(bgr, mask, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    return ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
