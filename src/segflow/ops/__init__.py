"""Preprocessing operations: pure functions on NumPy arrays.

Each function states the dtypes and value ranges it accepts and returns. They wrap OpenCV or
scikit-image wherever those do the job; see each docstring.
"""

from segflow.ops.color import clahe, grayscale, normalize
from segflow.ops.draw import draw_overlay
from segflow.ops.filters import blur
from segflow.ops.masking import apply_mask
from segflow.ops.morphology import close, fill_holes, open, remove_small_objects
from segflow.ops.regions import Region, label, regions
from segflow.ops.threshold import ThresholdResult, threshold, threshold_value

__all__ = [
    "Region",
    "ThresholdResult",
    "apply_mask",
    "blur",
    "clahe",
    "close",
    "draw_overlay",
    "fill_holes",
    "grayscale",
    "label",
    "normalize",
    "open",
    "regions",
    "remove_small_objects",
    "threshold",
    "threshold_value",
]
