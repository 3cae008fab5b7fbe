"""Masks to polygons: one polygon per connected segment of a class, holes kept, with its class
and area, written as GeoJSON or GeoPackage.

The mask is read by windows. ``rasterio.features.shapes`` traces each window in pixel
coordinates offset to the window's place, so the polygons of neighbouring windows share their
edges exactly (integer coordinates). Polygons that touch an inner window edge are merged per
class (``shapely.coverage_union_all`` of the pieces that touch) and split into parts again; the
others pass as they are (:func:`vectorize_to_file` writes them out window by window, so only the
edge-crossing pieces are held in memory). Only then is the raster's affine transform applied, so
merging never meets rounding. Areas: ``area_px`` is the exact pixel count; ``area_m2`` is the
area in the raster's projected CRS (units converted to metres), or, for a geographic CRS, in a
Lambert azimuthal equal-area projection centred on the raster (said in the notes). A mask
without a CRS is vectorised in pixel coordinates with ``area_m2`` left empty (and a warning).
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


def _open(mask_path: Path):
    rasterio = require("rasterio")
    if not mask_path.is_file():
        raise SegflowError(f"{mask_path}: no such file; check the path")
    with warnings.catch_warnings():  # no CRS is reported by vectorize(), once, in its words
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        try:
            ds = rasterio.open(mask_path)
        except rasterio.errors.RasterioIOError as e:
            raise SegflowError(f"{mask_path}: not a raster GDAL can read ({e})") from None
    dt = np.dtype(ds.dtypes[0])
    if ds.count != 1 or dt.kind not in "ui" or dt.itemsize > 4 or dt == np.uint32:
        ds.close()
        raise SegflowError(f"{mask_path}: a mask must be one band of integer class ids (8/16-bit or "
                           f"int32), got {ds.count} band(s) of {ds.dtypes[0]}")
    return ds


def _batches(ds, mask_path: Path, window: int, skip: set[int]):
    """Yield lists of (class id, polygon in pixel coordinates): per window the polygons that
    touch no inner window edge, and at the end those that do, merged per class."""
    rasterio = require("rasterio")
    require("shapely")
    from rasterio.features import shapes
    from rasterio.windows import Window
    from shapely.geometry import shape

    nodata, h, w = ds.nodata, ds.height, ds.width
    pending: dict[int, list] = {}
    for win in grid(h, w, window, 0):
        try:
            arr = ds.read(1, window=Window(win.col, win.row, win.width, win.height))
        except rasterio.errors.RasterioError as e:
            raise SegflowError(f"{mask_path}: {win.describe()} cannot be read; the file is "
                               f"corrupt there ({' '.join(str(e).split())})") from None
        valid = np.ones(arr.shape, bool)
        if nodata is not None:
            valid &= arr != nodata
        for k in skip:
            valid &= arr != k
        if not valid.any():
            continue
        tr = rasterio.Affine.translation(win.col, win.row)
        inner = (win.row > 0, win.col > 0, win.row + win.height < h, win.col + win.width < w)
        done = []
        for geom, value in shapes(arr, mask=valid, connectivity=4, transform=tr):
            poly = shape(geom)
            x0, y0, x1, y1 = poly.bounds
            if ((inner[0] and y0 <= win.row) or (inner[1] and x0 <= win.col)
                    or (inner[2] and y1 >= win.row + win.height)
                    or (inner[3] and x1 >= win.col + win.width)):
                pending.setdefault(int(value), []).append(poly)
            else:
                done.append((int(value), poly))
        yield done
    for value in sorted(pending):
        yield from _merge(value, pending.pop(value))


def _coverage_union(pieces: list):
    """Union of pieces that tile the plane without overlap along integer pixel edges.

    Densified to a vertex at every pixel corner, the pieces are a noded coverage, which GEOS
    unions by dropping the shared edges (far cheaper than an overlay union of big polygons with
    many holes); the collinear vertices are then dropped again (simplify with tolerance 0).
    """
    shapely = require("shapely")
    try:
        merged = shapely.coverage_union_all(shapely.segmentize(pieces, 1.0))
        return shapely.simplify(merged, 0.0, preserve_topology=False)  # nothing moves at 0
    except shapely.errors.GEOSException:  # not a clean coverage after all: overlay union
        return shapely.union_all(pieces)


def _merge(value: int, polys: list, batch: int = 10_000):
    """Union the edge-crossing pieces of one class: only pieces that touch are merged (groups
    found with an STRtree and connected components), each group as a coverage."""
    shapely = require("shapely")
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(polys)
    a, b = shapely.STRtree(polys).query(polys, predicate="intersects")
    _, group = connected_components(coo_matrix((np.ones(len(a), bool), (a, b)), shape=(n, n)),
                                    directed=False)
    order = np.argsort(group, kind="stable")
    cuts = np.flatnonzero(np.diff(group[order])) + 1
    out: list = []
    for members in np.split(order, cuts):
        merged = polys[members[0]] if len(members) == 1 else _coverage_union(
            [polys[i] for i in members])
        out.extend((value, g) for g in getattr(merged, "geoms", [merged]) if g.area > 0)
        if len(out) >= batch:
            yield out
            out = []
    if out:
        yield out


class _Framer:
    """Turns batches of pixel-space polygons into GeoDataFrames: CRS coordinates, class names,
    areas, simplification, reprojection; segment ids numbered across batches."""

    def __init__(self, ds, mask_path: Path, *, simplify, to_crs, schema, notes: list[str]):
        self.crs, self.tr = ds.crs, ds.transform
        self.names = _names(ds, schema)
        self.simplify, self.to_crs, self.next_id = simplify, to_crs, 1
        self.px_m2 = self.laea = None
        if self.crs is None:
            msg = f"{mask_path}: no CRS; polygons are in pixel coordinates and area_m2 is empty"
            notes.append(msg)
            warnings.warn(msg, GeoWarning, stacklevel=3)
            if to_crs:
                raise SegflowError(f"{mask_path}: has no CRS, so it cannot be reprojected to {to_crs}")
        elif self.crs.is_projected:
            from pyproj import CRS

            factor = CRS.from_user_input(self.crs.to_wkt()).axis_info[0].unit_conversion_factor
            self.px_m2 = abs(self.tr.a * self.tr.e - self.tr.b * self.tr.d) * factor * factor
        else:
            b = ds.bounds
            lat, lon = (b.bottom + b.top) / 2, (b.left + b.right) / 2
            self.laea = f"+proj=laea +lat_0={lat:.6f} +lon_0={lon:.6f} +datum=WGS84 +units=m +no_defs"
            notes.append(f"{self.crs.to_string()} is geographic: areas computed in a Lambert "
                         f"azimuthal equal-area projection centred at {lat:.4f}, {lon:.4f}")
        if to_crs:
            from pyproj import CRS
            from pyproj.exceptions import CRSError

            try:
                CRS.from_user_input(to_crs)
            except CRSError as e:
                raise SegflowError(f"--to-crs {to_crs}: not a CRS pyproj knows ({e})") from None

    def frame(self, batch):
        gpd = require("geopandas")
        from shapely import affinity

        m = [self.tr.a, self.tr.b, self.tr.d, self.tr.e, self.tr.c, self.tr.f]
        ids = [v for v, _ in batch]
        area_px = [float(p.area) for _, p in batch]
        gdf = gpd.GeoDataFrame(
            {"segment_id": np.arange(self.next_id, self.next_id + len(batch)), "class_id": ids,
             "class_name": [self.names.get(v) for v in ids], "area_px": area_px},
            geometry=[affinity.affine_transform(p, m) for _, p in batch], crs=self.crs)
        self.next_id += len(batch)
        if self.px_m2 is not None:
            gdf["area_m2"] = [a * self.px_m2 for a in area_px]
        elif self.laea is not None:
            gdf["area_m2"] = gdf.to_crs(self.laea).area.astype(float).to_list() if len(gdf) else []
        else:
            gdf["area_m2"] = [None] * len(gdf)
        if self.simplify:
            gdf["geometry"] = gdf.geometry.simplify(self.simplify, preserve_topology=True)
        if self.to_crs:
            gdf = gdf.to_crs(self.to_crs)
        return gdf


def _check_simplify(simplify) -> None:
    if simplify is not None and not (np.isfinite(simplify) and simplify >= 0):
        raise SegflowError(f"--simplify must be a finite distance >= 0, got {simplify}")


def vectorize(mask_path: str | os.PathLike, *, simplify: float | None = None,
              to_crs: str | None = None, schema: dict | None = None, skip=(),
              window: int = WINDOW):
    """Polygons of a mask GeoTIFF as one GeoDataFrame (in memory), and notes.

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

    :func:`vectorize_to_file` writes the same polygons batch by batch, for masks whose polygons
    would not fit in memory at once.
    """
    gpd = require("geopandas")
    import pandas as pd

    mask_path = Path(mask_path)
    _check_simplify(simplify)
    notes: list[str] = []
    with gdal_env(), _open(mask_path) as ds:
        framer = _Framer(ds, mask_path, simplify=simplify, to_crs=to_crs, schema=schema, notes=notes)
        frames = [framer.frame(b) for b in _batches(ds, mask_path, window, {int(k) for k in skip}) if b]
    if not frames:
        frames = [framer.frame([])]
    gdf = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=frames[0].crs)
    return gdf, notes


def vectorize_to_file(mask_path: str | os.PathLike, out: str | os.PathLike, *,
                      simplify: float | None = None, to_crs: str | None = None,
                      schema: dict | None = None, skip=(), window: int = WINDOW):
    """As :func:`vectorize`, written to ``out`` (.geojson or .gpkg) window by window: only the
    polygons that cross window edges are held until the end. Returns (count, CRS, notes)."""
    pyogrio = require("pyogrio")
    mask_path, out = Path(mask_path), Path(out)
    driver = _driver(out)
    _check_simplify(simplify)
    notes: list[str] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}{out.suffix}")
    n, crs = 0, None
    try:
        with gdal_env(), _open(mask_path) as ds, warnings.catch_warnings():
            # pixel coordinates (no CRS) are warned about once, by the framer
            warnings.filterwarnings("ignore", message=".*'crs' was not provided")
            framer = _Framer(ds, mask_path, simplify=simplify, to_crs=to_crs, schema=schema,
                             notes=notes)
            for batch in _batches(ds, mask_path, window, {int(k) for k in skip}):
                if not batch and n:
                    continue
                gdf = framer.frame(batch)
                pyogrio.write_dataframe(gdf, tmp, driver=driver, layer=out.stem, append=n > 0,
                                        promote_to_multi=False, geometry_type="Polygon")
                n += len(gdf)
                crs = gdf.crs
            if not tmp.exists():  # an empty mask: an empty layer
                pyogrio.write_dataframe(framer.frame([]), tmp, driver=driver, layer=out.stem,
                                        geometry_type="Polygon")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return n, crs, notes


def _driver(out: Path) -> str:
    driver = DRIVERS.get(out.suffix.lower())
    if driver is None:
        raise SegflowError(f"{out}: unknown vector format {out.suffix!r}; use .geojson or .gpkg")
    return driver


def write_vectors(gdf, out: str | os.PathLike) -> Path:
    """Write ``gdf`` as GeoJSON (``.geojson``/``.json``) or GeoPackage (``.gpkg``), atomically."""
    out = Path(out)
    driver = _driver(out)
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
