"""Mask R-CNN (torchvision) with a selectable backbone, built from random initialisation.

The input/output contract is torchvision's: in training, ``model(images, targets)`` with
``images`` a list of ``(3, H, W)`` float tensors in 0..1 and ``targets`` a list of dicts
(``boxes`` ``(N, 4)`` xyxy float, ``labels`` ``(N,)`` int64 >= 1, ``masks`` ``(N, H, W)``
uint8) returns a dict of losses; an image with no objects has ``N = 0`` and trains without
NaNs (torchvision samples background proposals only). In eval, ``model(images)`` returns per
image ``boxes``, ``labels``, ``scores`` and ``masks`` ``(N, 1, H, W)`` probabilities.
"""

from __future__ import annotations

from torchvision.models import mobilenet_v3_large, resnet18, resnet50
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import (
    _mobilenet_extractor,
    _resnet_fpn_extractor,
)

BACKBONES = ("resnet18_fpn", "resnet50_fpn", "mobilenet_v3_fpn")


def mask_rcnn(*, num_classes: int, backbone: str = "resnet18_fpn", min_size: int = 256,
              max_size: int = 512, trainable_layers: int = 5, **kwargs) -> MaskRCNN:
    """``num_classes`` counts the background: things + 1."""
    if backbone == "resnet18_fpn":
        body = _resnet_fpn_extractor(resnet18(weights=None), trainable_layers)
    elif backbone == "resnet50_fpn":
        body = _resnet_fpn_extractor(resnet50(weights=None), trainable_layers)
    elif backbone == "mobilenet_v3_fpn":
        body = _mobilenet_extractor(mobilenet_v3_large(weights=None), True, trainable_layers)
    else:
        raise ValueError(f"unknown Mask R-CNN backbone {backbone!r}; use {', '.join(BACKBONES)}")
    return MaskRCNN(body, num_classes=num_classes, min_size=min_size, max_size=max_size,
                    **kwargs)
