"""Deep segmentation models, built by name from one registry (:data:`MODELS`).

The registry (:mod:`segflow.models.registry`) and :mod:`segflow.models.panoptic` import no torch;
the builders (:func:`create_model`, the network classes) need the ``deep`` extra and are
imported when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

from segflow.models.registry import MODELS, ModelInfo, model_info, model_names

#: lazily imported names -> their module (torch is imported on first use)
_LAZY = {
    "create_model": "segflow.models.build", "PadToStride": "segflow.models.build",
    "load_backbone_weights": "segflow.models.build", "UNet": "segflow.models.unet",
    "DeepLabV3Plus": "segflow.models.encoder_decoder", "FPNSeg": "segflow.models.encoder_decoder",
    "mask_rcnn": "segflow.models.maskrcnn", "UNet3D": "segflow.models.unet3d",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        if _LAZY[name] != "segflow.models.build":
            importlib.import_module("segflow.models.build")  # the extra check comes first
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'segflow.models' has no attribute {name!r}")


__all__ = ["MODELS", "ModelInfo", "model_info", "model_names", *_LAZY]
