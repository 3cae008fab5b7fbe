"""What a scan holds: shape, spacing, orientation and its intensity range.

CT values are Hounsfield units, so the range is reported as they are (min, max and the 1st
and 99th percentiles); MR intensities have no absolute scale, so the 0.5/50/99.5 percentiles
of the non-zero voxels are reported, with the suggested display window of each.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segflow.volume.display import window_level
from segflow.volume.io import Volume, read_volume


def guess_modality(vol: Volume) -> str:
    """The file's modality when it says (DICOM), else CT when air is near -1000 HU."""
    if vol.modality:
        return vol.modality.upper()
    a = vol.array
    if a.dtype.kind in "iuf" and a.size and np.nanmin(a) <= -500:
        return "CT"
    return "MR"


def characterise_volume(vol: Volume) -> dict:
    a = np.asarray(vol.array)
    fin = a[np.isfinite(a)] if a.dtype.kind == "f" else a.ravel()
    mod = guess_modality(vol)
    d = {"path": vol.source, "kind": "volume", "shape": list(a.shape), "dtype": str(a.dtype),
         "spacing_mm": [round(s, 6) for s in vol.spacing],
         "origin_mm": [round(s, 4) for s in vol.origin], "orientation": vol.orientation,
         "modality": mod, "nonfinite_voxels": int(a.size - fin.size)}
    if fin.size == 0:
        d["intensity"] = None
        return d
    if mod == "CT":
        p1, p99 = np.percentile(fin, [1, 99])
        d["intensity"] = {"unit": "HU", "min": float(fin.min()), "max": float(fin.max()),
                          "p1": float(p1), "p99": float(p99)}
        d["window"] = {"preset": "soft_tissue", "level_width": list(window_level(a, "soft_tissue"))}
    else:
        nz = fin[fin != 0]
        src = nz if nz.size else fin
        p = np.percentile(src, [0.5, 50, 99.5])
        d["intensity"] = {"unit": "percentiles of non-zero voxels", "p0.5": float(p[0]),
                          "p50": float(p[1]), "p99.5": float(p[2])}
        d["window"] = {"preset": "percentile", "level_width": list(window_level(a, "percentile"))}
    return d


def inspect_volume(path: str | Path) -> dict:
    """Read a volume and characterise it (a JSON-ready dict)."""
    return characterise_volume(read_volume(path))
