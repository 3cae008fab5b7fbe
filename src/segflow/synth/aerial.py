"""Aerial and satellite mapping: fields, forest, water and roads (stuff) and buildings (things)."""

from __future__ import annotations

import cv2
import numpy as np

from segflow.annotations import LabelSchema
from segflow.synth.base import Canvas, Sample, ellipse, jitter, rotated_rect

SCHEMA = LabelSchema.from_list([
    {"id": 1, "name": "field", "color": [200, 180, 80]},
    {"id": 2, "name": "forest", "color": [20, 100, 30]},
    {"id": 3, "name": "water", "color": [30, 80, 200]},
    {"id": 4, "name": "road", "color": [130, 130, 130]},
    {"id": 5, "name": "building", "color": [220, 60, 40], "isthing": True},
])
FIELD, FOREST, WATER, ROAD, BUILDING = range(1, 6)


def make(c: Canvas, n_objects: int, seed: int) -> Sample:
    rng, h, w = c.rng, c.h, c.w
    # patchwork of fields: Voronoi cells of random seeds, each its own crop colour
    pts = rng.uniform(0, 1, (int(rng.integers(4, 9)), 2)) * (w, h)
    yy, xx = np.mgrid[0:h, 0:w]
    cell = np.argmin((xx[..., None] - pts[:, 0]) ** 2 + (yy[..., None] - pts[:, 1]) ** 2, axis=2)
    for k in range(len(pts)):
        tone = jitter(rng, rng.choice([(0.75, 0.7, 0.35), (0.55, 0.65, 0.3), (0.6, 0.5, 0.3)]), 0.06)
        c.paint((cell == k).astype(np.uint8), FIELD, c.texture(tone, cells=32))
    for _ in range(rng.integers(1, 4)):  # forest blobs
        m = c.mask()
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        for _ in range(6):
            ellipse(m, (cx + rng.uniform(-0.1, 0.1) * w, cy + rng.uniform(-0.1, 0.1) * h),
                    (rng.uniform(0.05, 0.12) * w, rng.uniform(0.05, 0.12) * h))
        c.paint(m, FOREST, c.texture(jitter(rng, (0.12, 0.3, 0.12), 0.03),
                                     amount=min(1, c.diff.texture + 0.4), cells=64))
    if rng.random() < 0.8:  # a river: a thick wandering polyline
        xs = np.linspace(-0.1, 1.1, 8) * w
        ys = h * (rng.uniform(0.2, 0.8) + np.cumsum(rng.uniform(-0.12, 0.12, 8)))
        m = c.mask()
        cv2.polylines(m, [np.stack([xs, ys], 1).astype(np.int32)], False, 1,
                      int(w * rng.uniform(0.04, 0.08)))
        if rng.random() < 0.5:
            m = m.T.copy() if h == w else m
        c.paint(m, WATER, c.texture(jitter(rng, (0.12, 0.25, 0.45), 0.04), amount=0.3, cells=8))
    for _ in range(rng.integers(1, 3)):  # straight roads
        m = c.mask()
        p0 = rng.uniform(0, 1, 2) * (w, h)
        ang = rng.uniform(0, np.pi)
        d = np.array([np.cos(ang), np.sin(ang)]) * 2 * max(h, w)
        cv2.line(m, tuple((p0 - d).astype(int)), tuple((p0 + d).astype(int)), 1,
                 max(2, int(w * 0.02)))
        c.paint(m, ROAD, c.texture((0.5, 0.5, 0.5), amount=0.2))
    # buildings: small rotated roofs, clustered along a street direction
    ang = rng.uniform(0, 90)
    ox, oy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    for _ in range(n_objects):
        s = w * rng.uniform(0.03, 0.05 + 0.05 * c.diff.scale)
        cx = ox + rng.normal(0, 0.22) * w
        cy = oy + rng.normal(0, 0.22) * h
        roof = jitter(rng, rng.choice([(0.7, 0.3, 0.25), (0.6, 0.6, 0.62), (0.35, 0.35, 0.4)]), 0.05)
        c.paint(rotated_rect(c.mask(), (cx, cy), (s, s * rng.uniform(0.6, 1.4)),
                             ang + rng.normal(0, 5)), BUILDING,
                c.texture(roof, amount=0.25), thing=True)
    return c.finish(SCHEMA, "aerial", seed)
