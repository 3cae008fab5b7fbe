"""Synthetic scenes for five application domains, deterministic for a seed.

``synthesize(domain, seed=...)`` returns a :class:`Sample` with the image and exact semantic,
instance and panoptic ground truth. Domains: street, agriculture, medical, aerial, retail.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from segflow.annotations import LabelSchema
from segflow.errors import SegflowError
from segflow.synth import aerial, agriculture, medical, medical3d, retail, street
from segflow.synth.base import Canvas, Difficulty, Sample

#: domain name -> (generator, label schema, default object count at 256x256)
DOMAINS: dict[str, tuple[Callable[[Canvas, int, int], Sample], LabelSchema, int]] = {
    "street": (street.make, street.SCHEMA, 6),
    "agriculture": (agriculture.make, agriculture.SCHEMA, 14),
    "medical": (medical.make, medical.SCHEMA, 3),
    "aerial": (aerial.make, aerial.SCHEMA, 14),
    "retail": (retail.make, retail.SCHEMA, 18),
}

#: 3-D domains (written as NIfTI volumes by ``segflow data synth``): name -> (exporter, schema)
VOLUME_DOMAINS = {
    "medical3d": (medical3d.export_volumes, medical3d.SCHEMA),
}


def schema_of(domain: str) -> LabelSchema:
    return _get(domain)[1]


def _get(domain: str):
    try:
        return DOMAINS[domain]
    except KeyError:
        raise SegflowError(
            f"unknown domain {domain!r}; use one of {', '.join(DOMAINS)}") from None


#: the largest synthetic image side (a 8192x8192 scene is 200 MB of RGB and labels)
MAX_SIDE = 8192


def check_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """``(height, width)`` of a synthetic scene; a one-line error outside 32..MAX_SIDE."""
    h, w = (size, size) if isinstance(size, int) else size
    if not (32 <= h <= MAX_SIDE and 32 <= w <= MAX_SIDE):
        raise SegflowError(f"synth: size must be 32..{MAX_SIDE} pixels a side, got {w}x{h}")
    return h, w


def synthesize(
    domain: str,
    *,
    seed: int,
    size: int | tuple[int, int] = 256,
    n_objects: int | None = None,
    difficulty: str | Difficulty = "medium",
    index: int = 0,
) -> Sample:
    """Generate one scene.

    Parameters
    ----------
    domain : str
        One of :data:`DOMAINS`.
    seed, index : int
        The scene is drawn from ``numpy.random.default_rng([seed, domain, index])``: the same
        arguments give the same scene bit for bit, and sets made with different seeds never
        share a scene (use index 0..n-1 within a set).
    size : int or (height, width)
    n_objects : int, optional
        Number of things to place (default: the domain's, scaled with the image area).
    difficulty : "easy" | "medium" | "hard" or Difficulty
    """
    make, _schema, default_n = _get(domain)
    h, w = check_size(size)
    diff = difficulty if isinstance(difficulty, Difficulty) else Difficulty.preset(difficulty)
    if n_objects is None:
        n_objects = max(1, int(round(default_n * (h * w) / 256**2)))
    if n_objects < 0:
        raise SegflowError(f"synth: n_objects must be >= 0, got {n_objects}")
    rng = np.random.default_rng([seed, list(DOMAINS).index(domain), index])
    return make(Canvas(h, w, rng, diff), n_objects, seed)


__all__ = ["DOMAINS", "VOLUME_DOMAINS", "Difficulty", "Sample", "schema_of", "synthesize"]
