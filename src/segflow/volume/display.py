"""Window/level for looking at scans: CT presets in Hounsfield units, MRI by percentiles.

A window maps ``[level - width/2, level + width/2]`` linearly onto 0..255 (values outside are
clipped), the display convention of radiology viewers.
"""

from __future__ import annotations

import numpy as np

from segflow.errors import ParameterError

#: CT presets: name -> (level, width) in HU (the usual radiology values).
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "soft_tissue": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "liver": (60.0, 160.0),
}

#: MRI (no absolute units): the window spans these percentiles of the non-zero voxels.
MR_PERCENTILES = (0.5, 99.5)


def window_level(volume: np.ndarray, preset: str | None = None, *, modality: str = "CT",
                 level: float | None = None, width: float | None = None,
                 percentiles: tuple[float, float] = MR_PERCENTILES) -> tuple[float, float]:
    """The ``(level, width)`` to display ``volume``.

    ``level`` and ``width`` given: used as they are. Else a CT preset name (see
    :data:`CT_WINDOWS`), or for MR (or ``preset="percentile"``) the window between the
    ``percentiles`` of the non-zero finite voxels.
    """
    if level is not None and width is not None:
        if not (np.isfinite(level) and np.isfinite(width) and width > 0):
            raise ParameterError(f"window: level and width must be finite, width > 0; got "
                                 f"{level}, {width}")
        return float(level), float(width)
    if preset is None:
        preset = "soft_tissue" if modality.upper() == "CT" else "percentile"
    if preset in CT_WINDOWS:
        return CT_WINDOWS[preset]
    if preset != "percentile":
        raise ParameterError(f"window: unknown preset {preset!r}; use one of "
                             f"{', '.join([*CT_WINDOWS, 'percentile'])}")
    lo_p, hi_p = percentiles
    if not 0 <= lo_p < hi_p <= 100:
        raise ParameterError(f"window: percentiles must satisfy 0 <= low < high <= 100, got "
                             f"{percentiles}")
    v = np.asarray(volume)
    v = v[np.isfinite(v) & (v != 0)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = (float(x) for x in np.percentile(v, [lo_p, hi_p]))
    return (lo + hi) / 2, max(hi - lo, 1e-6)


def apply_window(volume: np.ndarray, level: float, width: float) -> np.ndarray:
    """Map ``volume`` (any real dtype, any shape) through a window: uint8 0..255, NaN -> 0."""
    if not (np.isfinite(level) and np.isfinite(width) and width > 0):
        raise ParameterError(f"window: level and width must be finite, width > 0; got "
                             f"{level}, {width}")
    x = (np.asarray(volume, dtype=np.float32) - (level - width / 2)) * (255.0 / width)
    return np.nan_to_num(np.clip(x, 0, 255), nan=0.0).astype(np.uint8)
