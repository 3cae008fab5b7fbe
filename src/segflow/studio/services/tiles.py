"""Huge georeferenced rasters in the studio: a tile pyramid for the browser, labels stored one
tile per chunk (``services.chunks``), and GeoTIFF / GeoJSON exports with the raster's CRS and
transform.

* Image tiles: level ``L`` shows the raster at 1/2^L of its resolution in tiles of
  :data:`TILE` x :data:`TILE` screen pixels, tile ``(tx, ty)`` covering raster pixels
  ``[ty*TILE*2^L, (ty+1)*TILE*2^L) x [tx*TILE*2^L, ...)``. A tile is one windowed, decimated
  read (``segflow.geo.raster``; GDAL uses the file's overviews when it has some). A raster
  without overviews gets a *preview* at import: one pass over the raster by windows, each
  shrunk by :data:`PREVIEW_FACTOR` (area average), kept as a small ``.npy``; levels at or
  above that factor are cut from it, so no request ever reads more than
  (TILE * PREVIEW_FACTOR / 2)^2 raster pixels.
* Labels: full-resolution chunks of :data:`LABEL_TILE` x :data:`LABEL_TILE` pixels, key
  ``"<ty>_<tx>"``; a save writes only the tiles it changed.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from segflow.errors import SegflowError
from segflow.studio.services import chunks
from segflow.studio.tables import Image, LargeItem, Task

TILE = 256
LABEL_TILE = 512
PREVIEW_FACTOR = 16
#: Rasters with a side under this are read directly at every level (no preview needed).
PREVIEW_MIN_SIDE = TILE * PREVIEW_FACTOR // 2


def max_level(width: int, height: int) -> int:
    """The coarsest level: the whole raster in one tile."""
    return max(0, math.ceil(math.log2(max(width, height) / TILE)))


def check_tile(meta: dict, level: int, tx: int, ty: int) -> tuple[int, int, int, int]:
    """Raster window (row, col, height, width) of an image tile; SegflowError when out of range."""
    w, h = meta["width"], meta["height"]
    top = max_level(w, h)
    if not 0 <= level <= top:
        raise SegflowError(f"level: {level} is out of range; this raster has levels 0..{top}")
    span = TILE << level
    nx, ny = math.ceil(w / span), math.ceil(h / span)
    if not (0 <= tx < nx and 0 <= ty < ny):
        raise SegflowError(f"tile {tx},{ty}: out of range at level {level}; x is 0..{nx - 1}, "
                           f"y is 0..{ny - 1}")
    row, col = ty * span, tx * span
    return row, col, min(span, h - row), min(span, w - col)


def label_grid(meta: dict) -> tuple[int, int]:
    """Label tiles across and down."""
    return math.ceil(meta["width"] / LABEL_TILE), math.ceil(meta["height"] / LABEL_TILE)


def label_key(tx: int, ty: int) -> str:
    return f"{ty}_{tx}"


def label_shape(meta: dict, tx: int, ty: int) -> tuple[int, int]:
    nx, ny = label_grid(meta)
    if not (0 <= tx < nx and 0 <= ty < ny):
        raise SegflowError(f"label tile {tx},{ty}: out of range; x is 0..{nx - 1}, y is 0..{ny - 1}")
    return (min(LABEL_TILE, meta["height"] - ty * LABEL_TILE),
            min(LABEL_TILE, meta["width"] - tx * LABEL_TILE))


# ---- import ------------------------------------------------------------------------------


def _open(path: str, bands=None):
    from pydantic import ValidationError

    from segflow.geo.options import RasterOptions
    from segflow.geo.raster import GeoRaster

    try:
        opts = RasterOptions(bands=bands)
    except ValidationError as e:
        raise SegflowError(f"bands {bands}: {e.errors()[0]['msg']}") from None
    return GeoRaster(path, opts)


def import_raster(db: Session, data_dir: Path, project, path: str, bands=None, *,
                  progress=None) -> dict:
    """Open a GeoTIFF on the server, build its preview when it has no overviews, and add it as
    an image and a task of ``project``. The raster itself stays where it is (it may be far
    larger than the studio's disk budget for copies)."""
    from segflow.geo.raster import gdal_env

    p = Path(path)
    st = p.stat() if p.is_file() else None
    sha = hashlib.sha256(f"{p.resolve()}|{st.st_size if st else 0}|{st.st_mtime_ns if st else 0}|"
                         f"{bands}".encode()).hexdigest()
    dup = db.scalar(select(Image.id).where(Image.project_id == project.id, Image.sha256 == sha))
    if dup is not None:
        raise SegflowError(f"{p.name}: this raster is already image {dup} of the project")
    with gdal_env(), _open(path, bands) as r:
        notes: list[str] = []
        if r.crs is None:
            notes.append(f"{p.name}: no CRS; labels are exported in pixel coordinates")
        meta = {"width": r.width, "height": r.height, "bands": r.bands, "count": r.count,
                "crs": r.crs.to_wkt() if r.crs else None,
                "epsg": r.crs.to_epsg() if r.crs else None,
                "transform": list(r.transform)[:6], "nodata": r.ds.nodata,
                "overviews": r.ds.overviews(r.bands[0]), "preview": None, "notes": notes}
        r.levels()  # the stretch (16-bit data): once, here, not in the first tile request
        if not meta["overviews"] and max(r.width, r.height) > PREVIEW_MIN_SIDE:
            meta["preview"] = _build_preview(r, Path(data_dir) / "rasters" / f"{sha}.npy", progress)
    img = Image(project_id=project.id, sha256=sha, ext="geo", filename=p.name[:255],
                width=meta["width"], height=meta["height"])
    db.add(img)
    db.flush()
    db.add(LargeItem(image_id=img.id, kind="raster", path=str(p.resolve()),
                     meta={**meta, "options": {"bands": bands}}))
    t = Task(project_id=project.id, image_id=img.id)
    db.add(t)
    db.commit()
    return {"image_id": img.id, "task_id": t.id, "width": meta["width"],
            "height": meta["height"], "crs": meta["crs"], "levels": max_level(r.width, r.height) + 1,
            "preview": meta["preview"] is not None, "notes": notes}


def _build_preview(r, dst: Path, progress) -> str:
    """The raster shrunk by PREVIEW_FACTOR (area average), read window by window."""
    import cv2

    f = PREVIEW_FACTOR
    win = f * 256  # raster pixels per window side: one window is ~65k preview pixels
    ph, pw = math.ceil(r.height / f), math.ceil(r.width / f)
    out = None
    rows, cols = range(0, r.height, win), range(0, r.width, win)
    n, k = len(rows) * len(cols), 0
    for row in rows:
        for col in cols:
            h, w = min(win, r.height - row), min(win, r.width - col)
            data, _ = r.read(row, col, h, w)
            small = cv2.resize(data, (math.ceil(w / f), math.ceil(h / f)),
                               interpolation=cv2.INTER_AREA)
            if out is None:
                out = np.zeros((ph, pw) + data.shape[2:], np.uint8)
            out[row // f: row // f + small.shape[0], col // f: col // f + small.shape[1]] = small
            k += 1
            if progress:
                progress(k, n)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.tmp{os.getpid()}.npy")
    np.save(tmp, out)
    os.replace(tmp, dst)
    return str(dst)


def info(item: LargeItem) -> dict:
    m = item.meta
    nx, ny = label_grid(m)
    return {"width": m["width"], "height": m["height"], "tile": TILE, "label_tile": LABEL_TILE,
            "levels": max_level(m["width"], m["height"]) + 1, "label_tiles": [nx, ny],
            "crs": m["crs"], "epsg": m["epsg"], "transform": m["transform"],
            "bands": m["bands"], "nodata": m["nodata"], "notes": m.get("notes", [])}


# ---- image tiles -------------------------------------------------------------------------


def tile_png(item: LargeItem, level: int, tx: int, ty: int) -> bytes:
    import cv2
    from PIL import Image as PILImage

    from segflow.geo.raster import gdal_env

    m = item.meta
    row, col, h, w = check_tile(m, level, tx, ty)
    s = 1 << level
    oh, ow = max(1, math.ceil(h / s)), max(1, math.ceil(w / s))
    if m.get("preview") and s >= PREVIEW_FACTOR:
        pv = np.load(m["preview"], mmap_mode="r")
        f = PREVIEW_FACTOR
        crop = np.asarray(pv[row // f: math.ceil((row + h) / f), col // f: math.ceil((col + w) / f)])
        img = cv2.resize(crop, (ow, oh), interpolation=cv2.INTER_AREA) if crop.shape[:2] != (oh, ow) else crop
    else:
        with gdal_env(), _open(item.path, m.get("options", {}).get("bands")) as r:
            if s == 1:
                img, _ = r.read(row, col, h, w)
            else:
                from rasterio.enums import Resampling
                from rasterio.windows import Window

                data = r._guarded(lambda: r.ds.read(r.bands, window=Window(col, row, w, h),
                                                    out_shape=(len(r.bands), oh, ow),
                                                    resampling=Resampling.average),
                                  f"tile {level}/{tx}/{ty}")
                img = r._to_image(data)
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# ---- labels ------------------------------------------------------------------------------


def label_tile(db: Session, task: Task, item: LargeItem, tx: int, ty: int, version: int) -> np.ndarray:
    shape = label_shape(item.meta, tx, ty)
    return chunks.read(db, task.id, version, label_key(tx, ty), shape)


def export_geotiff(db: Session, task: Task, item: LargeItem, version: int, path: Path,
                   segments: list[dict], schema) -> Path:
    """Class ids of ``version`` as a tiled GeoTIFF with the raster's CRS and transform; 0
    (unlabelled) is nodata. Only the stored tiles are written."""
    from segflow.geo.raster import MaskWriter, gdal_env

    lut: dict[int, int] = {s["id"]: s["category_id"] for s in segments}
    hi = max(lut.values(), default=0)
    with gdal_env(), _open(item.path, item.meta.get("options", {}).get("bands")) as r, \
            MaskWriter(path, r, dtype="uint8" if hi < 255 else "uint16", nodata=0, block=LABEL_TILE,
                       tags={"SEGFLOW_SCHEMA": {"classes": schema.to_list()}}) as w:
        for key, row in chunks.latest(db, task.id, version).items():
            ty, tx = (int(v) for v in key.split("_"))
            ids = chunks.decode(row, label_shape(item.meta, tx, ty))
            table = np.zeros(int(ids.max()) + 1, np.int64)
            for sid, cid in lut.items():
                if sid < table.size:
                    table[sid] = cid
            w.write(table[ids], ty * LABEL_TILE, tx * LABEL_TILE)
    return path
