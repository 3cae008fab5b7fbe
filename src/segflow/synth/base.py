"""Shared machinery of the synthetic scene generators.

A :class:`Canvas` holds the image being painted (float32 RGB in [0, 1]), the class of every
pixel and the object id of every thing pixel. Painting a region overwrites what was there, so
later objects occlude earlier ones and the ground truth stays exact. Textures are smooth noise
made at low resolution and resized (cheap), so one 256x256 scene costs a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

from segflow.annotations import LabelSchema, Panoptic, Segment, SemanticMask, stuff_segments
from segflow.errors import SegflowError


@dataclass(frozen=True)
class Difficulty:
    """Controls, each 0 (easy) .. 1 (hard).

    ``texture``: within-region colour variation; ``noise``: sensor noise; ``blur``: defocus;
    ``lighting``: uneven illumination; ``scale``: spread of object sizes; ``occlusion``: how
    much objects overlap; ``imbalance``: how skewed the class frequencies are.
    """

    texture: float = 0.5
    noise: float = 0.3
    blur: float = 0.3
    lighting: float = 0.4
    scale: float = 0.5
    occlusion: float = 0.4
    imbalance: float = 0.3

    @classmethod
    def preset(cls, name: str) -> Difficulty:
        try:
            return _PRESETS[name]
        except KeyError:
            raise SegflowError(
                f"unknown difficulty {name!r}; use one of {', '.join(_PRESETS)}") from None

    def __post_init__(self) -> None:
        for k in ("texture", "noise", "blur", "lighting", "scale", "occlusion", "imbalance"):
            v = getattr(self, k)
            if not 0 <= v <= 1:
                raise SegflowError(f"difficulty: {k} must be in 0..1, got {v}")


_PRESETS = {
    "easy": Difficulty(0.2, 0.1, 0.1, 0.1, 0.2, 0.1, 0.1),
    "medium": Difficulty(),
    "hard": Difficulty(0.9, 0.7, 0.6, 0.8, 0.9, 0.8, 0.7),
}


@dataclass
class Sample:
    """One generated scene: image, semantic ground truth, panoptic ground truth, schema."""

    image: np.ndarray  # (H, W, 3) uint8 RGB, or (H, W) uint8 for grey domains
    semantic: SemanticMask
    panoptic: Panoptic
    schema: LabelSchema
    domain: str
    seed: int

    @property
    def instances(self):
        return self.panoptic.to_instances()


class Texture(NamedTuple):
    colour: np.ndarray
    amount: float
    cells: int
    variant: int
    sign: float


@dataclass
class Canvas:
    h: int
    w: int
    rng: np.random.Generator
    diff: Difficulty
    img: np.ndarray = field(init=False)
    sem: np.ndarray = field(init=False)
    inst: np.ndarray = field(init=False)
    inst_cls: dict[int, int] = field(init=False, default_factory=dict)
    _fields: dict = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.img = np.zeros((self.h, self.w, 3), np.float32)
        self.sem = np.zeros((self.h, self.w), np.uint8)
        self.inst = np.zeros((self.h, self.w), np.int32)

    # -- textures --------------------------------------------------------------------------
    def noise_field(self, cells: int = 8, channels: int = 1) -> np.ndarray:
        """Smooth noise in [-1, 1]: random values on a coarse grid, resized (bicubic)."""
        g = self.rng.uniform(-1, 1, (cells, cells, channels)).astype(np.float32)
        out = cv2.resize(g, (self.w, self.h), interpolation=cv2.INTER_LINEAR)
        return out.reshape(self.h, self.w, channels)

    def _field(self, cells: int, variant: int) -> np.ndarray:
        # A handful of shared fields per scene (snapped scales, two variants): each costs a
        # full-size resize, so regions draw their grain from these rather than their own.
        cells = min((4, 12, 32), key=lambda c: abs(c - cells))
        key = (cells, variant % 2)
        if key not in self._fields:
            self._fields[key] = self.noise_field(cells, 1)[..., 0]
        return self._fields[key]

    def texture(self, colour, amount: float | None = None, cells: int = 16) -> Texture:
        """A texture around ``colour`` (RGB 0..1): coarse brightness variation, fine grain and a
        little chroma noise. Evaluated lazily on the painted pixels only (see :meth:`paint`)."""
        a = self.diff.texture if amount is None else amount
        return Texture(np.asarray(colour, np.float32), float(a), int(cells),
                       int(self.rng.integers(0, 3)), float(self.rng.choice([-1.0, 1.0])))

    def _eval(self, tex: Texture, m: np.ndarray) -> np.ndarray:
        coarse = self._field(max(2, tex.cells // 4), tex.variant)[m] * tex.sign
        fine = self._field(tex.cells, tex.variant)[m]
        chroma = self._field(12, tex.variant + 1)[m]
        out = tex.colour[None, :] * (1 + 0.35 * tex.amount * coarse)[:, None]
        out += (0.12 * tex.amount * fine)[:, None]
        out[:, 0] += 0.04 * tex.amount * chroma
        out[:, 2] -= 0.04 * tex.amount * chroma
        return out

    # -- painting ----------------------------------------------------------------------------
    def paint(self, mask: np.ndarray, cls: int, tex, *, thing: bool = False) -> int:
        """Paint ``mask`` with class ``cls`` and a :class:`Texture` or plain RGB colour;
        things get a new object id (returned)."""
        m = mask.astype(bool)
        if not m.any():
            return 0
        cls = int(cls)
        if isinstance(tex, Texture):
            self.img[m] = self._eval(tex, m)
        else:
            self.img[m] = np.asarray(tex, np.float32).reshape(1, 3)
        self.sem[m] = cls
        if thing:
            oid = len(self.inst_cls) + 1
            self.inst[m] = oid
            self.inst_cls[oid] = cls
            return oid
        self.inst[m] = 0
        return 0

    def mask(self) -> np.ndarray:
        return np.zeros((self.h, self.w), np.uint8)

    # -- finishing -----------------------------------------------------------------------------
    def finish(self, schema: LabelSchema, domain: str, seed: int, *, grey: bool = False) -> Sample:
        d = self.diff
        img = self.img
        if d.lighting > 0:  # a linear gradient plus a vignette
            x = np.linspace(-0.5, 0.5, self.w, dtype=np.float32)[None, :]
            y = np.linspace(-0.5, 0.5, self.h, dtype=np.float32)[:, None]
            ang = self.rng.uniform(0, 2 * np.pi)
            gain = (1 + 0.6 * d.lighting * (np.float32(np.cos(ang)) * x + np.float32(np.sin(ang)) * y)
                    - 0.5 * d.lighting * (x * x + y * y))
            img = img * gain[..., None]
        if d.blur > 0:
            img = cv2.GaussianBlur(img, (0, 0), 0.2 + 1.5 * d.blur)
        if grey:
            img = img[..., :1]
        if d.noise > 0:
            img = img + self.rng.standard_normal(img.shape, dtype=np.float32) * np.float32(
                0.08 * d.noise)
        out = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
        out = out[..., 0] if grey else out
        return Sample(out, SemanticMask(self.sem.copy(), schema.ignore_index),
                      self.panoptic(schema), schema, domain, seed)

    def panoptic(self, schema: LabelSchema) -> Panoptic:
        """Stuff segments (one per class present) and one segment per visible object."""
        seg = np.zeros((self.h, self.w), np.int32)
        segments: list[Segment] = []
        stuff_segments(self.sem, schema.stuff_ids, seg, segments, where=self.inst == 0)
        nid = len(segments)
        present = np.unique(self.inst)
        for oid in present[present > 0]:
            nid += 1
            seg[self.inst == oid] = nid
            segments.append(Segment(nid, self.inst_cls[int(oid)], True, int(oid)))
        return Panoptic(seg, segments)


def ellipse(mask: np.ndarray, centre, axes, angle: float = 0.0) -> np.ndarray:
    cv2.ellipse(mask, (int(centre[0]), int(centre[1])), (max(1, int(axes[0])), max(1, int(axes[1]))),
                float(angle), 0, 360, 1, -1)
    return mask


def polygon(mask: np.ndarray, pts) -> np.ndarray:
    cv2.fillPoly(mask, [np.asarray(pts, np.int32).reshape(-1, 2)], 1)
    return mask


def rect(mask: np.ndarray, x0, y0, x1, y1) -> np.ndarray:
    cv2.rectangle(mask, (int(x0), int(y0)), (int(x1), int(y1)), 1, -1)
    return mask


def rotated_rect(mask: np.ndarray, centre, size, angle: float) -> np.ndarray:
    box = cv2.boxPoints(((float(centre[0]), float(centre[1])), (float(size[0]), float(size[1])),
                         float(angle)))
    return polygon(mask, box)


def jitter(rng: np.random.Generator, colour, amount: float = 0.08):
    return np.clip(np.asarray(colour, np.float32) + rng.uniform(-amount, amount, 3), 0, 1)
