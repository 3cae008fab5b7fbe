"""Votes of ``k >= 2`` annotators per pixel: the disagreement map and the majority vote.

Label maps as in :mod:`segflow.metrics.agreement`; ignore labels are abstentions. The vote
counts are streamed class by class (the top two kept per pixel), so no ``(C, H, W)`` array is
built; two annotators take a shortcut without counts.
"""

from __future__ import annotations

import cv2
import numpy as np

from segflow.errors import ParameterError, SegflowError
from segflow.metrics.agreement import _check_n, _same_shape, compact, ne


class Disagreement:
    """Per-pixel disagreement of ``k`` annotators.

    Attributes
    ----------
    count : (H, W) uint8
        Annotators whose label differs from the pixel's most-voted label (0: all agree; ignore
        labels abstain and never count).
    majority, runner_up : (H, W) int32
        The most-voted class (ties: the lowest id) and the next one (``ignore_index`` where no
        annotator voted for another class, or nobody voted); computed when first read.
    k : int
        Number of annotators.
    """

    def __init__(self, count: np.ndarray, k: int, ignore_index: int, n: int,
                 top: np.ndarray, second: np.ndarray):
        self.count, self.k, self.ignore_index = count, k, ignore_index
        self._n, self._top, self._second = n, top, second

    def _labels(self, m: np.ndarray) -> np.ndarray:
        out = m.astype(np.int32)
        out[m == self._n] = self.ignore_index
        return out

    @property
    def majority(self) -> np.ndarray:
        return self._labels(self._top)

    @property
    def runner_up(self) -> np.ndarray:
        return self._labels(self._second)

    @property
    def fraction(self) -> float:
        """Share of the pixels where at least one annotator disagrees."""
        return cv2.countNonZero(self.count) / self.count.size if self.count.size else 0.0


def _compact_all(maps: list[np.ndarray], n: int, ignore_index: int, where: str) -> list[np.ndarray]:
    if len(maps) < 2:
        raise SegflowError(f"{where}: agreement needs at least two annotators, got {len(maps)}")
    if len(maps) > 255:
        raise SegflowError(f"{where}: at most 255 annotators, got {len(maps)}")
    cs = [compact(m, n, ignore_index, where=where) for m in maps]
    for c in cs[1:]:
        _same_shape(cs[0], c, where)
    return cs


def _used(cs: list[np.ndarray], n: int) -> np.ndarray:
    used = np.zeros(n + 1, bool)
    for c in cs:
        if c.dtype == np.uint8 and c.size:
            used |= cv2.calcHist([c], [0], None, [256], [0, 256])[: n + 1, 0] > 0
        else:
            used |= np.bincount(c.ravel(), minlength=n + 1)[: n + 1] > 0
    return np.flatnonzero(used[:n])


def _top2(cs: list[np.ndarray], n: int):
    """Streaming top-two vote counts over the classes used: (best, arg, second, arg2) with
    ``n`` as the label where nobody voted. One pass per class; no (C, H, W) array."""
    shape = cs[0].shape
    best1 = np.zeros(shape, np.uint8)
    best2 = np.zeros(shape, np.uint8)
    arg1 = np.full(shape, n, np.int32)
    arg2 = np.full(shape, n, np.int32)
    c = np.empty(shape, np.uint8)
    for cid in _used(cs, n):
        c[...] = 0
        for x in cs:
            c += x == cid
        gt1 = c > best1  # strictly greater: on a tie the lower class id keeps first place
        gt2 = ~gt1 & (c > best2)
        np.copyto(best2, best1, where=gt1)
        np.copyto(arg2, arg1, where=gt1)
        np.copyto(best2, c, where=gt2)
        arg2[gt2] = cid
        np.copyto(best1, c, where=gt1)
        arg1[gt1] = cid
    return best1, arg1, best2, arg2


def disagreement(maps: list[np.ndarray], num_classes: int, *, ignore_index: int = 255,
                 where: str = "agreement") -> Disagreement:
    """The :class:`Disagreement` of two or more label maps of one image."""
    n = _check_n(num_classes)
    cs = _compact_all(maps, n, ignore_index, where)
    if cs[0].size == 0:
        z = np.zeros(cs[0].shape, np.uint8)
        return Disagreement(z, len(cs), ignore_index, n, z, z)
    if len(cs) == 2:  # the common case (one annotation against another), without vote counts
        a, b = cs
        diff = cv2.compare(a, b, cv2.CMP_NE)
        lo, hi = cv2.min(a, b), cv2.max(a, b)  # the ignore slot n is above every class
        if hi.max() == n:  # someone abstained: the other's label stands, and nobody differs
            both = cv2.bitwise_and(ne(a, n), ne(b, n))
            diff = cv2.bitwise_and(diff, both)
        second = hi.copy()
        second[diff == 0] = n
        return Disagreement(np.minimum(diff, 1), 2, ignore_index, n, lo, second)
    best1, arg1, _, arg2 = _top2(cs, n)
    voters = np.zeros(cs[0].shape, np.uint8)
    for x in cs:
        voters += x != n
    return Disagreement(voters - best1, len(cs), ignore_index, n, arg1, arg2)


def majority_vote(maps: list[np.ndarray], num_classes: int, *, ignore_index: int = 255,
                  tie: str = "lowest", where: str = "consensus") -> np.ndarray:
    """Per-pixel majority vote of two or more label maps, as int32 class ids.

    Ignore labels abstain; a pixel nobody labelled is ``ignore_index``. ``tie``: where two or
    more classes share the most votes, ``"lowest"`` takes the lowest class id among them,
    ``"ignore"`` writes ``ignore_index``."""
    if tie not in ("lowest", "ignore"):
        raise ParameterError(f"tie must be 'lowest' or 'ignore', got {tie!r}")
    n = _check_n(num_classes)
    cs = _compact_all(maps, n, ignore_index, where)
    best1, arg1, best2, _ = _top2(cs, n)
    if tie == "ignore":
        arg1[(best1 == best2) & (best1 > 0)] = n
    lut = np.arange(n + 1, dtype=np.int32)
    lut[n] = ignore_index
    return lut[arg1]
