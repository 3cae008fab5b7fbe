"""Retail shelves: wall and shelf boards (stuff), products of several classes and price tags
(things), products standing on the boards and sometimes in front of each other."""

from __future__ import annotations

import numpy as np

from segflow.annotations import LabelSchema
from segflow.synth.base import Canvas, Sample, ellipse, jitter, rect

SCHEMA = LabelSchema.from_list([
    {"id": 1, "name": "wall", "color": [200, 200, 200]},
    {"id": 2, "name": "shelf", "color": [120, 90, 60]},
    {"id": 3, "name": "bottle", "color": [30, 160, 60], "isthing": True},
    {"id": 4, "name": "box", "color": [230, 120, 20], "isthing": True},
    {"id": 5, "name": "can", "color": [200, 30, 30], "isthing": True},
    {"id": 6, "name": "price_tag", "color": [250, 250, 120], "isthing": True},
])
WALL, SHELF, BOTTLE, BOX, CAN, TAG = range(1, 7)
BRANDS = [(0.8, 0.1, 0.1), (0.1, 0.3, 0.8), (0.95, 0.75, 0.1), (0.1, 0.6, 0.2), (0.9, 0.9, 0.9),
          (0.5, 0.1, 0.6), (0.95, 0.5, 0.1)]


def make(c: Canvas, n_objects: int, seed: int) -> Sample:
    rng, h, w = c.rng, c.h, c.w
    c.paint(np.ones((h, w), np.uint8), WALL, c.texture(jitter(rng, (0.8, 0.78, 0.74), 0.05)))
    n_shelves = int(rng.integers(2, 4))
    gap = h / n_shelves
    per_shelf = max(1, n_objects // n_shelves)
    p = np.array([1.0, 1.0 - 0.6 * c.diff.imbalance, 1.0 - 0.8 * c.diff.imbalance])
    for k in range(n_shelves):
        board_y = (k + 1) * gap - gap * 0.1
        c.paint(rect(c.mask(), 0, board_y, w, board_y + gap * 0.1), SHELF,
                c.texture(jitter(rng, (0.45, 0.33, 0.22), 0.04), cells=32))
        x = rng.uniform(0, w * 0.05)
        kinds = rng.choice([BOTTLE, BOX, CAN], per_shelf, p=p / p.sum())
        overlap = 0.25 * c.diff.occlusion
        for kind in kinds:
            scale = rng.uniform(0.8, 1.0 + 0.3 * c.diff.scale)
            pw = {BOTTLE: 0.07, BOX: 0.12, CAN: 0.06}[kind] * w * scale
            ph = {BOTTLE: 0.7, BOX: 0.6, CAN: 0.4}[kind] * gap * scale
            ph = min(ph, gap * 0.85)
            if x + pw > w:
                break
            m = c.mask()
            y1 = board_y
            if kind == BOTTLE:
                rect(m, x, y1 - ph * 0.7, x + pw, y1)
                rect(m, x + pw * 0.35, y1 - ph, x + pw * 0.65, y1 - ph * 0.68)
                ellipse(m, (x + pw / 2, y1 - ph * 0.7), (pw / 2, pw * 0.3))
            elif kind == CAN:
                rect(m, x, y1 - ph, x + pw, y1)
            else:
                rect(m, x, y1 - ph, x + pw, y1)
            brand = BRANDS[int(rng.integers(len(BRANDS)))]
            c.paint(m, kind, c.texture(jitter(rng, brand, 0.05), amount=0.5, cells=16), thing=True)
            x += pw * (1 - overlap * rng.uniform(0, 1)) + rng.uniform(1, 4)
        for tx in rng.uniform(0.05, 0.9, int(rng.integers(1, 4))) * w:  # price tags on the edge
            c.paint(rect(c.mask(), tx, board_y + gap * 0.01, tx + w * 0.06, board_y + gap * 0.08),
                    TAG, (0.97, 0.95, 0.6), thing=True)
    return c.finish(SCHEMA, "retail", seed)
