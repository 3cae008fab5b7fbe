"""Evaluation metrics, accumulated image by image in constant memory."""

from segflow.metrics.panoptic import PanopticEvaluator, PanopticResult
from segflow.metrics.semantic import (
    SemanticEvaluator,
    SemanticResult,
    boundary_f1,
    majority_mapping,
)

__all__ = [
    "PanopticEvaluator",
    "PanopticResult",
    "SemanticEvaluator",
    "SemanticResult",
    "boundary_f1",
    "majority_mapping",
]
