"""The next images to label: where the model is least certain, spread over what it sees.

Uncertainty of a semantic model's image = mean over pixels of the normalised entropy of its
softmax (0 = one class certain everywhere, 1 = uniform); of a Mask R-CNN image = 1 - the mean
score of its detections (1 with none). The embedding is the image's mean class-probability
vector (the class histogram of its detections for Mask R-CNN). Selection: the ``2 n`` most
uncertain images form the pool; the most uncertain is taken first, then, greedily, the pool
image farthest (Euclidean, embedding) from those taken (farthest-point sampling), ties broken
by uncertainty, so the batch is uncertain and not n near-copies of one scene.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segflow.errors import SegflowError


def entropy_score(probs: np.ndarray) -> tuple[float, np.ndarray]:
    """(uncertainty in [0, 1], embedding) of one image's ``(C, H, W)`` probabilities."""
    p = np.asarray(probs, np.float64).reshape(probs.shape[0], -1)
    c = p.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(0)
    u = float(ent.mean() / np.log(c)) if c > 1 else 0.0
    return u, p.mean(1)


def select_diverse(uncertainty: np.ndarray, embedding: np.ndarray, n: int) -> list[int]:
    """Indices of ``n`` images: the most uncertain, then farthest-point over the pool."""
    u = np.asarray(uncertainty, np.float64)
    emb = np.asarray(embedding, np.float64).reshape(len(u), -1)
    if n <= 0 or len(u) == 0:
        return []
    pool = list(np.argsort(-u, kind="stable")[: min(len(u), 2 * n)])
    chosen = [pool.pop(0)]
    dist = np.linalg.norm(emb[pool] - emb[chosen[0]], axis=1)
    while pool and len(chosen) < n:
        k = int(np.lexsort((-u[pool], -dist))[0])  # farthest, then most uncertain
        chosen.append(pool.pop(k))
        dist = np.minimum(np.delete(dist, k), np.linalg.norm(emb[pool] - emb[chosen[-1]], axis=1)
                          if pool else np.zeros(0))
    return [int(i) for i in chosen]


def check_next(folder: str | Path, n: int) -> Path:
    """The arguments of :func:`next_images`, checked before any work is done."""
    if not 1 <= n <= 100_000:
        raise SegflowError(f"--next must be 1..100000, got {n}")
    folder = Path(folder)
    if not folder.is_dir():
        raise SegflowError(f"{folder}: --unlabelled must be a folder of images")
    return folder


def next_images(predictor, folder: str | Path, n: int) -> list[dict]:
    """Rank the images under ``folder`` for labelling; returns ``n`` of them as dicts with
    ``path``, ``uncertainty`` and ``rank``. Unreadable images are skipped."""
    from segflow.io import list_images, read_image

    folder = check_next(folder, n)
    paths, us, embs = [], [], []
    for p in list_images([folder]):
        try:
            img = read_image(p)
        except SegflowError:
            continue
        if predictor.instance:
            inst, _ = predictor.instances(img, score_threshold=0.05)
            scores = [i.score for i in inst.items]
            u = 1.0 - float(np.mean(scores)) if scores else 1.0
            size = max(predictor.schema.ids) + 1
            emb = np.bincount([i.category_id for i in inst.items if i.category_id < size],
                              minlength=size).astype(np.float64)
        else:
            u, emb = entropy_score(predictor.probabilities(img))
        paths.append(p)
        us.append(u)
        embs.append(emb)
    if not paths:
        raise SegflowError(f"{folder}: no readable images to rank")
    order = select_diverse(np.array(us), np.stack(embs), n)
    return [{"path": str(paths[i]), "uncertainty": us[i], "rank": r + 1}
            for r, i in enumerate(order)]
