"""Crops vs weeds: textured soil (stuff), crop plants in rows and weeds anywhere (things)."""

from __future__ import annotations

import numpy as np

from segflow.annotations import LabelSchema
from segflow.synth.base import Canvas, Sample, ellipse, jitter

SCHEMA = LabelSchema.from_list([
    {"id": 1, "name": "soil", "color": [120, 80, 50]},
    {"id": 2, "name": "crop", "color": [40, 180, 40], "isthing": True},
    {"id": 3, "name": "weed", "color": [230, 200, 30], "isthing": True},
])
SOIL, CROP, WEED = 1, 2, 3


def _plant(c: Canvas, cx, cy, r, leaves: int, colour, narrow: float, cls: int) -> None:
    rng = c.rng
    m = c.mask()
    for k in range(leaves):
        ang = 360 * k / leaves + rng.uniform(-20, 20)
        rad = np.deg2rad(ang)
        lx, ly = cx + np.cos(rad) * r * 0.55, cy + np.sin(rad) * r * 0.55
        ellipse(m, (lx, ly), (r * 0.55, r * 0.55 * narrow), ang)
    ellipse(m, (cx, cy), (r * 0.2, r * 0.2))
    c.paint(m, cls, c.texture(jitter(c.rng, colour, 0.06), amount=0.6, cells=24), thing=True)


def make(c: Canvas, n_objects: int, seed: int) -> Sample:
    rng, h, w = c.rng, c.h, c.w
    soil = c.texture(jitter(rng, (0.42, 0.3, 0.2), 0.05), amount=min(1, c.diff.texture + 0.4),
                     cells=48)
    c.paint(np.ones((h, w), np.uint8), SOIL, soil)
    n_rows = rng.integers(2, 5)
    row_x = (np.arange(n_rows) + 0.5) / n_rows * w + rng.uniform(-5, 5, n_rows)
    n_weed = max(1, int(n_objects * (0.35 - 0.25 * c.diff.imbalance)))
    n_crop = max(1, n_objects - n_weed)
    per_row = max(1, n_crop // n_rows)
    base_r = w / (per_row * 2.6 + 2)
    for x0 in row_x:
        for k in range(per_row):
            cy = (k + 0.5) / per_row * h + rng.uniform(-3, 3)
            r = base_r * rng.uniform(0.8, 1.0 + 0.6 * c.diff.scale)
            _plant(c, x0 + rng.uniform(-4, 4), cy, r, int(rng.integers(4, 7)),
                   (0.2, 0.55, 0.15), 0.45, CROP)
    for _ in range(n_weed):  # weeds: thinner leaves, yellower, anywhere (may overlap crops)
        r = base_r * rng.uniform(0.4, 0.8 + 0.5 * c.diff.scale)
        _plant(c, rng.uniform(0, w), rng.uniform(0, h), r, int(rng.integers(6, 10)),
               (0.35, 0.6, 0.1), 0.25, WEED)
    return c.finish(SCHEMA, "agriculture", seed)
