"""Mask R-CNN (torchvision) with a selectable backbone, built from random initialisation.

The input/output contract is torchvision's: in training, ``model(images, targets)`` with
``images`` a list of ``(3, H, W)`` float tensors in 0..1 and ``targets`` a list of dicts
(``boxes`` ``(N, 4)`` xyxy float, ``labels`` ``(N,)`` int64 >= 1, ``masks`` ``(N, H, W)``
uint8) returns a dict of losses; an image with no objects has ``N = 0`` and trains without
NaNs (torchvision samples background proposals only). In eval, ``model(images)`` returns per
image ``boxes``, ``labels``, ``scores`` and ``masks`` ``(N, 1, H, W)`` probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

from torchvision.models import mobilenet_v3_large, resnet18, resnet50
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import (
    _mobilenet_extractor,
    _resnet_fpn_extractor,
)
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

BACKBONES = ("resnet18_fpn", "resnet50_fpn", "mobilenet_v3_fpn")


def mask_rcnn(*, num_classes: int, backbone: str = "resnet18_fpn", min_size: int = 256,
              max_size: int = 512, trainable_layers: int = 5,
              anchor_sizes: Sequence[int] | None = None,
              aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0), fpn_channels: int = 256,
              **kwargs) -> MaskRCNN:
    """``num_classes`` counts the background: things + 1.

    ``anchor_sizes``: one anchor size in pixels per FPN level (5 levels for the ResNets, 3 for
    MobileNetV3); torchvision's defaults (32..512) suit photos of 800 px, small images with
    small objects want smaller ones, e.g. ``[8, 16, 32, 64, 128]``. ``aspect_ratios`` are
    height/width ratios used at every level. Other keyword arguments go to torchvision's
    ``MaskRCNN`` (e.g. ``box_detections_per_img``)."""
    if backbone in ("resnet18_fpn", "resnet50_fpn"):
        net = resnet18(weights=None) if backbone == "resnet18_fpn" else resnet50(weights=None)
        body = _resnet_fpn_extractor(net, trainable_layers)
        if fpn_channels != 256:
            in_list = [b[0].in_channels for b in body.fpn.inner_blocks]
            body.fpn = FeaturePyramidNetwork(in_list, fpn_channels, extra_blocks=LastLevelMaxPool())
            body.out_channels = fpn_channels
            kwargs.setdefault("mask_head", MaskRCNNHeads(fpn_channels, [fpn_channels] * 4, 1))
            kwargs.setdefault("mask_predictor", MaskRCNNPredictor(fpn_channels, fpn_channels,
                                                                  num_classes))
    elif backbone == "mobilenet_v3_fpn":
        body = _mobilenet_extractor(mobilenet_v3_large(weights=None), True, trainable_layers)
    else:
        raise ValueError(f"unknown Mask R-CNN backbone {backbone!r}; use {', '.join(BACKBONES)}")
    if anchor_sizes is not None:
        levels = 3 if backbone == "mobilenet_v3_fpn" else 5
        if len(anchor_sizes) != levels:
            raise ValueError(f"anchor_sizes needs {levels} sizes for {backbone} (one per FPN "
                             f"level), got {len(anchor_sizes)}")
        kwargs["rpn_anchor_generator"] = AnchorGenerator(
            tuple((int(s),) for s in anchor_sizes), (tuple(float(a) for a in aspect_ratios),) * levels)
    elif tuple(aspect_ratios) != (0.5, 1.0, 2.0):
        raise ValueError("aspect_ratios needs anchor_sizes too")
    if "mask_predictor" in kwargs:  # torchvision wants the class count in one place only
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

        kwargs.setdefault("box_predictor", FastRCNNPredictor(1024, num_classes))
        num_classes = None
    return MaskRCNN(body, num_classes=num_classes, min_size=min_size, max_size=max_size,
                    **kwargs)
