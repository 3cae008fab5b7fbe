"""Exact Lloyd k-means on many points, accelerated by grid boxes.

scikit-learn's ``KMeans`` spends its time on every point at every iteration. An image has
millions of pixels but they crowd into a small part of colour space, so we:

1. put every point in an axis-aligned box of a regular grid over the feature range and keep,
   per non-empty box, the count, the sum and the sum of squared norms of its points;
2. start from weighted k-means++ on the box means (scikit-learn, ``sample_weight``);
3. run Lloyd iterations on **all points**: a Voronoi cell is convex, so when every corner of
   a box is nearest to the same centre, every point inside is too, and the whole box is
   assigned at once from its sums. Only points of boxes that straddle a cell boundary are
   assigned one by one.

Each iteration is the exact Lloyd step on every point (no subsample, no approximation), so the
algorithm converges to a fixed point of the all-pixel objective and reports its exact inertia.
This filtering idea is that of Kanungo et al. (2002) with a flat grid instead of a k-d tree.
No library we use offers it, hence this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import cv2
import numpy as np
from sklearn.cluster import kmeans_plusplus


@dataclass(frozen=True)
class LloydResult:
    labels: np.ndarray  # (N,) int32
    centers: np.ndarray  # (k, F) float64
    inertia: float
    n_iter: int


def _grid(x: np.ndarray, per_dim: int):
    # cv2.reduce: NumPy's axis-0 min/max over an (N, F) array is several times slower.
    lo = cv2.reduce(x, 0, cv2.REDUCE_MIN).ravel().astype(np.float64)
    hi = cv2.reduce(x, 0, cv2.REDUCE_MAX).ravel().astype(np.float64)
    width = (hi - lo) / per_dim
    width[width == 0] = 1.0
    q = np.zeros(x.shape[0], np.int32 if per_dim ** x.shape[1] < 2**31 else np.int64)
    for f in range(x.shape[1]):
        idx = ((x[:, f] - np.float32(lo[f])) * np.float32(1.0 / width[f])).astype(q.dtype)
        np.minimum(idx, per_dim - 1, out=idx)
        q *= per_dim
        q += idx
    return q, lo, width


def _nearest(points: np.ndarray, centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and squared distance to the nearest centre (ties: lowest index)."""
    p = points.astype(np.float64, copy=False)
    d = (p * p).sum(1)[:, None] - 2.0 * p @ centers.T + (centers * centers).sum(1)
    lab = d.argmin(1)
    return lab, np.maximum(d[np.arange(len(lab)), lab], 0)


def _wsum(idx: np.ndarray, w: np.ndarray | None, minlength: int, values=None) -> np.ndarray:
    if values is None:
        return (np.bincount(idx, minlength=minlength).astype(np.float64) if w is None
                else np.bincount(idx, weights=w, minlength=minlength))
    return np.bincount(idx, weights=values if w is None else w * values, minlength=minlength)


@dataclass(frozen=True)
class Boxes:
    """Points grouped in grid boxes: per non-empty box its id, count, sum and sum of squares."""

    q: np.ndarray  # (N,) index of each point's box among the non-empty ones
    ids: np.ndarray  # (B,) grid ids of the non-empty boxes
    cnt: np.ndarray
    sums: np.ndarray  # (B, F)
    sqs: np.ndarray
    lo: np.ndarray
    width: np.ndarray
    per_dim: int

    @property
    def means(self) -> np.ndarray:
        return self.sums / self.cnt[:, None]


def summarize(x: np.ndarray, *, weights: np.ndarray | None = None, per_dim: int | None = None,
              grid=None) -> Boxes:
    """Group ``x`` ``(N, F)`` float32 into grid boxes (about 2^18 of them at most)."""
    nf = x.shape[1]
    if per_dim is None:
        per_dim = grid[3] if grid is not None else max(2, int(round(2 ** (18 / nf))))
    q, lo, width = _grid(x, per_dim) if grid is None else grid[:3]
    ids, q = _compact(q, per_dim ** nf)
    nb = len(ids)
    w = weights
    cnt = _wsum(q, w, nb)
    sums = np.stack([_wsum(q, w, nb, x[:, f]) for f in range(nf)], 1)
    sqs = _wsum(q, w, nb, np.einsum("ij,ij->i", x, x))
    return Boxes(q, ids, cnt, sums, sqs, lo, width, per_dim)


def lloyd(
    x: np.ndarray, k: int, *, weights: np.ndarray | None = None, seed: int = 0, n_init: int = 3,
    max_iter: int = 300, tol: float = 1e-4, per_dim: int | None = None,
    grid: tuple | None = None, boxes: Boxes | None = None,
) -> LloydResult:
    """Exact weighted Lloyd k-means of ``x`` ``(N, F)``; see the module docstring.

    ``weights`` (optional, ``(N,)``) are point multiplicities; the objective is
    ``sum_i w_i ||x_i - c(x_i)||^2``. Iterations stop when the centres move less than ``tol``
    times the mean feature variance (scikit-learn's criterion) or after ``max_iter``.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    nf = x.shape[1]
    w = None if weights is None else np.asarray(weights, np.float64)
    b = boxes if boxes is not None else summarize(x, weights=w, per_dim=per_dim, grid=grid)
    q, nb, cnt, sums, sqs = b.q, len(b.ids), b.cnt, b.sums, b.sqs
    var = (sqs.sum() / cnt.sum() - ((sums.sum(0) / cnt.sum()) ** 2).sum()) / nf
    tol_abs = tol * max(var, 0.0)
    ids, lo, width, per_dim = b.ids, b.lo, b.width, b.per_dim

    k = min(k, nb)
    centers = _init_centers(b, k, seed=seed, n_init=n_init, tol=tol_abs)

    # Box corners in feature space: (nb * 2^F, F).
    digits = np.stack([(ids // per_dim ** (nf - 1 - f)) % per_dim for f in range(nf)], 1)
    offs = np.array(list(product((0, 1), repeat=nf)), np.float64)
    corners = (lo + (digits[:, None, :] + offs[None]) * width).reshape(-1, nf)

    cache: dict = {}
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        bin_lab, whole, px_idx, px_lab = _assign(corners, centers, q, x, nb, 2**nf, cache)
        tot = _wsum(bin_lab[whole], None, k, cnt[whole])
        new = np.stack([_wsum(bin_lab[whole], None, k, sums[whole, f]) for f in range(nf)], 1)
        if px_idx.size:
            wp = None if w is None else w[px_idx]
            tot += _wsum(px_lab, wp, k)
            xs = cache["xs"]
            for f in range(nf):
                new[:, f] += _wsum(px_lab, wp, k, xs[:, f])
        empty = tot == 0
        new[~empty] /= tot[~empty, None]
        new[empty] = centers[empty]  # an emptied cluster keeps its centre
        shift = float(((new - centers) ** 2).sum())
        centers = new
        if shift <= tol_abs:
            break

    bin_lab, whole, px_idx, px_lab = _assign(corners, centers, q, x, nb, 2**nf, cache)
    labels = bin_lab[q].astype(np.int32)
    labels[px_idx] = px_lab
    c = centers[bin_lab[whole]]
    inertia = float((sqs[whole] - 2 * (sums[whole] * c).sum(1) + cnt[whole] * (c * c).sum(1)).sum())
    if px_idx.size:
        d = _nearest(cache["xs"], centers)[1]
        inertia += float(d.sum() if w is None else (w[px_idx] * d).sum())
    return LloydResult(labels, centers, max(inertia, 0.0), it)


def _small_lloyd(x: np.ndarray, w: np.ndarray, centers: np.ndarray, tol: float,
                 max_iter: int = 100) -> tuple[np.ndarray, float]:
    """Plain weighted Lloyd on a few thousand points (the box means)."""
    k = len(centers)
    for _ in range(max_iter):
        lab = _nearest(x, centers)[0]
        tot = np.bincount(lab, weights=w, minlength=k)
        new = np.stack([np.bincount(lab, weights=w * x[:, f], minlength=k)
                        for f in range(x.shape[1])], 1)
        keep = tot > 0
        new[keep] /= tot[keep, None]
        new[~keep] = centers[~keep]
        shift = float(((new - centers) ** 2).sum())
        centers = new
        if shift <= tol:
            break
    lab, d = _nearest(x, centers)
    return centers, float((w * d).sum())


def _coarsen(b: Boxes, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge boxes ``factor`` at a time along every axis: (means, counts) of the coarse boxes."""
    nf = b.sums.shape[1]
    coarse_dim = -(-b.per_dim // factor)
    cid = np.zeros(len(b.ids), np.int64)
    for f in range(nf):
        cid = cid * coarse_dim + (b.ids // b.per_dim ** (nf - 1 - f)) % b.per_dim // factor
    uniq, inv = np.unique(cid, return_inverse=True)
    cnt = np.bincount(inv, weights=b.cnt, minlength=len(uniq))
    sums = np.stack([np.bincount(inv, weights=b.sums[:, f], minlength=len(uniq))
                     for f in range(nf)], 1)
    return sums / cnt[:, None], cnt


def _init_centers(b: Boxes, k: int, *, seed: int, n_init: int, tol: float) -> np.ndarray:
    """Best of ``n_init`` weighted k-means++ seedings (scikit-learn's ``kmeans_plusplus``) on
    coarse box means (about 4,000), each refined by Lloyd there, then once on the box means.

    (scikit-learn's ``KMeans`` does the same but spends ~15 ms per run in set-up on a problem
    this small; the seeding is the part worth reusing.)
    """
    means, cnt = b.means, b.cnt
    factor = 1
    while len(means) > 4000 and b.per_dim // factor > 4:
        factor *= 2
        means, cnt = _coarsen(b, factor)
    rng = np.random.RandomState(seed)
    best, best_inertia = None, np.inf
    for _ in range(min(n_init, len(means)) if k <= len(means) else 1):
        c0, _ = kmeans_plusplus(means, min(k, len(means)), sample_weight=cnt, random_state=rng)
        c, inertia = _small_lloyd(means, cnt, c0.astype(np.float64), tol)
        if inertia < best_inertia:
            best, best_inertia = c, inertia
    if factor > 1:
        if len(best) < k:  # fewer coarse boxes than clusters: seed the rest on the fine boxes
            extra, _ = kmeans_plusplus(b.means, k, sample_weight=b.cnt, random_state=rng)
            best = np.vstack([best, extra[len(best):]])
        best, _ = _small_lloyd(b.means, b.cnt, best, tol)
    return best


def _compact(q: np.ndarray, n_boxes: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-empty box ids and each point's index among them, without sorting."""
    seen = np.zeros(n_boxes, np.bool_)
    seen[q] = True
    ids = np.flatnonzero(seen)
    rank = np.zeros(n_boxes, np.int32)
    rank[ids] = np.arange(len(ids), dtype=np.int32)
    return ids, rank[q]


def _assign(corners, centers, q, x, nb, ncorner, cache):
    """Nearest centre per box (when all its corners agree) and per point of the other boxes."""
    clab = _nearest(corners, centers)[0].reshape(nb, ncorner)
    bin_lab = clab[:, 0]
    straddle = (clab != bin_lab[:, None]).any(1)
    # The straddling set changes little between iterations: gather its points only when it does.
    if "straddle" not in cache or not np.array_equal(cache["straddle"], straddle):
        px_idx = np.flatnonzero(straddle[q])
        cache.update(straddle=straddle, px_idx=px_idx, xs=x[px_idx])
    px_idx = cache["px_idx"]
    px_lab = (_nearest(cache["xs"], centers)[0].astype(np.int32) if px_idx.size
              else np.zeros(0, np.int32))
    return bin_lab, ~straddle, px_idx, px_lab
