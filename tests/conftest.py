from __future__ import annotations

import numpy as np
import pytest
from skimage import data

GREY_SAMPLES = ("coins", "camera", "moon", "page", "cell", "text")
COLOUR_SAMPLES = ("astronaut", "coffee", "chelsea")


@pytest.fixture(scope="session")
def samples() -> dict[str, np.ndarray]:
    """scikit-image's bundled sample images (no download)."""
    return {n: getattr(data, n)() for n in GREY_SAMPLES + COLOUR_SAMPLES}


def touching_discs(shape=(120, 160), centres=((60, 55), (60, 100)), r=28, noise=0, seed=0):
    """Two overlapping bright discs on a dark background (known answer: two objects)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    img = np.zeros(shape, np.float32)
    for cy, cx in centres:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 200
    img += 20
    if noise:
        img += np.random.default_rng(seed).normal(0, noise, shape)
    return np.clip(img, 0, 255).astype(np.uint8)
