"""CT/MRI-like grey slices: body, liver and kidneys in soft-tissue greys, lesions as things,
with scanner noise. The image is single-channel."""

from __future__ import annotations

import numpy as np

from segflow.annotations import LabelSchema
from segflow.synth.base import Canvas, Sample, ellipse

SCHEMA = LabelSchema.from_list([
    {"id": 1, "name": "air", "color": [20, 20, 20]},
    {"id": 2, "name": "body", "color": [150, 120, 90]},
    {"id": 3, "name": "liver", "color": [180, 60, 60]},
    {"id": 4, "name": "kidney", "color": [60, 160, 200]},
    {"id": 5, "name": "lesion", "color": [250, 230, 40], "isthing": True},
])
BG, BODY, LIVER, KIDNEY, LESION = range(1, 6)


def _grey(c: Canvas, level: float, amount: float, cells: int = 24):
    return c.texture((level, level, level), amount=amount, cells=cells)


def make(c: Canvas, n_objects: int, seed: int) -> Sample:
    rng, h, w = c.rng, c.h, c.w
    tex = c.diff.texture
    c.paint(np.ones((h, w), np.uint8), BG, _grey(c, 0.03, 0.2))
    cx, cy = w / 2 + rng.uniform(-5, 5), h / 2 + rng.uniform(-5, 5)
    bw, bh = w * rng.uniform(0.38, 0.46), h * rng.uniform(0.28, 0.38)
    c.paint(ellipse(c.mask(), (cx, cy), (bw, bh)), BODY, _grey(c, 0.42, tex))
    liver_c = (cx - bw * 0.35, cy - bh * 0.15)
    c.paint(ellipse(c.mask(), liver_c, (bw * 0.42, bh * 0.5), rng.uniform(-20, 20)), LIVER,
            _grey(c, 0.55, tex))
    for side in (-1, 1):  # two kidneys near the back
        k_c = (cx + side * bw * 0.45, cy + bh * 0.45)
        c.paint(ellipse(c.mask(), k_c, (bw * 0.12, bh * 0.2), rng.uniform(-30, 30) * side),
                KIDNEY, _grey(c, 0.68, tex * 0.6))
    for _ in range(n_objects):  # lesions, mostly in the liver, darker or brighter
        ang = rng.uniform(0, 2 * np.pi)
        rr = rng.uniform(0, 0.8)
        lc = (liver_c[0] + np.cos(ang) * rr * bw * 0.38, liver_c[1] + np.sin(ang) * rr * bh * 0.45)
        r = w * rng.uniform(0.015, 0.03 + 0.04 * c.diff.scale)
        level = rng.choice([0.4, 0.72])
        c.paint(ellipse(c.mask(), lc, (r, r * rng.uniform(0.7, 1.3)), rng.uniform(0, 180)),
                LESION, _grey(c, level, tex * 0.5), thing=True)
    return c.finish(SCHEMA, "medical", seed, grey=True)
