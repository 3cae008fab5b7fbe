"""segflow: raw images to pixel-level segmentations, reviewed datasets and trained models."""

from segflow.errors import SegflowError

__version__ = "0.1.0"
__all__ = ["SegflowError", "__version__"]
