"""Watershed: split touching objects (scikit-image's watershed on a distance transform)."""

from __future__ import annotations

import cv2
import numpy as np
from skimage.feature import peak_local_max
from skimage.segmentation import watershed as sk_watershed

from segflow.errors import ParameterError
from segflow.ops._checks import check_mask


def watershed(
    mask: np.ndarray,
    *,
    markers: np.ndarray | None = None,
    distance: np.ndarray | None = None,
    min_distance: int = 7,
    compactness: float = 0.0,
    min_peak: float | None = None,
) -> np.ndarray:
    """Split a binary foreground mask into objects.

    Without ``markers``, seeds are the local maxima of ``distance`` (by default the Euclidean
    distance transform of the mask) at least ``min_distance`` pixels apart, one per object
    centre; a connected component without such a peak still gets one seed, so it stays one
    object. The flooding runs on the negated distance, restricted to the mask. This is the one
    splitter of segflow: the pipeline's ``watershed`` step and the instances made from a semantic
    model's prediction (:func:`segflow.models.panoptic.instances_from_semantic`) both call it.

    Parameters
    ----------
    mask : ndarray
        ``(H, W)``; non-zero is foreground.
    markers : ndarray, optional
        ``(H, W)`` integer seeds (0 = none), used instead of the distance peaks.
    distance : ndarray, optional
        ``(H, W)`` float map whose peaks are object centres, e.g. the distance map a U-Net
        with a distance head predicts; values outside the mask are ignored.
    min_distance : int
        Minimum distance between automatic seeds, about the smallest object radius.
    min_peak : float, optional
        Seeds only at peaks of ``distance`` at least this high (a learned map that is 1 at
        object centres: its flat, near-zero stretches have many tiny local maxima that would
        cut one object into pieces). A component with no such peak stays one object.

    Returns
    -------
    ndarray
        ``(H, W)`` int32 object ids, 0 is background.
    """
    m = check_mask(mask)
    if min_distance < 1:
        raise ParameterError(f"watershed: min_distance must be >= 1, got {min_distance}")
    if distance is None:
        dist = cv2.distanceTransform(m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    else:
        dist = np.asarray(distance, dtype=np.float32)
        if dist.shape != m.shape:
            raise ParameterError(
                f"watershed: distance shape {dist.shape} differs from mask shape {m.shape}")
        if not np.isfinite(dist).all():
            raise ParameterError("watershed: distance has NaN or infinite values")
        dist = np.where(m > 0, dist, np.float32(0))
    if markers is None:
        n_cc, cc = cv2.connectedComponents(m, connectivity=8, ltype=cv2.CV_32S)
        if min_peak is not None and not np.isfinite(min_peak):
            raise ParameterError(f"watershed: min_peak must be a finite number, got {min_peak}")
        peaks = peak_local_max(dist, min_distance=min_distance, labels=cc, exclude_border=False,
                               threshold_abs=min_peak)
        markers = np.zeros(m.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
        # A component without a peak (flat, or all of it under another's min_distance): one seed
        # at its first pixel, so it is kept as one object rather than flooded by a neighbour.
        seeded = np.zeros(n_cc, bool)
        seeded[cc[markers > 0]] = True
        seeded[0] = True
        missing = np.flatnonzero(~seeded)
        if len(missing):
            flat = cc.ravel()
            order = np.argsort(flat, kind="stable")
            first = order[np.searchsorted(flat[order], missing)]
            markers.ravel()[first] = np.arange(len(peaks) + 1, len(peaks) + 1 + len(missing),
                                               dtype=np.int32)
    else:
        markers = np.asarray(markers)
        if markers.shape != m.shape:
            raise ParameterError(
                f"watershed: markers shape {markers.shape} differs from mask shape {m.shape}"
            )
    return sk_watershed(-dist, markers, mask=m.astype(bool), compactness=compactness).astype(np.int32)
