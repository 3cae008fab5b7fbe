"""Image characteristics and a suggested starting pipeline.

Measures (on the grey version, values of 8-bit images on 0..255; other dtypes rescaled to it):

* ``brightness``: mean grey level; ``contrast``: RMS contrast (standard deviation)
* ``noise``: robust Gaussian noise sigma, Immerkaer's method (a Laplacian-difference kernel,
  insensitive to edges), in grey levels
* ``sharpness``: variance of the Laplacian (low means blurry)
* ``bimodality``: Otsu's effectiveness ``eta = between-class variance / total variance`` in
  [0, 1]; above ~0.75 the histogram has two well separated modes and one global threshold works
* ``illumination``: spread of a heavily blurred copy relative to the contrast; high means uneven
  lighting, where a local (adaptive) threshold does better than a global one
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from segflow.io import read_image
from segflow.ops.color import grayscale

_MAX_SIDE = 2048  # measurements run on a copy at most this large, so huge images stay fast


@dataclass
class Characteristics:
    path: str
    width: int
    height: int
    dtype: str
    channels: int
    brightness: float
    contrast: float
    noise: float
    sharpness: float
    bimodality: float
    illumination: float
    colourfulness: float
    suggestion: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def _to_u8(gray: np.ndarray) -> np.ndarray:
    if gray.dtype == np.uint8:
        return gray
    x = gray.astype(np.float32)
    if gray.dtype == np.uint16:
        return np.clip(x / 257.0, 0, 255).astype(np.uint8)
    lo, hi = float(x.min()), float(x.max())
    return np.zeros(x.shape, np.uint8) if hi <= lo else ((x - lo) * 255 / (hi - lo)).astype(np.uint8)


def noise_sigma(gray: np.ndarray) -> float:
    """Immerkaer (1996) fast noise variance estimate, in the image's grey levels."""
    k = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    h, w = gray.shape
    if h < 3 or w < 3:
        return 0.0
    conv = cv2.filter2D(gray.astype(np.float32), -1, k, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return float(np.abs(conv).sum() * math.sqrt(math.pi / 2) / (6 * (w - 2) * (h - 2)))


def otsu_effectiveness(gray_u8: np.ndarray) -> float:
    """Otsu's eta: the best between-class variance over the total variance (0..1)."""
    hist = np.bincount(gray_u8.ravel(), minlength=256).astype(np.float64)
    p = hist / hist.sum()
    levels = np.arange(256)
    mu_t = (p * levels).sum()
    var_t = (p * (levels - mu_t) ** 2).sum()
    if var_t == 0:
        return 0.0
    w0 = np.cumsum(p)
    mu = np.cumsum(p * levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        sb = (mu_t * w0 - mu) ** 2 / (w0 * (1 - w0))
    return float(np.nanmax(sb[:-1]) / var_t)


def characterise(image: np.ndarray, path: str = "<array>") -> Characteristics:
    """Measure an image and suggest a starting pipeline (see the module docstring)."""
    h, w = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    scale = min(1.0, _MAX_SIDE / max(h, w))
    small = image if scale == 1.0 else cv2.resize(
        image, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    gray = _to_u8(grayscale(small))
    g = gray.astype(np.float32)
    contrast = float(g.std())
    sigma_bg = max(4.0, max(gray.shape) / 8)
    background = cv2.GaussianBlur(g, (0, 0), sigma_bg)
    illum = float(background.std() / contrast) if contrast > 0 else 0.0
    colourful = 0.0
    if channels >= 3:
        rgb = small[..., :3].astype(np.float32)
        rg, yb = rgb[..., 0] - rgb[..., 1], 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
        colourful = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
        if image.dtype != np.uint8:
            colourful *= 255.0 / float(np.iinfo(image.dtype).max if image.dtype.kind == "u" else 1)
    c = Characteristics(
        path=path, width=w, height=h, dtype=str(image.dtype), channels=channels,
        brightness=float(g.mean()), contrast=contrast, noise=noise_sigma(gray),
        sharpness=float(cv2.Laplacian(gray, cv2.CV_64F).var()),
        bimodality=otsu_effectiveness(gray), illumination=illum, colourfulness=colourful,
        suggestion="", reason="",
    )
    c.suggestion, c.reason = suggest(c)
    return c


def suggest(c: Characteristics) -> tuple[str, str]:
    """A starting pipeline (a built-in pipeline name, see :mod:`segflow.resources`) and the
    reason, from the measurements."""
    if c.contrast < 2:
        return "otsu", "almost constant image: nothing to segment; Otsu as a start"
    if c.channels >= 3 and c.colourfulness > 40 and c.bimodality < 0.8:
        return "kmeans", (f"colourful image (colourfulness {c.colourfulness:.0f}) without a "
                          f"bimodal grey histogram (eta {c.bimodality:.2f}): k-means colour clustering")
    if c.illumination > 0.5:
        return "coins", (f"uneven illumination (background spread {c.illumination:.2f} of the "
                         "contrast): a local adaptive threshold")
    if c.bimodality >= 0.75:
        return "objects", f"bimodal histogram (eta {c.bimodality:.2f}): Otsu, then label the objects"
    return "kmeans", (f"histogram not bimodal (eta {c.bimodality:.2f}): no single threshold "
                      "separates it; k-means clustering")


def inspect_image(path: str | Path) -> Characteristics:
    """Read an image and characterise it."""
    return characterise(read_image(path), str(path))
