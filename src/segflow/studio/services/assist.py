"""Assist tools of the editor, run on the server with segflow's ops and segmenters. Each
returns a binary region (H, W) bool that the editor paints with the current label."""

from __future__ import annotations

import numpy as np

from segflow.errors import SegflowError
from segflow.ops.threshold import THRESHOLD_METHODS

#: The threshold tool's methods: the binary automatic ones of the ops registry (global and
#: local), and ``adaptive``, the editor's button (adaptive_gaussian, block size from the image).
THRESHOLD_TOOL_METHODS: tuple[str, ...] = ("adaptive", *(
    n for n, m in THRESHOLD_METHODS.items() if m.kind in ("global", "local")))


def _point(point, h: int, w: int) -> tuple[int, int]:
    if point is None:
        raise SegflowError("point: this tool needs a clicked point [x, y]")
    x, y = int(point[0]), int(point[1])
    if not (0 <= x < w and 0 <= y < h):
        raise SegflowError(f"point: ({x}, {y}) is outside the {w}x{h} image")
    return x, y


def _box(box, h: int, w: int) -> tuple[int, int, int, int]:
    if box is None:
        raise SegflowError("box: this tool needs a drawn box [x, y, w, h]")
    x, y, bw, bh = (int(round(v)) for v in box)
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(w, x + bw), min(h, y + bh)
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise SegflowError("box: draw a box of at least 4x4 pixels inside the image")
    return x0, y0, x1 - x0, y1 - y0


def _component_at(mask: np.ndarray, x: int, y: int) -> np.ndarray:
    from segflow.ops.regions import label

    ids = label(mask)
    return ids == ids[y, x] if ids[y, x] else np.zeros_like(mask, bool)


def threshold_region(image: np.ndarray, point, *, method: str = "otsu") -> np.ndarray:
    """The connected region under the click, on the clicked side of a threshold of the grey
    image: one of :data:`THRESHOLD_TOOL_METHODS` (Otsu, adaptive Gaussian, ...)."""
    from segflow.ops.color import grayscale
    from segflow.ops.threshold import threshold

    h, w = image.shape[:2]
    x, y = _point(point, h, w)
    gray = grayscale(image) if image.ndim == 3 else image
    if method not in THRESHOLD_TOOL_METHODS:
        raise SegflowError(f"method: {method!r} is not a threshold of this tool; use one of "
                           f"{', '.join(THRESHOLD_TOOL_METHODS)}")
    method = "adaptive_gaussian" if method == "adaptive" else method
    if THRESHOLD_METHODS[method].kind == "local":
        fg = threshold(gray, method, block_size=max(15, (min(h, w) // 16) | 1)).mask.astype(bool)
    else:
        fg = threshold(gray, method).mask.astype(bool)
    side = fg if fg[y, x] else ~fg
    return _component_at(side, x, y)


def kmeans_region(image: np.ndarray, point, *, k: int = 4) -> np.ndarray:
    """The connected region under the click of its k-means colour cluster."""
    from segflow.segment.kmeans import kmeans

    h, w = image.shape[:2]
    x, y = _point(point, h, w)
    labels = kmeans(image, k=k, seed=0).labels
    return _component_at(labels == labels[y, x], x, y)


GRABCUT_MIN_FILL = 0.05  # an object covering less of its box than this counts as not found


def grabcut_region(image: np.ndarray, box) -> np.ndarray:
    """GrabCut (OpenCV) initialised from the drawn box. When the whole-image colour models
    find (almost) nothing, which happens to small objects with look-alikes elsewhere in the
    image, it is run again on the box's surroundings only, upsampled; when that finds nothing
    either, the error says so rather than painting 0 pixels."""
    from segflow.segment.grabcut import grabcut

    h, w = image.shape[:2]
    x, y, bw, bh = _box(box, h, w)
    region = grabcut(image, (x, y, bw, bh)).astype(bool)
    if region.sum() < GRABCUT_MIN_FILL * bw * bh:
        region = grabcut(image, (x, y, bw, bh), context=max(8, max(bw, bh) // 2),
                         min_side=80).astype(bool)
    if region.sum() < GRABCUT_MIN_FILL * bw * bh:
        raise SegflowError(f"box: GrabCut found no object in the {bw}x{bh} box (the inside looks "
                           "like the surroundings); draw the box a few pixels around one "
                           "object, or use Otsu region or the brush")
    return region


def superpixel_region(image: np.ndarray, point, *, n_segments: int = 400) -> np.ndarray:
    """The SLIC superpixel under the click."""
    from segflow.segment.superpixels import slic

    h, w = image.shape[:2]
    x, y = _point(point, h, w)
    labels = slic(image, n_segments=n_segments)
    return labels == labels[y, x]


def run_assist(image: np.ndarray, tool: str, *, point=None, box=None, method="otsu", k=4,
               n_segments=400) -> np.ndarray:
    if tool == "threshold":
        return threshold_region(image, point, method=method)
    if tool == "kmeans":
        return kmeans_region(image, point, k=k)
    if tool == "grabcut":
        return grabcut_region(image, box)
    if tool == "superpixel":
        return superpixel_region(image, point, n_segments=n_segments)
    raise SegflowError(f"tool: unknown assist tool {tool!r}")
