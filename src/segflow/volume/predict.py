"""Whole-volume prediction: 3-D sliding window with Gaussian blending, or slice by slice with
neighbouring slices as channels (2.5-D), and the intensity normalisation both share.

The 3-D windows step by ``patch * (1 - overlap)``; the last window on each axis is moved back
to end at the border, so every window is full size. Each window's class probabilities are
weighted by a Gaussian (sigma = patch / 8, floored at 1e-3 of its peak, as nnU-Net and MONAI's
``sliding_window_inference(mode="gaussian")`` do), summed, and divided by the summed weights,
so there are no seams and every voxel's weights add up to one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from segflow.errors import SegflowError
from segflow.predict.tiling import _starts


def normalize(array: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """float32 in about 0..1: a (level, width) window (CT HU), or with ``None`` the 0.5-99.5
    percentiles of the volume's finite voxels (MR). Non-finite voxels become 0."""
    a = np.asarray(array, dtype=np.float32)
    if window is not None:
        lo, hi = window[0] - window[1] / 2, window[0] + window[1] / 2
    else:
        fin = a[np.isfinite(a)]
        lo, hi = (np.percentile(fin, [0.5, 99.5]) if fin.size else (0.0, 1.0))
    out = (a - np.float32(lo)) / np.float32(max(hi - lo, 1e-6))
    return np.nan_to_num(np.clip(out, -0.5, 1.5), nan=0.0, posinf=1.5, neginf=-0.5)


def slab(vol: np.ndarray, k: int, context: int) -> np.ndarray:
    """Slice ``k`` (last axis) with ``context`` neighbours on each side as channels
    ``(2*context+1, I, J)``; indices beyond the volume repeat its first or last slice."""
    idx = np.clip(np.arange(k - context, k + context + 1), 0, vol.shape[2] - 1)
    return np.ascontiguousarray(np.moveaxis(vol[:, :, idx], 2, 0))


def gaussian_weight(patch: tuple[int, int, int], sigma_scale: float = 0.125) -> np.ndarray:
    axes = []
    for n in patch:
        x = np.arange(n, dtype=np.float64) - (n - 1) / 2
        s = max(n * sigma_scale, 1e-6)
        axes.append(np.exp(-0.5 * (x / s) ** 2))
    w = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    w /= w.max()
    return np.maximum(w, 1e-3).astype(np.float32)


@torch.no_grad()
def sliding_window_3d(forward, volume: np.ndarray, num_classes: int, patch, *,
                      overlap: float = 0.5, batch: int = 2, blend: str = "gaussian") -> np.ndarray:
    """``forward``: ``(B, C_in, *patch)`` tensor -> ``(B, num_classes, *patch)`` probabilities.
    ``volume``: ``(C_in, I, J, K)`` float32. Returns ``(num_classes, I, J, K)`` float32."""
    if not 0 <= overlap < 1:
        raise SegflowError(f"overlap must be in [0, 1), got {overlap}")
    if blend not in ("gaussian", "constant"):
        raise SegflowError(f"blend must be gaussian or constant, got {blend!r}")
    _, *size = volume.shape
    p = [min(int(a), int(b)) for a, b in zip(patch, size)]
    starts = [_starts(n, t, max(1, int(round(t * (1 - overlap))))) for n, t in zip(size, p)]
    w = gaussian_weight(tuple(p)) if blend == "gaussian" else np.ones(p, np.float32)
    wt = torch.from_numpy(w)
    acc = torch.zeros(num_classes, *size)
    wsum = torch.zeros(*size)
    boxes = [(a, b, c) for a in starts[0] for b in starts[1] for c in starts[2]]
    x = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))
    for i in range(0, len(boxes), batch):
        chunk = boxes[i:i + batch]
        xin = torch.stack([x[:, a:a + p[0], b:b + p[1], c:c + p[2]] for a, b, c in chunk])
        probs = forward(xin).float().cpu()
        for (a, b, c), pr in zip(chunk, probs):
            acc[:, a:a + p[0], b:b + p[1], c:c + p[2]] += pr * wt
            wsum[a:a + p[0], b:b + p[1], c:c + p[2]] += wt
    return (acc / wsum).numpy()


class VolumePredictor:
    """Class probabilities and masks for whole volumes from a volume checkpoint."""

    def __init__(self, checkpoint: str | Path | dict, *, device: str = "auto"):
        from segflow.train import checkpoint as ckpt
        from segflow.train.trainer import pick_device

        self.ck = ckpt.load(checkpoint) if not isinstance(checkpoint, dict) else checkpoint
        if not self.ck.get("volume"):
            raise SegflowError(f"{checkpoint}: not a volume model (trained on images); give "
                               "images, or a checkpoint trained with a volume: section")
        self.device = pick_device(device)
        self.model = ckpt.build_model(self.ck).to(self.device).eval()
        self.cfg = self.ck["volume"]
        self.num_classes = self.ck["model"]["args"]["num_classes"]
        self.is3d = self.ck["model"]["name"] == "unet3d"

    def _softmax(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.device)).float()[:, : self.num_classes].softmax(1)

    @torch.no_grad()
    def probabilities(self, array: np.ndarray, *, overlap: float | None = None,
                      batch: int = 2) -> np.ndarray:
        """``(num_classes, I, J, K)`` float32 for a raw volume (HU or MR units)."""
        win = self.cfg.get("window")
        vol = normalize(array, tuple(win) if win is not None else None)
        if self.is3d:
            return sliding_window_3d(self._softmax, vol[None], self.num_classes,
                                     self.cfg["patch"], batch=batch,
                                     overlap=self.cfg.get("overlap", 0.5) if overlap is None else overlap)
        c = int(self.cfg["context"])
        out = np.zeros((self.num_classes, *vol.shape), np.float32)
        for k0 in range(0, vol.shape[2], 8):
            ks = range(k0, min(k0 + 8, vol.shape[2]))
            x = torch.from_numpy(np.stack([slab(vol, k, c) for k in ks]))
            out[..., k0:k0 + len(ks)] = np.moveaxis(self._softmax(x).cpu().numpy(), 0, -1)
        return out

    def predict(self, array: np.ndarray, **kw) -> np.ndarray:
        """uint8 class ids ``(I, J, K)``."""
        return self.probabilities(array, **kw).argmax(0).astype(np.uint8)


def predict_volumes(checkpoint: str | Path, paths: list[Path], out: str | os.PathLike, *,
                    device: str = "auto") -> tuple[list[str], list[str]]:
    """Write ``OUT/NAME_mask.nii.gz`` (aligned with each source) for each volume;
    returns ``(written, failures)``."""
    from segflow.volume.io import read_volume, volume_stem, write_volume

    pr = VolumePredictor(checkpoint, device=device)
    written, failures = [], []
    for p in paths:
        try:
            v = read_volume(p)
            written.append(str(write_volume(Path(out) / f"{volume_stem(p)}_mask.nii.gz", v,
                                            pr.predict(v.array))))
        except SegflowError as e:
            failures.append(str(e) if str(p) in str(e) else f"{p}: {e}")
    return written, failures
