"""Sliding-window inference with overlap and weighted blending (no seams).

Windows of ``tile`` pixels step by ``tile - overlap``; the last window in each direction is
shifted back to end at the border, so every window is full size. Each window's class
probabilities are weighted by a separable ramp that is 1 in the middle and falls towards the
window's edges (but not at the image border), then summed and divided by the summed weights.
"""

from __future__ import annotations

import numpy as np
import torch


def _starts(n: int, tile: int, step: int) -> list[int]:
    if n <= tile:
        return [0]
    s = list(range(0, n - tile, step))
    return s + [n - tile]


def _ramp(size: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    w = np.ones(size, np.float32)
    if overlap > 0:
        r = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
        if not at_start:
            w[:overlap] = np.minimum(w[:overlap], r)
        if not at_end:
            w[-overlap:] = np.minimum(w[-overlap:], r[::-1])
    return w


@torch.no_grad()
def predict_tiled(forward, image: torch.Tensor, num_classes: int, *, tile: int = 512,
                  overlap: int = 64, batch: int = 4) -> torch.Tensor:
    """``forward``: (B, 3, h, w) -> (B, C, h, w) probabilities. ``image``: (3, H, W).
    Returns (C, H, W) blended probabilities."""
    _, h, w = image.shape
    th, tw = min(tile, h), min(tile, w)
    step_h, step_w = max(1, th - overlap), max(1, tw - overlap)
    ys, xs = _starts(h, th, step_h), _starts(w, tw, step_w)
    acc = torch.zeros(num_classes, h, w)
    wsum = torch.zeros(1, h, w)
    boxes = [(y, x) for y in ys for x in xs]
    for i in range(0, len(boxes), batch):
        chunk = boxes[i:i + batch]
        x_in = torch.stack([image[:, y:y + th, x:x + tw] for y, x in chunk])
        probs = forward(x_in).float().cpu()
        for (y, x), p in zip(chunk, probs):
            wy = _ramp(th, min(overlap, th // 2), y == 0, y + th == h)
            wx = _ramp(tw, min(overlap, tw // 2), x == 0, x + tw == w)
            wt = torch.from_numpy(np.outer(wy, wx))[None]
            acc[:, y:y + th, x:x + tw] += p * wt
            wsum[:, y:y + th, x:x + tw] += wt
    return acc / wsum
