"""U-Net (Ronneberger et al. 2015) with configurable depth, width, norm and up-sampling."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F


def norm_layer(kind: str, ch: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(ch)
    if kind == "group":
        return nn.GroupNorm(min(8, ch), ch)
    raise ValueError(f"norm must be batch or group, got {kind!r}")


class ConvStack(nn.Sequential):
    """``n`` times conv 3x3 -> norm -> ReLU, optional dropout after."""

    def __init__(self, cin: int, cout: int, norm: str, dropout: float = 0.0, *, n: int = 2):
        layers: list[nn.Module] = []
        for k in range(n):
            layers += [nn.Conv2d(cin if k == 0 else cout, cout, 3, padding=1, bias=False),
                       norm_layer(norm, cout), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class DoubleConv(ConvStack):
    def __init__(self, cin: int, cout: int, norm: str, dropout: float = 0.0):
        super().__init__(cin, cout, norm, dropout, n=2)


class SingleConv(ConvStack):
    def __init__(self, cin: int, cout: int, norm: str, dropout: float = 0.0):
        super().__init__(cin, cout, norm, dropout, n=1)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1) shortcut: easier to train from scratch."""

    def __init__(self, cin: int, cout: int, norm: str, dropout: float = 0.0):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), norm_layer(norm, cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), norm_layer(norm, cout))
        # A plain 1x1 projection (no norm) where the width changes: cheaper, trains as well.
        self.short = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1, bias=False)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        return self.drop(torch.relu(self.body(x) + self.short(x)))


class Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, mode: str, norm: str, dropout: float,
                 block=DoubleConv):
        super().__init__()
        self.mode = mode
        if mode == "transpose":
            self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
            cin = cin // 2
        self.conv = block(cin + cskip, cout, norm, dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        if self.mode == "transpose":
            x = self.up(x)
        else:
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(nn.Module):
    """U-Net for semantic segmentation.

    Input ``(B, in_channels, H, W)`` float; output ``(B, num_classes, H, W)`` logits. H and W
    must be multiples of ``2**depth`` — :class:`segflow.models.PadToStride` handles any size.
    ``extra_outputs`` adds channels after the class logits (e.g. 1 for a distance map used to
    split touching objects). ``block="residual"`` uses residual double convolutions;
    ``full_res_convs=1`` one convolution in the full-resolution input and output blocks.
    """

    def __init__(self, *, in_channels: int = 3, num_classes: int, depth: int = 4,
                 base_width: int = 32, norm: Literal["batch", "group"] = "batch",
                 upsampling: Literal["bilinear", "transpose"] = "bilinear",
                 dropout: float = 0.0, extra_outputs: int = 0,
                 block: Literal["plain", "residual"] = "plain", full_res_convs: int = 2):
        super().__init__()
        if not 1 <= depth <= 6:
            raise ValueError(f"depth must be 1..6, got {depth}")
        if block not in ("plain", "residual"):
            raise ValueError(f"block must be plain or residual, got {block!r}")
        blk = DoubleConv if block == "plain" else ResBlock
        widths = [base_width * 2**i for i in range(depth + 1)]
        if full_res_convs not in (1, 2):
            raise ValueError(f"full_res_convs must be 1 or 2, got {full_res_convs}")
        # The full-resolution input block stays plain: a shortcut there costs the most and
        # gains the least (3 input channels). full_res_convs=1 makes the full-resolution
        # input and output blocks one convolution each: those two blocks cost about as much
        # as the rest of a depth-4 network on the CPU.
        self.inc = (DoubleConv(in_channels, widths[0], norm) if full_res_convs == 2
                    else SingleConv(in_channels, widths[0], norm))
        self.downs = nn.ModuleList(
            blk(widths[i], widths[i + 1], norm, dropout if i == depth - 1 else 0.0)
            for i in range(depth))
        self.ups = nn.ModuleList(
            Up(widths[i + 1], widths[i], widths[i], upsampling, norm, 0.0,
               blk if i >= 2 else  # full- and half-resolution decoder: plain
               SingleConv if (i == 0 and full_res_convs == 1) else DoubleConv)
            for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes + extra_outputs, 1)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return self.head(y)
