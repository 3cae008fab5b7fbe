"""Connected-component labelling and per-region measurements."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from segflow.errors import ParameterError
from segflow.ops._checks import check_mask

_BAND = 1024  # rows per band when accumulating sums, so memory stays bounded on huge images


def label(mask: np.ndarray, *, connectivity: int = 8, raster_order: bool = False) -> np.ndarray:
    """Label the connected components of a binary mask (OpenCV connected components).

    Parameters
    ----------
    mask : ndarray
        ``(H, W)``; non-zero pixels are foreground.
    connectivity : {4, 8}
        4: edge neighbours only; 8: edges and corners.
    raster_order : bool
        Number objects in raster order of their first pixel, exactly as
        ``skimage.measure.label`` does (OpenCV's SAUF algorithm, about 2x slower). By default
        OpenCV's fastest algorithm is used: the same objects, numbered in its block-scan order.

    Returns
    -------
    ndarray
        ``(H, W)`` int32; 0 is background, objects are 1..N.
    """
    if connectivity not in (4, 8):
        raise ParameterError(f"label: connectivity must be 4 or 8, got {connectivity}")
    m = check_mask(mask, nonzero_ok=True)
    algo = cv2.CCL_WU if raster_order else cv2.CCL_DEFAULT
    _, labels = cv2.connectedComponentsWithAlgorithm(m, connectivity, cv2.CV_32S, algo)
    return labels


@dataclass(frozen=True)
class Region:
    """Measurements of one labelled region.

    ``bbox`` is ``[x, y, width, height]`` in pixels (x = column, y = row);
    ``centroid`` is ``[x, y]``; ``mean_intensity`` is a float for grey images, a list per
    channel for colour ones, ``None`` when no image was given.
    """

    label: int
    bbox: list[int]
    area: int
    centroid: list[float]
    mean_intensity: float | list[float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def regions(labels: np.ndarray, image: np.ndarray | None = None) -> list[Region]:
    """Measure every labelled region: bounding box, area, centroid and mean intensity.

    Parameters
    ----------
    labels : ndarray
        ``(H, W)`` non-negative integer labels; 0 is background.
    image : ndarray, optional
        ``(H, W)`` or ``(H, W, C)`` intensities for ``mean_intensity``.

    Returns
    -------
    list of Region
        One per label present, sorted by label.
    """
    lab = np.asarray(labels)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer):
        raise ParameterError(f"regions: labels must be a 2-D integer array, got {lab.dtype} {lab.shape}")
    if lab.size and lab.min() < 0:
        raise ParameterError("regions: labels must be >= 0")
    if image is not None:
        image = np.asarray(image)
        if image.shape[:2] != lab.shape:
            raise ParameterError(
                f"regions: image shape {image.shape[:2]} differs from labels shape {lab.shape}"
            )
    n = int(lab.max()) if lab.size else 0
    if n == 0:
        return []
    h, w = lab.shape
    nch = 0 if image is None else (1 if image.ndim == 2 else image.shape[2])
    area = np.zeros(n + 1, np.float64)
    sx = np.zeros(n + 1, np.float64)
    sy = np.zeros(n + 1, np.float64)
    si = np.zeros((max(nch, 1), n + 1), np.float64)
    cols = np.arange(w, dtype=np.float64)
    for r0 in range(0, h, _BAND):
        band = lab[r0:r0 + _BAND]
        flat = band.ravel()
        bh = band.shape[0]
        area += np.bincount(flat, minlength=n + 1)
        sx += np.bincount(flat, weights=np.broadcast_to(cols, band.shape).ravel(), minlength=n + 1)
        rows = np.repeat(np.arange(r0, r0 + bh, dtype=np.float64), w)
        sy += np.bincount(flat, weights=rows, minlength=n + 1)
        if image is not None:
            ib = image[r0:r0 + _BAND].reshape(bh * w, -1)
            for c in range(nch):
                si[c] += np.bincount(flat, weights=ib[:, c].astype(np.float64), minlength=n + 1)
    from scipy import ndimage  # imported here: it costs 0.15 s, and workers start faster

    slices = ndimage.find_objects(lab)
    out: list[Region] = []
    for i, sl in enumerate(slices, start=1):
        if sl is None:
            continue
        a = area[i]
        mean = None
        if image is not None:
            vals = [float(si[c, i] / a) for c in range(nch)]
            mean = vals[0] if nch == 1 else vals
        out.append(Region(
            label=i,
            bbox=[sl[1].start, sl[0].start, sl[1].stop - sl[1].start, sl[0].stop - sl[0].start],
            area=int(a),
            centroid=[float(sx[i] / a), float(sy[i] / a)],
            mean_intensity=mean,
        ))
    return out
