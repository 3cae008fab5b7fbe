"""Deep segmentation models, built by name from one plain dict (see :data:`MODELS`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from segflow.errors import SegflowError
from segflow.models.encoder_decoder import DeepLabV3Plus, FPNSeg
from segflow.models.maskrcnn import mask_rcnn
from segflow.models.unet import UNet
from segflow.models.unet3d import UNet3D

#: name -> constructor taking keyword-only arguments
MODELS: dict[str, Callable[..., nn.Module]] = {
    "unet": UNet,
    "deeplabv3plus": DeepLabV3Plus,
    "fpn": FPNSeg,
    "maskrcnn": mask_rcnn,
    "unet3d": UNet3D,  # volumes; pads to its stride itself
}


class PadToStride(nn.Module):
    """Pad the input to a multiple of the network's stride (reflect), crop the output back,
    so any image size works."""

    def __init__(self, net: nn.Module, stride: int):
        super().__init__()
        self.net = net
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph = (self.stride - h % self.stride) % self.stride
        pw = (self.stride - w % self.stride) % self.stride
        # Always pad (possibly by 0), with no Python branch on the size, so a traced or ONNX
        # graph stays correct for every input size.
        y = self.net(F.pad(x, (0, pw, 0, ph), mode="replicate"))
        return y[..., :h, :w]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a model by name; semantic models come wrapped in :class:`PadToStride`."""
    if name not in MODELS:
        raise SegflowError(f"unknown model {name!r}; use one of {', '.join(MODELS)}")
    try:
        net = MODELS[name](**kwargs)
    except (TypeError, ValueError) as e:
        raise SegflowError(f"model {name}: {e}") from None
    if name in ("maskrcnn", "unet3d"):
        return net
    return PadToStride(net, net.stride)


def load_backbone_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Load a local state dict (e.g. an ImageNet checkpoint the user has) into the encoder;
    returns the keys that did not fit. Nothing is ever downloaded."""
    p = Path(path)
    if not p.is_file():
        raise SegflowError(f"{p}: no such weights file")
    state = torch.load(p, map_location="cpu", weights_only=True)
    target = getattr(getattr(model, "net", model), "encoder", None)
    if target is None:
        raise SegflowError("this model has no pretrained-able encoder")
    missing, unexpected = target.body.load_state_dict(state, strict=False)
    return list(missing) + list(unexpected)


__all__ = ["MODELS", "DeepLabV3Plus", "FPNSeg", "PadToStride", "UNet", "UNet3D", "create_model",
           "mask_rcnn", "load_backbone_weights"]
