"""The one list of deep models: name -> builder, task, output stride, distance head.

This module imports no torch, so configs, validators and ``--help`` texts read it in the light
install; :func:`segflow.models.create_model` builds from it (and needs the ``deep`` extra).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Task = Literal["semantic", "instance"]


@dataclass(frozen=True)
class ModelInfo:
    """One model family.

    Attributes
    ----------
    name : str
        The ``model.name`` of a training config.
    builder : str
        ``"module:attribute"`` of the constructor (keyword-only arguments), imported on use.
    task : {"semantic", "instance"}
        What it predicts: per-pixel class logits, or torchvision Mask R-CNN detections.
    stride : callable or None
        ``stride(args) -> int``: the input size must be a multiple of it (the model is then
        wrapped to pad any size); ``None`` when the model resizes and pads by itself.
    distance_head : bool
        Whether ``loss.distance_weight > 0`` can add a distance output channel.
    summary : str
        One line for help texts.
    """

    name: str
    builder: str
    task: Task
    stride: Callable[[Mapping[str, Any]], int] | None
    distance_head: bool
    summary: str

    def load_builder(self) -> Callable[..., Any]:
        module, attr = self.builder.split(":")
        return getattr(importlib.import_module(module), attr)


def _unet_stride(args: Mapping[str, Any]) -> int:
    return 2 ** int(args.get("depth", 4))  # one 2x pooling per level; UNet's default depth is 4


MODELS: dict[str, ModelInfo] = {m.name: m for m in (
    ModelInfo("unet", "segflow.models.unet:UNet", "semantic", _unet_stride, True,
              "U-Net (plain or residual blocks), trained from scratch"),
    ModelInfo("deeplabv3plus", "segflow.models.encoder_decoder:DeepLabV3Plus", "semantic",
              lambda args: 32, False, "DeepLabV3+ on a torchvision ResNet/MobileNet backbone"),
    ModelInfo("fpn", "segflow.models.encoder_decoder:FPNSeg", "semantic", lambda args: 32, False,
              "FPN segmentation head on a torchvision ResNet/MobileNet backbone"),
    ModelInfo("maskrcnn", "segflow.models.maskrcnn:mask_rcnn", "instance", None, False,
              "torchvision Mask R-CNN (ResNet/MobileNet FPN backbones)"),
    ModelInfo("unet3d", "segflow.models.unet3d:UNet3D", "semantic", None, False,
              "small 3-D U-Net for NIfTI volumes (pads to its stride itself)"),
)}


def model_names(task: Task | None = None) -> tuple[str, ...]:
    """Names of the registered models, optionally of one task."""
    return tuple(n for n, m in MODELS.items() if task is None or m.task == task)


def model_info(name: str) -> ModelInfo:
    """The registry entry of ``name``; a one-line :class:`SegflowError` naming the choices."""
    from segflow.errors import SegflowError

    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise SegflowError(f"unknown model {name!r}; use one of {', '.join(MODELS)}") from None
