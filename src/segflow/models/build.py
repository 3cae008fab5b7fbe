"""Building models from the registry (needs the ``deep`` extra: torch and torchvision)."""

from __future__ import annotations

from pathlib import Path

from segflow._extras import require

require("deep", what="segflow.models")  # one line naming the extra, before torch is imported

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from segflow.errors import SegflowError  # noqa: E402
from segflow.models.registry import model_info  # noqa: E402


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
    """Build a registered model by name (:data:`segflow.models.MODELS`) from keyword arguments;
    models with an output stride come wrapped in :class:`PadToStride`."""
    info = model_info(name)
    try:
        net = info.load_builder()(**kwargs)
    except (TypeError, ValueError) as e:
        raise SegflowError(f"model {name}: {e}") from None
    if info.stride is None:
        return net
    return PadToStride(net, info.stride(kwargs))


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
