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
    min_distance: int = 7,
    compactness: float = 0.0,
) -> np.ndarray:
    """Split a binary foreground mask into objects.

    Without ``markers``, seeds are the local maxima of the Euclidean distance transform at
    least ``min_distance`` pixels apart (one per object centre); the flooding runs on the
    negated distance, restricted to the mask.

    Parameters
    ----------
    mask : ndarray
        ``(H, W)``; non-zero is foreground.
    markers : ndarray, optional
        ``(H, W)`` integer seeds (0 = none), used instead of the distance peaks.
    min_distance : int
        Minimum distance between automatic seeds, about the smallest object radius.

    Returns
    -------
    ndarray
        ``(H, W)`` int32 object ids, 0 is background.
    """
    m = check_mask(mask)
    if min_distance < 1:
        raise ParameterError(f"watershed: min_distance must be >= 1, got {min_distance}")
    dist = cv2.distanceTransform(m, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    if markers is None:
        cc = cv2.connectedComponents(m, connectivity=8, ltype=cv2.CV_32S)[1]
        peaks = peak_local_max(dist, min_distance=min_distance, labels=cc, exclude_border=False)
        markers = np.zeros(m.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    else:
        markers = np.asarray(markers)
        if markers.shape != m.shape:
            raise ParameterError(
                f"watershed: markers shape {markers.shape} differs from mask shape {m.shape}"
            )
    return sk_watershed(-dist, markers, mask=m.astype(bool), compactness=compactness).astype(np.int32)
