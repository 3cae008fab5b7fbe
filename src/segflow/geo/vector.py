"""Masks to polygons: one polygon per connected segment of a class, holes kept, with its class
and area, written as GeoJSON or GeoPackage.

The mask is read by windows. ``rasterio.features.shapes`` traces each window in pixel
coordinates offset to the window's place, so the polygons of neighbouring windows share their
edges exactly (integer coordinates); the polygons that touch an inner window edge are merged per
class with one ``shapely.union_all`` and split into parts again, the others pass as they are.
Only then is the raster's affine transform applied, so merging never meets rounding. Areas:
``area_px`` is the exact pixel count; ``area_m2`` is the area in the raster's projected CRS
(units converted to metres), or, for a geographic CRS, in a Lambert azimuthal equal-area
projection centred on the raster (said in the notes). A mask without a CRS is vectorised in
pixel coordinates with ``area_m2`` left empty (and a warning).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from segflow.errors import SegflowError
from segflow.geo import GeoWarning, require
from segflow.geo.raster import gdal_env
from segflow.geo.windows import grid

#: Window of the vectorising reads.
WINDOW = 4096

DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG"}


def _names(ds, schema: dict | None) -> dict[int, str]:
    """Class names by id: from ``schema``, else from the schema stored in the mask's tags."""
    if schema is None and ds is not None:
        raw = ds.tags().get("SEGFLOW_SCHEMA")
        schema = json.loads(raw) if raw else None
    if schema is None:
        return {}
    classes = schema["classes"] if isinstance(schema, dict) else schema
    return {int(c["id"]): str(c["name"]) for c in classes}


def read_schema_file(path: str | os.PathLike) -> dict:
    """A label schema JSON (segflow's ``schema.json``: ``{"classes": [{id, name}, ...]}``)."""
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SegflowError(f"{p}: cannot read the label schema ({e})") from None
    classes = d.get("classes") if isinstance(d, dict) else d
    if not isinstance(classes, list) or not all(isinstance(c, dict) and "id" in c and "name" in c
                                                for c in classes):
        raise SegflowError(f"{p}: a schema needs 'classes': [{{id, name}}, ...]")
    return {"classes": classes}


def _trace(mask_path: Path, window: int, skip: set[int]):
    """Polygons in pixel coordinates, per class, merged across windows."""
    rasterio = require("rasterio")
    shapely = require("shapely")
    from rasterio.features import shapes
    from rasterio.windows import Window
    from shapely.geometry import shape

    with warnings.catch_warnings():  # no CRS is reported by vectorize(), once, in its words
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        ds = rasterio.open(mask_path)
    with gdal_env(), ds:
        if ds.count != 1 or np.dtype(ds.dtypes[0]).kind not in "ui":
            raise SegflowError(f"{mask_path}: a mask must be one band of integer class ids, got "
                               f"{ds.count} band(s) of {ds.dtypes[0]}")
        if np.dtype(ds.dtypes[0]).itemsize > 4 or ds.dtypes[0] == "uint32":
            raise SegflowError(f"{mask_path}: class ids must fit 16 bits or int32 for tracing")
        nodata = ds.nodata
        h, w = ds.height, ds.width
        done: list[tuple[int, object]] = []
        pending: dict[int, list] = {}
        for win in grid(h, w, window, 0):
            try:
                arr = ds.read(1, window=Window(win.col, win.row, win.width, win.height))
            except rasterio.errors.RasterioError as e:
                raise SegflowError(f"{mask_path}: {win.describe()} cannot be read; the file is "
                                   f"corrupt there ({' '.join(str(e).split())})") from None
            if arr.dtype == np.uint32 or arr.dtype.itemsize > 4:
                arr = arr.astype(np.int32)
            valid = np.ones(arr.shape, bool)
            if nodata is not None:
                valid &= arr != nodata
            for k in skip:
                valid &= arr != k
            if not valid.any():
                continue
            tr = rasterio.Affine.translation(win.col, win.row)
            inner = (win.row > 0, win.col > 0, win.row + win.height < h, win.col + win.width < w)
            for geom, value in shapes(arr, mask=valid, connectivity=4, transform=tr):
                poly = shape(geom)
                x0, y0, x1, y1 = poly.bounds
                touches = ((inner[0] and y0 <= win.row) or (inner[1] and x0 <= win.col)
                           or (inner[2] and y1 >= win.row + win.height)
                           or (inner[3] and x1 >= win.col + win.width))
                if touches:
                    pending.setdefault(int(value), []).append(poly)
                else:
                    done.append((int(value), poly))
        for value, polys in pending.items():
            merged = shapely.union_all(polys)
            done.extend((value, g) for g in getattr(merged, "geoms", [merged]) if g.area > 0)
        return done, ds.crs, ds.transform, _names(ds, None)


def vectorize(mask_path: str | os.PathLike, *, simplify: float | None = None,
              to_crs: str | None = None, schema: dict | None = None, skip=(),
              window: int = WINDOW):
    """Polygons of a mask GeoTIFF as a GeoDataFrame, and notes.

    Parameters
    ----------
    mask_path : path
        One band of class ids; its nodata value (255 for segflow's masks) is left out.
    simplify : float, optional
        Douglas-Peucker tolerance in the raster's CRS units (metres for a projected CRS; pixels
        without a CRS), topology preserved.
    to_crs : str, optional
        Reproject the output (``"EPSG:4326"``).
    schema : dict, optional
        ``{"classes": [{id, name}, ...]}`` for the class names (default: the schema segflow
        stores in its masks' metadata, if any).
    skip : iterable of int
        Class ids left out (e.g. 0 for the background of a binary mask).
    """
    gpd = require("geopandas")
    require("pyogrio")
    from shapely import affinity

    mask_path = Path(mask_path)
    if not mask_path.is_file():
        raise SegflowError(f"{mask_path}: no such file; check the path")
    if simplify is not None and not (np.isfinite(simplify) and simplify >= 0):
        raise SegflowError(f"--simplify must be a finite distance >= 0, got {simplify}")
    notes: list[str] = []
    polys, crs, tr, names = _trace(mask_path, window, {int(k) for k in skip})
    if schema is not None:
        names = _names(None, schema)
    if crs is None:
        msg = f"{mask_path}: no CRS; polygons are in pixel coordinates and area_m2 is empty"
        notes.append(msg)
        warnings.warn(msg, GeoWarning, stacklevel=2)
        if to_crs:
            raise SegflowError(f"{mask_path}: has no CRS, so it cannot be reprojected to {to_crs}")
    matrix = [tr.a, tr.b, tr.d, tr.e, tr.c, tr.f]
    area_px = [float(p.area) for _, p in polys]
    geoms = [affinity.affine_transform(p, matrix) for _, p in polys]
    ids = [v for v, _ in polys]
    gdf = gpd.GeoDataFrame({"class_id": ids, "class_name": [names.get(v) for v in ids],
                            "area_px": area_px}, geometry=geoms, crs=crs)
    gdf["area_m2"] = _areas_m2(gdf, crs, tr, area_px, notes)
    if simplify:
        gdf["geometry"] = gdf.geometry.simplify(simplify, preserve_topology=True)
    if to_crs:
        try:
            gdf = gdf.to_crs(to_crs)
        except Exception as e:  # pyproj raises several kinds for an unknown CRS
            raise SegflowError(f"--to-crs {to_crs}: not a CRS pyproj knows ({e})") from None
    gdf.insert(0, "segment_id", np.arange(1, len(gdf) + 1))
    return gdf, notes


def _areas_m2(gdf, crs, tr, area_px, notes) -> list[float | None]:
    if crs is None:
        return [None] * len(gdf)
    if crs.is_projected:
        from pyproj import CRS

        factor = CRS.from_user_input(crs.to_wkt()).axis_info[0].unit_conversion_factor
        px = abs(tr.a * tr.e - tr.b * tr.d) * factor * factor
        return [a * px for a in area_px]
    if len(gdf) == 0:
        return []
    x0, y0, x1, y1 = gdf.total_bounds
    lat, lon = float((y0 + y1) / 2), float((x0 + x1) / 2)
    laea = f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m +no_defs"
    notes.append(f"{crs.to_string()} is geographic: areas computed in a Lambert azimuthal "
                 f"equal-area projection centred at {lat:.4f}, {lon:.4f}")
    return [float(a) for a in gdf.to_crs(laea).area]


def write_vectors(gdf, out: str | os.PathLike) -> Path:
    """Write ``gdf`` as GeoJSON (``.geojson``/``.json``) or GeoPackage (``.gpkg``), atomically."""
    out = Path(out)
    driver = DRIVERS.get(out.suffix.lower())
    if driver is None:
        raise SegflowError(f"{out}: unknown vector format {out.suffix!r}; use .geojson or .gpkg")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}{out.suffix}")
    try:
        with warnings.catch_warnings():  # pixel coordinates (no CRS) were already warned about
            warnings.filterwarnings("ignore", message=".*'crs' was not provided")
            gdf.to_file(tmp, driver=driver, engine="pyogrio", layer=out.stem)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return out
