"""A small 3-D U-Net (Çiçek et al. 2016) for volumes.

Input ``(B, in_channels, I, J, K)`` float; output ``(B, num_classes, I, J, K)`` logits, for any
size: the input is padded (replicate) to a multiple of the network's stride and the output
cropped back, so no wrapper is needed. ``anisotropic=True`` pools only in-plane (I, J) at the
first level, for thick-slice scans where K has 2-3x fewer voxels per mm (nnU-Net does the
same); the K stride is then ``2**(depth-1)``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F


def _norm(kind: str, ch: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm3d(ch, affine=True)
    if kind == "batch":
        return nn.BatchNorm3d(ch)
    if kind == "group":
        return nn.GroupNorm(min(8, ch), ch)
    raise ValueError(f"norm must be instance, batch or group, got {kind!r}")


class _Double(nn.Sequential):
    def __init__(self, cin: int, cout: int, norm: str):
        super().__init__(
            nn.Conv3d(cin, cout, 3, padding=1, bias=False), _norm(norm, cout),
            nn.LeakyReLU(0.01, inplace=True),
            nn.Conv3d(cout, cout, 3, padding=1, bias=False), _norm(norm, cout),
            nn.LeakyReLU(0.01, inplace=True))


class UNet3D(nn.Module):
    """3-D U-Net: ``depth`` poolings, widths ``base_width * 2**level``."""

    def __init__(self, *, in_channels: int = 1, num_classes: int, depth: int = 3,
                 base_width: int = 16, norm: Literal["instance", "batch", "group"] = "instance",
                 anisotropic: bool = True):
        super().__init__()
        if not 1 <= depth <= 5:
            raise ValueError(f"depth must be 1..5, got {depth}")
        if in_channels < 1 or num_classes < 1 or base_width < 1:
            raise ValueError("in_channels, num_classes and base_width must be >= 1")
        _norm(norm, 8)  # validate early
        widths = [base_width * 2**i for i in range(depth + 1)]
        self.pools = [(2, 2, 1) if (anisotropic and i == 0) else (2, 2, 2) for i in range(depth)]
        self.stride = tuple(int(torch.tensor([p[a] for p in self.pools]).prod()) for a in range(3))
        self.inc = _Double(in_channels, widths[0], norm)
        self.downs = nn.ModuleList(_Double(widths[i], widths[i + 1], norm) for i in range(depth))
        self.ups = nn.ModuleList(
            nn.ConvTranspose3d(widths[i + 1], widths[i], self.pools[i], stride=self.pools[i])
            for i in reversed(range(depth)))
        self.decs = nn.ModuleList(_Double(2 * widths[i], widths[i], norm) for i in reversed(range(depth)))
        self.head = nn.Conv3d(widths[0], num_classes, 1)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-3:]
        pad = [(s - n % s) % s for n, s in zip(size, self.stride)]
        # F.pad takes the last axis first; always pad (possibly by 0): no branch on the size.
        x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]), mode="replicate")
        skips = [self.inc(x)]
        for pool, down in zip(self.pools, self.downs):
            skips.append(down(F.max_pool3d(skips[-1], pool)))
        y = skips.pop()
        for up, dec in zip(self.ups, self.decs):
            y = dec(torch.cat([skips.pop(), up(y)], dim=1))
        return self.head(y)[..., : size[0], : size[1], : size[2]]
