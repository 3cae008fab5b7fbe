"""GeoTIFFs made on the fly with rasterio (the geo extra: the tests skip without it)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CRS = "EPSG:32632"
HAVE_GEO = all(importlib.util.find_spec(m) for m in ("rasterio", "shapely", "geopandas", "pyogrio"))
needs_geo = pytest.mark.skipif(not HAVE_GEO, reason="needs the geo extra: pip install 'segflow[geo]'")
#: 0.5 m pixels, top-left corner at (500000, 5200000) in UTM 32N (as rasterio's from_origin).
TRANSFORM = (0.5, 0.0, 500_000.0, 0.0, -0.5, 5_200_000.0)


def affine():
    from rasterio import Affine

    return Affine(*TRANSFORM)


def scene(h: int, w: int, seed: int = 0) -> np.ndarray:
    """RGB uint8: smooth bright and dark blobs plus noise (Otsu separates them)."""
    import cv2

    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.uniform(0, 255, (max(2, h // 60), max(2, w // 60))).astype(np.float32),
                      (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.dstack([base, 0.8 * base + 20, 255 - base]) + rng.normal(0, 12, (h, w, 3))
    return img.clip(0, 255).astype(np.uint8)


def write_tif(path, data: np.ndarray, *, crs=CRS, transform=TRANSFORM, nodata=None, block=256,
              compress="deflate") -> Path:
    """``data``: (H, W) or (H, W, C) array -> tiled GeoTIFF."""
    arr = data[None] if data.ndim == 2 else data.transpose(2, 0, 1)
    kw = dict(driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
              dtype=arr.dtype.name, nodata=nodata, tiled=True, blockxsize=block, blockysize=block,
              compress=compress)
    import rasterio

    if crs is not None:
        kw.update(crs=crs, transform=affine() if transform is TRANSFORM else transform)
    with rasterio.open(path, "w", **kw) as ds:
        ds.write(arr)
    return Path(path)


def read_tif(path):
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read(1), ds.crs, ds.transform, ds.nodata


def segflow(*args, check=None):
    p = subprocess.run([sys.executable, "-m", "segflow", *map(str, args)], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    if check is not None:
        assert p.returncode == check, p.stderr
    return p


def one_line(p) -> str:
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]
