"""Encoder-decoders on torchvision backbones: DeepLabV3+ and FPN heads.

Backbones: resnet18, resnet34, resnet50, mobilenet_v3_large, built with ``weights=None``
(random initialisation; nothing is downloaded). A local weights file can be loaded by path
with :func:`segflow.models.load_backbone_weights`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torchvision import models as tvm
from torchvision.models.feature_extraction import create_feature_extractor

from segflow.models.unet import norm_layer

BACKBONES = {
    "resnet18": (tvm.resnet18, {"layer1": "c2", "layer2": "c3", "layer3": "c4", "layer4": "c5"}),
    "resnet34": (tvm.resnet34, {"layer1": "c2", "layer2": "c3", "layer3": "c4", "layer4": "c5"}),
    "resnet50": (tvm.resnet50, {"layer1": "c2", "layer2": "c3", "layer3": "c4", "layer4": "c5"}),
    "mobilenet_v3_large": (tvm.mobilenet_v3_large,
                           {"features.3": "c2", "features.6": "c3", "features.12": "c4",
                            "features.16": "c5"}),
}


class Encoder(nn.Module):
    """A torchvision classifier cut into a feature pyramid c2..c5 (strides 4..32)."""

    def __init__(self, name: str, in_channels: int = 3):
        super().__init__()
        if name not in BACKBONES:
            raise ValueError(f"unknown backbone {name!r}; use one of {', '.join(BACKBONES)}")
        ctor, nodes = BACKBONES[name]
        net = ctor(weights=None)
        if in_channels != 3:
            _replace_stem(net, in_channels)
        self.body = create_feature_extractor(net, return_nodes=nodes)
        with torch.no_grad():
            feats = self.body(torch.zeros(1, in_channels, 64, 64))
        self.channels = [feats[k].shape[1] for k in ("c2", "c3", "c4", "c5")]

    def forward(self, x):
        f = self.body(x)
        return [f["c2"], f["c3"], f["c4"], f["c5"]]


def _replace_stem(net: nn.Module, in_channels: int) -> None:
    if hasattr(net, "conv1"):
        old = net.conv1
        net.conv1 = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride,
                              old.padding, bias=False)
    else:
        old = net.features[0][0]
        net.features[0][0] = nn.Conv2d(in_channels, old.out_channels, old.kernel_size,
                                       old.stride, old.padding, bias=False)


def conv_bn_relu(cin, cout, k=3, d=1, norm="batch"):
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=d * (k // 2), dilation=d, bias=False),
                         norm_layer(norm, cout), nn.ReLU(inplace=True))


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int = 128, rates=(6, 12, 18), norm="batch"):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(cin, cout, 1, norm=norm)] +
                                      [conv_bn_relu(cin, cout, 3, r, norm) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1),
                                  nn.ReLU(inplace=True))
        self.project = conv_bn_relu(cout * (len(rates) + 2), cout, 1, norm=norm)

    def forward(self, x):
        outs = [b(x) for b in self.branches]
        outs.append(F.interpolate(self.pool(x), size=x.shape[-2:], mode="nearest"))
        return self.project(torch.cat(outs, 1))


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ (Chen et al. 2018): ASPP on c5, fused with c2, up-sampled to the input."""

    def __init__(self, *, num_classes: int, backbone: str = "resnet18", in_channels: int = 3,
                 width: int = 128, norm: str = "batch"):
        super().__init__()
        self.encoder = Encoder(backbone, in_channels)
        c2, _, _, c5 = self.encoder.channels
        self.aspp = ASPP(c5, width, norm=norm)
        self.low = conv_bn_relu(c2, 48, 1, norm=norm)
        self.fuse = nn.Sequential(conv_bn_relu(width + 48, width, norm=norm),
                                  conv_bn_relu(width, width, norm=norm))
        self.head = nn.Conv2d(width, num_classes, 1)
        self.num_classes = num_classes

    def forward(self, x):
        c2, _, _, c5 = self.encoder(x)
        y = F.interpolate(self.aspp(c5), size=c2.shape[-2:], mode="bilinear", align_corners=False)
        y = self.head(self.fuse(torch.cat([y, self.low(c2)], 1)))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class FPNSeg(nn.Module):
    """FPN segmentation head (Kirillov et al., Panoptic FPN's semantic branch)."""

    def __init__(self, *, num_classes: int, backbone: str = "resnet18", in_channels: int = 3,
                 width: int = 128, norm: str = "batch"):
        super().__init__()
        self.encoder = Encoder(backbone, in_channels)
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in self.encoder.channels)
        self.smooth = nn.ModuleList(conv_bn_relu(width, width // 2, norm=norm) for _ in range(4))
        self.head = nn.Sequential(conv_bn_relu(width // 2, width // 2, norm=norm),
                                  nn.Conv2d(width // 2, num_classes, 1))
        self.num_classes = num_classes

    def forward(self, x):
        feats = self.encoder(x)
        lat = [lc(f) for lc, f in zip(self.lateral, feats)]
        for i in range(3, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:],
                                                    mode="nearest")
        size = feats[0].shape[-2:]
        y = sum(F.interpolate(s(p), size=size, mode="bilinear", align_corners=False)
                for s, p in zip(self.smooth, lat))
        return F.interpolate(self.head(y), size=x.shape[-2:], mode="bilinear",
                             align_corners=False)
