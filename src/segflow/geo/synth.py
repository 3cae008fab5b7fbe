"""Synthetic scenes written as GeoTIFF, placed at made-up coordinates of a real projected CRS, so
that tests and demos exercise CRS, transform, areas in m² and reprojection.

    DIR/schema.json           classes and the ignore id (as segflow's folders format)
    DIR/images/NAME.tif       RGB uint8 GeoTIFF
    DIR/semantic/NAME.tif     class ids, uint8 GeoTIFF, nodata 255, the schema's colour map and
                              the schema in its metadata (``segflow vectorize`` names classes)
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from segflow.geo import require
from segflow.geo.raster import IGNORE, MaskWriter, gdal_env

#: The made-up place: UTM zone 32N (metres), 0.5 m pixels, scenes side by side eastwards.
CRS = "EPSG:32632"
PIXEL_M = 0.5
ORIGIN = (500_000.0, 5_200_000.0)


def transform_of(index: int, size: int, seed: int):
    """The affine transform of scene ``index`` of a set: a row of scenes 10 m apart, one row per
    seed, so scenes of different sets never overlap."""
    rasterio = require("rasterio")
    x = ORIGIN[0] + index * (size * PIXEL_M + 10.0)
    y = ORIGIN[1] - (seed % 10_000) * (size * PIXEL_M + 10.0)
    return rasterio.transform.from_origin(x, y, PIXEL_M, PIXEL_M)


def write(root: str | Path, schema, items, *, seed: int, size: int) -> Path:
    """``items``: iterable of (name, RGB image, class-id array)."""
    rasterio = require("rasterio")
    from segflow.formats.folders import write_schema

    root = Path(root)
    write_schema(root, schema, crs=CRS, pixel_m=PIXEL_M)
    tags = {"SEGFLOW_SCHEMA": {"classes": schema.to_list(), "ignore_index": schema.ignore_index}}
    with gdal_env():
        for i, (name, image, ids) in enumerate(items):
            h, w = ids.shape
            like = SimpleNamespace(width=w, height=h, crs=rasterio.crs.CRS.from_string(CRS),
                                   transform=transform_of(i, size, seed))
            img = (root / "images" / f"{name}.tif")
            img.parent.mkdir(parents=True, exist_ok=True)
            rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
            with rasterio.open(img, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint8",
                               crs=like.crs, transform=like.transform, photometric="RGB",
                               compress="deflate", tiled=True) as ds:
                ds.write(rgb.transpose(2, 0, 1))
            with MaskWriter(root / "semantic" / f"{name}.tif", like, nodata=IGNORE,
                            palette=schema.palette(), tags=tags) as out:
                out.write(ids, 0, 0)
    return root
