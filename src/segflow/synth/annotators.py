"""Simulated annotators: the exact labels of a synthetic scene, redrawn with typical mistakes.

Used to show and test agreement and consensus (``segflow agree``, ``segflow consensus``)
without people: each simulated annotator over- or under-paints objects by a few pixels, misses
some objects and gives some the wrong class, deterministically for a seed.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from segflow.annotations import LabelSchema, Panoptic
from segflow.errors import ParameterError


def simulate_annotator(pan: Panoptic, schema: LabelSchema, *, seed: int, grow: int = 0,
                       drop: float = 0.0, relabel: float = 0.0) -> Panoptic:
    """A redrawn copy of ``pan``.

    Parameters
    ----------
    pan : Panoptic
        Exact labels, with stuff segments numbered before things (as
        :func:`segflow.annotations.panoptic_from` and the synthetic scenes do).
    seed : int
        Seeds ``numpy.random.default_rng``; the same arguments give the same labels.
    grow : int
        Things are dilated (over-painted) by this many pixels, or eroded when negative (-20..20).
    drop, relabel : float
        Chance (0..1) that each thing is missed (its pixels go to the segment around it) or
        given another thing class.
    """
    if not -20 <= grow <= 20:
        raise ParameterError(f"grow must be -20..20 px, got {grow}")
    for name, p in (("drop", drop), ("relabel", relabel)):
        if not 0.0 <= p <= 1.0:  # also refuses NaN
            raise ParameterError(f"{name} must be a probability 0..1, got {p}")
    rng = np.random.default_rng(seed)
    ids = pan.seg_ids.astype(np.int32)
    things = [s for s in pan.segments if s.isthing]
    thing_ids = [c.id for c in schema.classes if c.isthing]
    ring = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    for s in things:
        if rng.random() < drop:
            m = ids == s.id
            around = (cv2.dilate(m.view(np.uint8), ring) > 0) & ~m
            counts = np.bincount(ids[around].ravel()) if around.any() else np.zeros(1, np.int64)
            ids[m] = int(np.argmax(counts))
    if grow:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(grow) + 1, 2 * abs(grow) + 1))
        is_thing = np.isin(ids, [s.id for s in things])
        if grow > 0:  # things spread over stuff and void (thing ids are the highest)
            grown = cv2.dilate(np.where(is_thing, ids, 0).astype(np.float32), k).astype(np.int32)
            ids = np.where((grown > 0) & ~is_thing, grown, ids)
        else:  # stuff and void spread over things
            big = 1 << 24  # exact in float32
            shrunk = cv2.erode(np.where(is_thing, big, ids).astype(np.float32), k)
            ids = np.where(is_thing & (shrunk < big), shrunk.astype(np.int32), ids)
    segs = []
    present = set(np.unique(ids).tolist())
    for s in pan.segments:
        if s.id not in present:
            continue
        if s.isthing and len(thing_ids) > 1 and rng.random() < relabel:
            s = replace(s, category_id=int(rng.choice([c for c in thing_ids if c != s.category_id])))
        segs.append(s)
    return Panoptic(ids, segs)


#: (grow px, drop, relabel) of the simulated annotators written by :func:`export_annotators`
STYLES = ((0, 0.0, 0.0), (3, 0.1, 0.1), (-2, 0.15, 0.05), (1, 0.05, 0.2), (-1, 0.1, 0.1))


def export_annotators(domain: str, out, *, k: int = 3, n: int = 10, seed: int = 0,
                      size: int = 256, fmt: str = "folders") -> list:
    """Write ``k`` simulated annotators' labels of the same ``n`` scenes as datasets
    ``out/annotator1`` .. ``out/annotatorK`` (annotator 1 draws exactly, the others with the
    mistakes of :data:`STYLES`, cycled); returns their paths."""
    from pathlib import Path

    from segflow.formats import Sample, write_dataset
    from segflow.synth import schema_of, synthesize

    if not 1 <= k <= 50:
        raise ParameterError(f"k must be 1..50 annotators, got {k}")
    schema = schema_of(domain)
    scenes = [synthesize(domain, seed=seed, index=i, size=size) for i in range(n)]
    paths = []
    for a in range(k):
        grow, drop, relabel = STYLES[a % len(STYLES)]
        path = Path(out) / f"annotator{a + 1}"
        write_dataset(path, fmt, schema, (
            Sample(f"{domain}_{seed}_{i:05d}", s.image,
                   simulate_annotator(s.panoptic, schema, seed=seed * 1000 + a * 100 + i, grow=grow,
                                      drop=drop, relabel=relabel))
            for i, s in enumerate(scenes)))
        paths.append(path)
    return paths
