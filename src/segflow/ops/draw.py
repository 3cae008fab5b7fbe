"""Overlays for people to look at: masks tinted over the image, boxes and labels drawn on top."""

from __future__ import annotations

import cv2
import numpy as np

from segflow.io import default_palette
from segflow.ops._checks import check_image

_BAND = 1024  # rows per band: the overlay of a 100 MP image never needs float copies of it


def to_display_rgb(image: np.ndarray) -> np.ndarray:
    """Any supported image as uint8 RGB for display (16-bit and float are min-max scaled)."""
    arr = check_image(image)
    if arr.dtype != np.uint8:
        x = arr.astype(np.float32)
        lo, hi = float(x.min()), float(x.max())
        arr = np.zeros(x.shape, np.uint8) if hi <= lo else ((x - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    if arr.ndim == 2:
        return cv2.cvtColor(arr, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(arr[..., :3])


def draw_overlay(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    labels: np.ndarray | None = None,
    boxes: list[list[int]] | None = None,
    alpha: float = 0.5,
    palette: np.ndarray | None = None,
    box_color: tuple[int, int, int] = (255, 255, 0),
    thickness: int = 2,
    show_ids: bool = True,
) -> np.ndarray:
    """Tint classes (``mask``) or objects (``labels``) over an image and draw boxes.

    Parameters
    ----------
    image : ndarray
        Grey or RGB, any supported dtype.
    mask : ndarray, optional
        ``(H, W)`` class ids; class 0 (background) is left untinted.
    labels : ndarray, optional
        ``(H, W)`` object ids, each tinted in its own colour (takes precedence over ``mask``).
    boxes : list of [x, y, w, h], optional
    alpha : float
        Opacity of the tint, 0..1.

    Returns
    -------
    ndarray
        ``(H, W, 3)`` uint8 RGB.
    """
    rgb = to_display_rgb(image)
    if np.shares_memory(rgb, image) or not rgb.flags.writeable:
        rgb = rgb.copy()  # never draw on the caller's array
    ids = labels if labels is not None else mask
    if ids is not None:
        pal = default_palette() if palette is None else np.asarray(palette, np.uint8)
        lut = np.zeros((256, 1, 3), np.uint8)
        lut[: min(len(pal), 256), 0] = pal[:256]
        for r0 in range(0, rgb.shape[0], _BAND):
            band = rgb[r0:r0 + _BAND]
            a = np.asarray(ids[r0:r0 + _BAND])
            if labels is not None:  # object ids cycle through colours 1..255, skipping black
                idx = np.where(a > 0, (a - 1) % 255 + 1, 0).astype(np.uint8)
            else:
                idx = np.minimum(a, 255).astype(np.uint8, copy=False)
            fg = (idx > 0).view(np.uint8)
            if not fg.any():
                continue
            colour = cv2.LUT(cv2.merge([idx, idx, idx]), lut)
            blend = cv2.addWeighted(band, 1.0 - alpha, colour, alpha, 0.0)
            cv2.copyTo(blend, fg, band)
    for i, b in enumerate(boxes or []):
        x, y, w, h = (int(v) for v in b[:4])
        cv2.rectangle(rgb, (x, y), (x + w - 1, y + h - 1), box_color, thickness)
        if show_ids:
            cv2.putText(rgb, str(i + 1), (x, max(y - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        box_color, 1, cv2.LINE_AA)
    return rgb
