"""``segflow eval --task semantic`` on folders of NIfTI masks: Dice and IoU from one confusion
matrix over all volumes, plus HD95 and surface Dice per class in millimetres.

Ground truth: a folder of ``NAME.nii(.gz)`` masks, or a synthetic set's folder (``labels/`` and
``schema.json``). Predictions: ``NAME.nii.gz`` or ``NAME_mask.nii.gz`` (what ``segflow
segment`` and ``segflow predict`` write), on the same grid as the ground truth (the same shape
and affine; a mask on another grid is refused, never resampled silently).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segflow.errors import SegflowError
from segflow.metrics import SemanticEvaluator
from segflow.volume.io import check_aligned, list_volumes, read_volume, volume_stem
from segflow.volume.metrics import SurfaceEvaluator


def _root(gt: Path) -> Path:
    return gt / "labels" if (gt / "labels").is_dir() else gt


def is_volume_folder(path: str | Path) -> bool:
    """True when ``path`` holds NIfTI masks (directly, or under ``labels/``) and no PNGs."""
    p = Path(path)
    if not p.is_dir():
        return False
    root = _root(p)
    return bool(list_volumes([root])) and not any(root.rglob("*.png"))


def _preds(pred: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in list_volumes([pred]):
        s = volume_stem(p)
        out.setdefault(s[:-5] if s.endswith("_mask") else s, p)
    return out


def evaluate_volumes(gt: str | Path, pred: str | Path, *, num_classes: int | None = None,
                     tolerance_mm: float = 1.0) -> dict:
    """Returns the semantic summary (as ``SemanticResult.to_dict()``) with ``hd95_mm``,
    ``hd95_inf`` and ``surface_dice`` added per class and ``tolerance_mm``/``volumes`` at the
    top."""
    gt, pred = Path(gt), Path(pred)
    schema = None
    if (gt / "schema.json").is_file():
        from segflow.formats.folders import read_schema

        schema = read_schema(gt)
    n = num_classes or (schema.num_classes if schema else None)
    if n is None:
        raise SegflowError(f"{gt}: no schema.json; give --num-classes")
    gts = {volume_stem(p): p for p in list_volumes([_root(gt)])}
    if not gts:
        raise SegflowError(f"{gt}: no ground-truth NIfTI masks found")
    preds = _preds(pred)
    missing = sorted(set(gts) - set(preds))
    if missing:
        raise SegflowError(f"{pred}: no prediction for {len(missing)} of {len(gts)} volumes "
                           f"(first: {missing[0]}.nii.gz); names must match the ground truth")
    names = (schema.names_by_id() + [None] * n)[:n] if schema is not None else None
    ignore = schema.ignore_index if schema else 255
    ev = SemanticEvaluator(n, ignore_index=ignore, class_names=names)
    sv = SurfaceEvaluator(n, tolerance_mm=tolerance_mm, ignore_index=ignore)
    for name, gp in sorted(gts.items()):
        g, p = read_volume(gp), read_volume(preds[name])
        check_aligned(p, g)
        ga, pa = _ids(g), _ids(p)
        ev.update(ga, pa, where=str(preds[name]))
        sv.update(ga, pa, g.spacing)
    d = ev.compute().to_dict()
    s = sv.compute()

    def f(v):
        return None if not np.isfinite(v) else float(v)

    by_id = {v["id"]: v for v in d["per_class"].values()}
    for c in range(n):
        if c in by_id:
            by_id[c].update(hd95_mm=f(s.hd95_mm[c]), hd95_inf=int(s.hd95_inf[c]),
                            surface_dice=f(s.surface_dice[c]))
    fg = [c for c in range(1, n) if np.isfinite(s.surface_dice[c])]
    d["hd95_mm"] = f(np.nanmean(s.hd95_mm[fg])) if fg and np.isfinite(s.hd95_mm[fg]).any() else None
    d["surface_dice"] = f(np.mean(s.surface_dice[fg])) if fg else None
    d["tolerance_mm"] = float(tolerance_mm)
    d["volumes"] = len(gts)
    return d


def _ids(v) -> np.ndarray:
    a = np.asarray(v.array)
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or (a != np.round(a)).any():
            raise SegflowError(f"{v.source}: a mask must hold integer class ids")
    return a.astype(np.int64, copy=False)
