"""Classical operations on 3-D volumes, spacing-aware where distance matters.

Arrays in, arrays out: ``volume`` is any real 3-D array (float32 HU for CT); masks are 3-D
arrays whose non-zero voxels are foreground; ``spacing`` is the voxel size in mm along each
axis (:attr:`segflow.volume.Volume.spacing`). Built on scikit-image and scipy.ndimage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from segflow.errors import ParameterError

THRESHOLDS = ("otsu", "li", "yen", "triangle", "fixed")


def _vol(volume: np.ndarray, what: str = "volume") -> np.ndarray:
    v = np.asarray(volume)
    if v.ndim != 3:
        raise ParameterError(f"{what} must be 3-D, got shape {v.shape}")
    if v.dtype == bool or v.dtype.kind not in "iuf":
        raise ParameterError(f"{what} must hold numbers, got dtype {v.dtype}")
    return v


def _mask(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 3:
        raise ParameterError(f"mask must be 3-D, got shape {m.shape}")
    return m != 0


def _spacing(spacing, ndim: int = 3) -> tuple[float, ...]:
    s = tuple(float(x) for x in np.broadcast_to(np.asarray(spacing, dtype=np.float64), (ndim,)))
    if not all(np.isfinite(x) and x > 0 for x in s):
        raise ParameterError(f"spacing must be finite and > 0 mm, got {s}")
    return s


def threshold_volume(volume: np.ndarray, method: str = "otsu", *, value: float | None = None,
                     invert: bool = False) -> tuple[np.ndarray, float]:
    """Global threshold of a whole volume (one level for all slices).

    Returns ``(mask, level)``: uint8 0/1 with 1 where ``volume > level`` (``<=`` with
    ``invert``). Non-finite voxels are left out of the histogram and are background. A constant
    volume gives an empty mask (level = its value) rather than an error.
    """
    v = _vol(volume)
    if method not in THRESHOLDS:
        raise ParameterError(f"threshold: unknown method {method!r}; use one of {', '.join(THRESHOLDS)}")
    finite = np.isfinite(v) if v.dtype.kind == "f" else np.ones(v.shape, bool)
    vals = v[finite]
    if method == "fixed":
        if value is None or not np.isfinite(value):
            raise ParameterError("threshold: method fixed needs a finite value")
        level = float(value)
    elif vals.size == 0:
        raise ParameterError("threshold: the volume has no finite voxels")
    elif float(vals.min()) == float(vals.max()):
        level = float(vals.min())
    else:
        from skimage import filters

        fn = {"otsu": filters.threshold_otsu, "li": filters.threshold_li,
              "yen": filters.threshold_yen, "triangle": filters.threshold_triangle}[method]
        level = float(fn(vals.astype(np.float64, copy=False)))
    m = (v <= level) if invert else (v > level)
    return (m & finite).astype(np.uint8), level


def otsu_volume(volume: np.ndarray) -> tuple[np.ndarray, float]:
    """Otsu's threshold over the whole volume's histogram: ``(mask uint8 0/1, level)``."""
    return threshold_volume(volume, "otsu")


def label3d(mask: np.ndarray, *, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """3-D connected components (scipy.ndimage.label): ``(labels int32, n)``.

    ``connectivity``: 6 (faces), 18 (faces and edges) or 26 (also corners).
    """
    rank = {6: 1, 18: 2, 26: 3}.get(connectivity)
    if rank is None:
        raise ParameterError(f"label: connectivity must be 6, 18 or 26 in 3-D, got {connectivity}")
    labels, n = ndimage.label(_mask(mask), structure=ndimage.generate_binary_structure(3, rank))
    return labels.astype(np.int32, copy=False), int(n)


def ellipsoid(radius_mm: float, spacing) -> np.ndarray:
    """A structuring element that is a ball of ``radius_mm`` in world space, so an ellipsoid in
    voxels on an anisotropic grid (fewer voxels along the thick-slice axis). Always holds at
    least the centre voxel; bool, odd side lengths."""
    s = _spacing(spacing)
    if not (np.isfinite(radius_mm) and radius_mm > 0):
        raise ParameterError(f"morphology: radius_mm must be finite and > 0, got {radius_mm}")
    half = [int(np.floor(radius_mm / d)) for d in s]
    if max(half) > 64:
        raise ParameterError(f"morphology: radius {radius_mm} mm is {max(half)} voxels; at most "
                             "64 voxels (downsample the volume for coarser work)")
    grids = np.ogrid[tuple(slice(-h, h + 1) for h in half)]
    d2 = sum((g * d / radius_mm) ** 2 for g, d in zip(grids, s))
    return d2 <= 1.0 + 1e-9


def _morph(fn, mask, radius_mm, spacing, **kw) -> np.ndarray:
    se = ellipsoid(radius_mm, spacing)
    return fn(_mask(mask), structure=se, **kw).astype(np.uint8)


def dilate(mask: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    """Binary dilation by a ball of ``radius_mm``; uint8 0/1."""
    return _morph(ndimage.binary_dilation, mask, radius_mm, spacing)


def erode(mask: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    """Binary erosion by a ball of ``radius_mm`` (outside the volume counts as foreground, so
    objects touching the border are not eaten from there); uint8 0/1."""
    return _morph(ndimage.binary_erosion, mask, radius_mm, spacing, border_value=1)


def open3d(mask: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    """Opening (erode then dilate) by a ball of ``radius_mm``: removes parts thinner than it."""
    return dilate(erode(mask, radius_mm, spacing), radius_mm, spacing)


def close3d(mask: np.ndarray, radius_mm: float, spacing) -> np.ndarray:
    """Closing (dilate then erode) by a ball of ``radius_mm``: bridges gaps narrower than it.
    The volume is padded first, so objects at the border are not cut."""
    se = ellipsoid(radius_mm, spacing)
    pad = [(h // 2, h // 2) for h in se.shape]
    m = np.pad(_mask(mask), pad)
    m = ndimage.binary_erosion(ndimage.binary_dilation(m, se), se, border_value=1)
    return m[tuple(slice(a, m.shape[k] - b) for k, (a, b) in enumerate(pad))].astype(np.uint8)


def fill_holes3d(mask: np.ndarray) -> np.ndarray:
    """Fill cavities not connected to the volume's border (6-connectivity); uint8 0/1."""
    return ndimage.binary_fill_holes(_mask(mask)).astype(np.uint8)


def remove_small3d(mask: np.ndarray, min_volume_mm3: float, spacing, *,
                   connectivity: int = 26) -> np.ndarray:
    """Drop 3-D components smaller than ``min_volume_mm3``; uint8 0/1."""
    if not (np.isfinite(min_volume_mm3) and min_volume_mm3 >= 0):
        raise ParameterError(f"remove_small: min volume must be finite and >= 0 mm3, got {min_volume_mm3}")
    labels, n = label3d(mask, connectivity=connectivity)
    voxel = float(np.prod(_spacing(spacing)))
    sizes = np.bincount(labels.ravel(), minlength=n + 1) * voxel
    keep = sizes >= min_volume_mm3
    keep[0] = False
    return keep[labels].astype(np.uint8)


@dataclass(frozen=True)
class Region3D:
    """One labelled 3-D region: ``bbox`` is ``[i0, j0, k0, i1, j1, k1]`` (end exclusive) in
    voxels; ``centroid_mm`` is in world coordinates (RAS+ mm) when an affine is given, else in
    voxel indices times the spacing; ``mean_intensity`` is None without a volume."""

    label: int
    voxels: int
    volume_mm3: float
    bbox: list[int]
    centroid_mm: list[float]
    mean_intensity: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def regions3d(labels: np.ndarray, spacing, *, volume: np.ndarray | None = None,
              affine: np.ndarray | None = None) -> list[Region3D]:
    """Measure every labelled region: voxel count, volume in mm^3, box, centroid, mean."""
    lab = np.asarray(labels)
    if lab.ndim != 3 or lab.dtype.kind not in "iu":
        raise ParameterError(f"regions: labels must be a 3-D integer array, got {lab.dtype} {lab.shape}")
    if lab.size and lab.min() < 0:
        raise ParameterError("regions: labels must be >= 0")
    s = _spacing(spacing)
    voxel = float(np.prod(s))
    flat = lab.ravel().astype(np.int64, copy=False)
    n = int(flat.max()) if flat.size else 0
    counts = np.bincount(flat, minlength=n + 1)
    idx = np.indices(lab.shape).reshape(3, -1)
    sums = [np.bincount(flat, weights=idx[a], minlength=n + 1) for a in range(3)]
    means = None
    if volume is not None:
        v = _vol(volume)
        if v.shape != lab.shape:
            raise ParameterError(f"regions: volume {v.shape} and labels {lab.shape} differ in shape")
        means = np.bincount(flat, weights=v.ravel().astype(np.float64), minlength=n + 1)
    out = []
    for k, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None or counts[k] == 0:
            continue
        c = np.array([sums[a][k] / counts[k] for a in range(3)])
        cw = (affine[:3, :3] @ c + affine[:3, 3]) if affine is not None else c * np.array(s)
        out.append(Region3D(
            label=k, voxels=int(counts[k]), volume_mm3=float(counts[k] * voxel),
            bbox=[*(int(x.start) for x in sl), *(int(x.stop) for x in sl)],
            centroid_mm=[round(float(x), 4) for x in cw],
            mean_intensity=None if means is None else float(means[k] / counts[k])))
    return out
