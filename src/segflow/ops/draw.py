"""Overlays for people to look at: masks tinted over the image, boxes and labels drawn on top."""

from __future__ import annotations

import io

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


def draw_disagreement(
    count: np.ndarray,
    k: int,
    image: np.ndarray | None = None,
    *,
    alpha: float = 0.65,
    dim: float = 0.5,
) -> np.ndarray:
    """A heat-map of annotator disagreement over an image.

    Parameters
    ----------
    count : ndarray
        ``(H, W)`` integers: how many of the ``k`` annotators differ from the pixel's majority
        (:class:`segflow.metrics.agreement.Disagreement` ``.count``); 0 is left untinted.
    k : int
        Number of annotators (>= 2); ``k - 1`` is the most that can disagree.
    image : ndarray, optional
        Grey or RGB, any supported dtype, same height and width; mid-grey when absent.
    alpha : float
        Opacity of the tint, 0..1. ``dim``: the image is darkened towards black by this much
        (0..1) so that the colours stand out.

    Returns
    -------
    ndarray
        ``(H, W, 3)`` uint8 RGB: one annotator off is yellow, all of them off is red.
    """
    count = np.asarray(count)
    if count.ndim != 2:
        raise ValueError(f"count must be (H, W), got shape {count.shape}")
    if not (0 <= alpha <= 1 and 0 <= dim <= 1):
        raise ValueError(f"alpha and dim must be in 0..1, got {alpha}, {dim}")
    k = max(int(k), 2)
    if image is None:
        rgb = np.full((*count.shape, 3), 128, np.uint8)
    else:
        rgb = to_display_rgb(image)
        if rgb.shape[:2] != count.shape:
            raise ValueError(f"image is {rgb.shape[1]}x{rgb.shape[0]}, the disagreement map "
                             f"{count.shape[1]}x{count.shape[0]}")
    rgb = cv2.convertScaleAbs(rgb, alpha=1.0 - dim)  # a dimmed copy; never the caller's array
    lut = heat_palette(k)[:, None, :]
    idx = np.minimum(count, 255).astype(np.uint8)
    fg = (idx > 0).view(np.uint8)
    if fg.any():
        colour = cv2.LUT(cv2.merge([idx, idx, idx]), lut)
        blend = cv2.addWeighted(rgb, 1.0 - alpha, colour, alpha, 0.0)
        cv2.copyTo(blend, fg, rgb)
    return rgb


def heat_palette(k: int) -> np.ndarray:
    """``(256, 3)`` uint8 colours for disagreement counts 0..255 of ``k`` annotators: 0 black
    (untinted), then a ramp over 1..k-1 from yellow (255, 220, 0) to red (230, 0, 0)."""
    lut = np.zeros((256, 3), np.uint8)
    t = np.clip((np.arange(256) - 1) / max(int(k) - 2, 1), 0, 1)
    lut[1:, 0] = (255 - 25 * t[1:]).astype(np.uint8)
    lut[1:, 1] = (220 * (1 - t[1:])).astype(np.uint8)
    return lut


def heatmap_png(count: np.ndarray, k: int, *, alpha: float = 0.65) -> bytes:
    """The disagreement heat-map alone as an indexed PNG to lay over the image (in a browser):
    agreeing pixels transparent, the others tinted as in :func:`draw_disagreement` with
    opacity ``alpha``. One byte per pixel, so a 1-MP map encodes in a few milliseconds."""
    from PIL import Image

    count = np.asarray(count)
    if count.ndim != 2:
        raise ValueError(f"count must be (H, W), got shape {count.shape}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in 0..1, got {alpha}")
    idx = np.ascontiguousarray(np.minimum(count, 255), dtype=np.uint8)
    img = Image.frombuffer("P", (idx.shape[1], idx.shape[0]), idx, "raw", "P", 0, 1)
    img.putpalette(heat_palette(k).reshape(-1).tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1,
             transparency=bytes([0] + [int(round(alpha * 255))] * 255))
    return buf.getvalue()


#: colours of :func:`segflow.metrics.agreement.error_kinds`: missed (blue), over-painted (red),
#: wrong class (yellow)
ERROR_COLOURS = ((0, 0, 0), (40, 120, 255), (235, 40, 40), (255, 210, 0))


def error_map_png(kinds: np.ndarray, *, alpha: float = 0.7) -> bytes:
    """An annotation's errors against a reference (``error_kinds``: 0 agree, 1 missed,
    2 over-painted, 3 wrong class) as an indexed PNG to lay over the image: agreeing pixels
    transparent, the others in :data:`ERROR_COLOURS` with opacity ``alpha``."""
    from PIL import Image

    kinds = np.asarray(kinds)
    if kinds.ndim != 2:
        raise ValueError(f"kinds must be (H, W), got shape {kinds.shape}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in 0..1, got {alpha}")
    if kinds.dtype == np.uint8 and (kinds.size == 0 or kinds.max() <= 3):
        idx = np.ascontiguousarray(kinds)
    else:
        idx = np.ascontiguousarray(np.clip(kinds, 0, 3), dtype=np.uint8)
    img = Image.frombuffer("P", (idx.shape[1], idx.shape[0]), idx, "raw", "P", 0, 1)
    img.putpalette([v for c in ERROR_COLOURS for v in c])
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1,
             transparency=bytes([0] + [int(round(alpha * 255))] * 3))
    return buf.getvalue()


def png_bytes(rgb: np.ndarray) -> bytes:
    """An RGB (or grey) uint8 image as PNG bytes (zlib level 1: fast, for web responses)."""
    arr = np.asarray(rgb)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("cannot encode the image as PNG")
    return buf.tobytes()
