"""Street scenes for driving: road, sidewalk, lane markings, buildings, vegetation, sky
(stuff) and cars, pedestrians, cyclists (things), painted far to near so near ones occlude."""

from __future__ import annotations

import numpy as np

from segflow.annotations import LabelSchema
from segflow.synth.base import Canvas, Sample, ellipse, jitter, polygon, rect

SCHEMA = LabelSchema.from_list([
    {"id": 1, "name": "road", "color": [128, 64, 128]},
    {"id": 2, "name": "sidewalk", "color": [244, 35, 232]},
    {"id": 3, "name": "lane_marking", "color": [255, 255, 255]},
    {"id": 4, "name": "building", "color": [70, 70, 70]},
    {"id": 5, "name": "vegetation", "color": [107, 142, 35]},
    {"id": 6, "name": "sky", "color": [70, 130, 180]},
    {"id": 7, "name": "car", "color": [0, 0, 142], "isthing": True},
    {"id": 8, "name": "pedestrian", "color": [220, 20, 60], "isthing": True},
    {"id": 9, "name": "cyclist", "color": [119, 11, 32], "isthing": True},
])
ROAD, SIDEWALK, LANE, BUILDING, VEG, SKY, CAR, PED, CYC = range(1, 10)


def generate(c: Canvas, n_objects: int) -> None:
    h, w, rng = c.h, c.w, c.rng
    hz = int(h * rng.uniform(0.35, 0.5))  # horizon
    vx = w * rng.uniform(0.35, 0.65)  # vanishing point
    c.paint(rect(c.mask(), 0, 0, w, hz), SKY, c.texture(jitter(rng, (0.55, 0.7, 0.9)), cells=4))
    # buildings along the horizon
    x = -rng.uniform(0, 20)
    while x < w:
        bw = rng.uniform(0.08, 0.25) * w
        top = hz - rng.uniform(0.1, 0.35) * h
        tone = rng.uniform(0.3, 0.6)
        c.paint(rect(c.mask(), x, top, x + bw, hz + 2), BUILDING,
                c.texture(jitter(rng, (tone, tone * 0.95, tone * 0.9), 0.05), cells=24))
        x += bw + rng.uniform(0, 6)
    # ground: sidewalks, then the road between them
    c.paint(rect(c.mask(), 0, hz, w, h), SIDEWALK, c.texture(jitter(rng, (0.62, 0.58, 0.55))))
    road_l, road_r = rng.uniform(-0.3, 0.15) * w, rng.uniform(0.85, 1.3) * w
    c.paint(polygon(c.mask(), [(vx - 3, hz), (vx + 3, hz), (road_r, h), (road_l, h)]), ROAD,
            c.texture(jitter(rng, (0.32, 0.3, 0.33), 0.04)))
    # vegetation: trees in front of the buildings, at the road side
    for _ in range(rng.integers(2, 6)):
        cx = rng.uniform(0, w)
        cy = hz - rng.uniform(0, 0.08) * h
        r = rng.uniform(0.04, 0.1) * w
        c.paint(ellipse(c.mask(), (cx, cy), (r, r * rng.uniform(0.8, 1.4))), VEG,
                c.texture(jitter(rng, (0.25, 0.45, 0.15)), amount=min(1, c.diff.texture + 0.3),
                          cells=32))
    # dashed lane markings, converging on the vanishing point
    for k in range(8):
        t0, t1 = (k + 0.2) / 8, (k + 0.6) / 8
        y0, y1 = hz + (h - hz) * t0 ** 1.5, hz + (h - hz) * t1 ** 1.5
        wd0, wd1 = 1 + 4 * t0 ** 1.5, 1 + 4 * t1 ** 1.5
        xm0 = vx + (w / 2 - vx) * t0 ** 1.5
        xm1 = vx + (w / 2 - vx) * t1 ** 1.5
        c.paint(polygon(c.mask(), [(xm0 - wd0, y0), (xm0 + wd0, y0), (xm1 + wd1, y1),
                                   (xm1 - wd1, y1)]), LANE, (0.9, 0.9, 0.85))
    # objects, far (small) to near (large)
    kinds = rng.choice([CAR, PED, CYC], n_objects, p=_probs(c.diff.imbalance))
    ys = np.sort(rng.uniform(hz + 0.05 * (h - hz), h * 0.98, n_objects))
    for kind, yb in zip(kinds, ys):
        s = (yb - hz) / (h - hz) * (0.6 + 0.8 * c.diff.scale * rng.uniform(0, 1))
        cx = rng.uniform(0.05, 0.95) * w
        if kind == CAR:
            _car(c, cx, yb, s)
        elif kind == PED:
            _person(c, cx, yb, s, PED)
        else:
            _cyclist(c, cx, yb, s)


def _probs(imbalance: float) -> list[float]:
    p = np.array([1.0, 1.0 - 0.8 * imbalance, 1.0 - 0.9 * imbalance])
    return list(p / p.sum())


def _car(c: Canvas, cx, yb, s) -> None:
    rng = c.rng
    bw, bh = 0.32 * c.w * s, 0.16 * c.w * s
    m = c.mask()
    rect(m, cx - bw / 2, yb - bh * 0.65, cx + bw / 2, yb)
    rect(m, cx - bw * 0.32, yb - bh, cx + bw * 0.3, yb - bh * 0.6)
    for wx in (cx - bw * 0.3, cx + bw * 0.3):
        ellipse(m, (wx, yb), (bh * 0.2, bh * 0.2))
    paint = c.texture(jitter(rng, rng.choice([(0.7, 0.1, 0.1), (0.1, 0.2, 0.6), (0.8, 0.8, 0.8),
                                              (0.1, 0.1, 0.1), (0.5, 0.5, 0.55)]), 0.1), 0.3)
    c.paint(m, CAR, paint, thing=True)
    win = rect(c.mask(), cx - bw * 0.28, yb - bh * 0.95, cx + bw * 0.26, yb - bh * 0.65) & m
    c.img[win.astype(bool)] = (0.15, 0.2, 0.25)  # windows: same object, other colour


def _person(c: Canvas, cx, yb, s, cls) -> None:
    rng = c.rng
    ph = 0.32 * c.w * s
    m = c.mask()
    rect(m, cx - ph * 0.12, yb - ph * 0.8, cx + ph * 0.12, yb - ph * 0.4)  # torso
    rect(m, cx - ph * 0.1, yb - ph * 0.42, cx - ph * 0.02, yb)  # legs
    rect(m, cx + ph * 0.02, yb - ph * 0.42, cx + ph * 0.1, yb)
    ellipse(m, (cx, yb - ph * 0.88), (ph * 0.08, ph * 0.09))  # head
    c.paint(m, cls, c.texture(jitter(rng, rng.uniform(0.1, 0.8, 3), 0.1), 0.4), thing=True)


def _cyclist(c: Canvas, cx, yb, s) -> None:
    rng = c.rng
    ph = 0.3 * c.w * s
    m = c.mask()
    import cv2

    for wx in (cx - ph * 0.3, cx + ph * 0.3):
        cv2.circle(m, (int(wx), int(yb - ph * 0.18)), max(1, int(ph * 0.18)), 1,
                   max(1, int(ph * 0.04)))
    cv2.line(m, (int(cx - ph * 0.3), int(yb - ph * 0.18)), (int(cx + ph * 0.3), int(yb - ph * 0.18)),
             1, max(1, int(ph * 0.05)))
    rect(m, cx - ph * 0.08, yb - ph * 0.75, cx + ph * 0.08, yb - ph * 0.3)
    ellipse(m, (cx, yb - ph * 0.85), (ph * 0.07, ph * 0.08))
    c.paint(m, CYC, c.texture(jitter(rng, rng.uniform(0.1, 0.8, 3), 0.1), 0.4), thing=True)


def make(c: Canvas, n_objects: int, seed: int) -> Sample:
    generate(c, n_objects)
    return c.finish(SCHEMA, "street", seed)
