"""Pipelines: a validated, ordered list of steps run over files and folders."""

from segflow.pipeline.runner import ImageResult, RunReport, run_image, run_pipeline
from segflow.pipeline.spec import PipelineSpec, Step, load_pipeline, parse_pipeline
from segflow.pipeline.steps import STEPS, State

__all__ = [
    "STEPS",
    "ImageResult",
    "PipelineSpec",
    "RunReport",
    "State",
    "Step",
    "load_pipeline",
    "parse_pipeline",
    "run_image",
    "run_pipeline",
]
