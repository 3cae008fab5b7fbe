"""Consensus labels from ``k >= 2`` annotators, and object matching across annotators.

* Semantic: per-pixel **majority vote** (:func:`segflow.metrics.agreement.majority_vote`; ties
  go to the lowest class id, or to the ignore id with ``tie="ignore"``; ignore labels abstain)
  or **STAPLE** (Warfield et al., IEEE TMI 2004) in its multi-label form (Rohlfing et al. 2004)
  through SimpleITK's ``MultiLabelSTAPLEImageFilter``: each annotator gets a confusion matrix
  estimated by expectation-maximisation, and a pixel takes the class of highest posterior;
  undecided pixels (a tie of posteriors) get the ignore id. The ignore id is passed to STAPLE
  as one more label (an annotator's "don't score" is an opinion about the pixel too).
* Instances: objects are matched across annotators by mask IoU with the Hungarian algorithm
  (:func:`match_objects`; ``scipy.optimize.linear_sum_assignment``, pairs below ``min_iou``
  dropped). Annotators are visited in order; each one's objects are matched against the first
  member of every group so far, and unmatched objects start new groups. A group becomes a
  consensus object when more than half of the ``k`` annotators drew it (a tie is no object);
  its mask is the per-pixel majority (or STAPLE) of the ``k`` masks, an annotator without a
  member contributing an empty mask; its class is the members' majority (ties: lowest id).
* Panoptic: the stuff comes from the semantic consensus of the category maps, the things from
  the instance consensus, combined by :func:`segflow.annotations.panoptic_from`.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as mask_utils

from segflow.annotations import Instance, Instances, LabelSchema, Panoptic, SemanticMask, panoptic_from
from segflow.errors import ParameterError, SegflowError
from segflow.metrics.agreement import _check_n
from segflow.metrics.voting import _compact_all, majority_vote

METHODS = ("majority", "staple")


def _sitk():
    from segflow._extras import require

    require("qc", what="STAPLE consensus")
    import SimpleITK

    return SimpleITK


def staple(maps: list[np.ndarray], num_classes: int, *, ignore_index: int = 255,
           where: str = "consensus") -> np.ndarray:
    """Multi-label STAPLE of two or more label maps (int32 class ids; undecided pixels get
    ``ignore_index``). Labels are renumbered to those used before calling SimpleITK, so the
    EM runs over the used labels only."""
    n = _check_n(num_classes)
    cs = _compact_all(maps, n, ignore_index, where)
    if cs[0].size == 0:
        return np.zeros(cs[0].shape, np.int32)
    used = np.unique(np.concatenate([np.unique(c) for c in cs]))
    lut = np.zeros(n + 1, np.uint16)
    lut[used] = np.arange(len(used), dtype=np.uint16)
    if len(used) == 1:
        out = np.full(cs[0].shape, used[0], np.int32)
    else:
        sitk = _sitk()
        f = sitk.MultiLabelSTAPLEImageFilter()
        f.SetLabelForUndecidedPixels(len(used))
        res = sitk.GetArrayFromImage(f.Execute([sitk.GetImageFromArray(lut[c]) for c in cs]))
        back = np.append(used, n).astype(np.int32)
        out = back[res]
    out[out == n] = ignore_index
    return out


def semantic_consensus(maps: list[np.ndarray], num_classes: int, *, method: str = "majority",
                       ignore_index: int = 255, tie: str = "lowest",
                       where: str = "consensus") -> np.ndarray:
    """Majority vote or STAPLE of ``(H, W)`` label maps; int32 class ids."""
    if method == "majority":
        return majority_vote(maps, num_classes, ignore_index=ignore_index, tie=tie, where=where)
    if method == "staple":
        return staple(maps, num_classes, ignore_index=ignore_index, where=where)
    raise ParameterError(f"unknown consensus method {method!r}; use one of {', '.join(METHODS)}")


# ---- objects --------------------------------------------------------------------------------


def _rles(items: list[Instance]) -> list[dict]:
    out = []
    for it in items:
        c = it.rle["counts"]
        out.append({"size": it.rle["size"], "counts": c.encode("ascii") if isinstance(c, str) else c})
    return out


def iou_matrix(a: list[Instance], b: list[Instance]) -> np.ndarray:
    """``(len(a), len(b))`` mask IoU (pycocotools on the RLEs, no decoding)."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    return np.asarray(mask_utils.iou(_rles(a), _rles(b), [0] * len(b)), np.float64).reshape(
        len(a), len(b))


def match_objects(a: list[Instance], b: list[Instance], *, min_iou: float = 0.5
                  ) -> list[tuple[int, int, float]]:
    """One-to-one matching of two annotators' objects maximising the summed mask IoU
    (Hungarian algorithm); returns ``(index in a, index in b, IoU)`` for pairs with
    IoU >= ``min_iou``, sorted by index in ``a``. Classes are not compared: a class
    disagreement is an object both drew, to be voted on."""
    if not isinstance(min_iou, int | float) or not 0 < min_iou <= 1:
        raise ParameterError(f"min_iou must be in (0, 1], got {min_iou!r}")
    from scipy.optimize import linear_sum_assignment

    iou = iou_matrix(a, b)
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(iou, maximize=True)
    return [(int(r), int(c), float(iou[r, c])) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]


def group_objects(sets: list[list[Instance]], *, min_iou: float = 0.5
                  ) -> list[list[tuple[int, int]]]:
    """Groups of matching objects across annotators: each group a list of ``(annotator,
    index)`` with at most one object per annotator (see the module docstring for the order)."""
    groups: list[list[tuple[int, int]]] = []
    for j, items in enumerate(sets):
        anchors = [sets[g[0][0]][g[0][1]] for g in groups]
        matched = set()
        for gi, oi, _ in match_objects(anchors, items, min_iou=min_iou):
            groups[gi].append((j, oi))
            matched.add(oi)
        groups.extend([[(j, oi)] for oi in range(len(items)) if oi not in matched])
    return groups


def _vote_class(cats: list[int]) -> int:
    vals, counts = np.unique(np.asarray(cats, np.int64), return_counts=True)
    return int(vals[np.argmax(counts)])  # np.unique sorts: ties go to the lowest id


def instance_consensus(sets: list[Instances], *, method: str = "majority", min_iou: float = 0.5,
                       where: str = "consensus") -> Instances:
    """Consensus objects of ``k >= 2`` annotators' instances of one image."""
    if method not in METHODS:
        raise ParameterError(f"unknown consensus method {method!r}; use one of {', '.join(METHODS)}")
    k = len(sets)
    if k < 2:
        raise SegflowError(f"{where}: consensus needs at least two annotators, got {k}")
    h, w = sets[0].height, sets[0].width
    for s in sets[1:]:
        if (s.height, s.width) != (h, w):
            raise SegflowError(f"{where}: instances differ in size: {w}x{h} and {s.width}x{s.height}")
    items = [s.items for s in sets]
    out = Instances(h, w)
    for group in group_objects(items, min_iou=min_iou):
        if 2 * len(group) <= k:
            continue
        members = [items[a][i] for a, i in group]
        masks = [m.mask for m in members]
        ys, xs = np.nonzero(np.logical_or.reduce(masks))
        if ys.size == 0:
            continue
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        crops = [m[y0:y1, x0:x1] for m in masks]
        crops += [np.zeros_like(crops[0])] * (k - len(crops))
        if method == "majority":
            keep = 2 * np.sum(crops, axis=0, dtype=np.int32) > k  # a tie is background
        else:
            keep = staple(crops, 2, ignore_index=255, where=where) == 1
        if not keep.any():
            continue
        full = np.zeros((h, w), np.uint8)
        full[y0:y1, x0:x1] = keep
        crowd = 2 * sum(m.iscrowd for m in members) > len(members)
        out.items.append(Instance.from_mask(full, _vote_class([m.category_id for m in members]),
                                            id=len(out.items) + 1, iscrowd=crowd))
    return out


def panoptic_consensus(pans: list[Panoptic], schema: LabelSchema, *, method: str = "majority",
                       min_iou: float = 0.5, where: str = "consensus") -> Panoptic:
    """Consensus of ``k >= 2`` panoptic labellings: stuff by the semantic consensus of the
    category maps, things by :func:`instance_consensus`."""
    ign = schema.ignore_index
    sem = semantic_consensus([p.category_map(ign) for p in pans], schema.num_classes,
                             method=method, ignore_index=ign, where=where)
    things = instance_consensus([p.to_instances() for p in pans], method=method,
                                min_iou=min_iou, where=where)
    return panoptic_from(SemanticMask(sem, ign), things, schema)
