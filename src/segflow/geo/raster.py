"""Reading GeoTIFF / COG rasters by windows, and writing tiled GeoTIFF masks that keep the
source's CRS and transform.

A window comes back as the image a pipeline or model takes (``(H, W)`` or ``(H, W, 3)`` uint8,
bands chosen and scaled by :class:`~segflow.geo.options.RasterOptions`) and a validity mask
(``False`` where the source is nodata, masked, or not finite; ``None`` when every pixel is
valid). Masks are written with nodata 255, the ignore id, on exactly the source's invalid pixels.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

from segflow.errors import ImageReadError, SegflowError
from segflow.geo import GeoWarning, require
from segflow.geo.options import RasterOptions

#: The id written where the source has no data (the ignore id of segflow's masks).
IGNORE = 255

#: GDAL's block cache for these reads and writes, in MB: the cache counts towards the process'
#: memory, and GDAL's default (5% of RAM) would be most of a 1.5 GB budget on a large machine.
GDAL_CACHE_MB = 128

#: Pixels of the decimated read that the stretch percentiles are taken from.
STATS_PIXELS = 1_000_000


def gdal_env():
    """A ``rasterio.Env`` with a bounded block cache (use around every raster job)."""
    rasterio = require("rasterio")
    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)


def _first_line(e: BaseException) -> str:
    """GDAL's own message: rasterio wraps it as the cause of a 'see previous exception'."""
    while e.__cause__ is not None and "previous exception" in str(e):
        e = e.__cause__
    return " ".join(str(e).split()) or type(e).__name__


class GeoRaster:
    """An open raster: its georeferencing, and windows read as segflow images."""

    def __init__(self, path: str | os.PathLike, options: RasterOptions | dict | None = None):
        rasterio = require("rasterio")
        self.path = Path(path)
        opts = options if isinstance(options, RasterOptions) else RasterOptions(**(options or {}))
        if not self.path.is_file():
            raise ImageReadError(f"{self.path}: no such file; check the path")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                self.ds = rasterio.open(self.path)
        except rasterio.errors.RasterioIOError as e:
            raise ImageReadError(f"{self.path}: not a raster GDAL can read ({_first_line(e)})") from None
        ds = self.ds
        self.height, self.width, self.count = ds.height, ds.width, ds.count
        self.crs = ds.crs
        self.transform = ds.transform
        bands = opts.bands or ([1, 2, 3] if self.count >= 3 else [1])
        bad = [b for b in bands if b > self.count]
        if bad:
            self.close()
            raise ImageReadError(
                f"{self.path}: band(s) {', '.join(map(str, bad))} out of range: the raster has "
                f"{self.count} band(s), numbered 1..{self.count}; choose e.g. bands: "
                f"{[1, 2, 3] if self.count >= 3 else [1]}")
        self.bands = bands
        self.dtype = np.dtype(ds.dtypes[bands[0] - 1])
        self.float = self.dtype.kind == "f"
        if opts.stretch == "none" and self.dtype != np.uint8:
            self.close()
            raise ImageReadError(f"{self.path}: stretch 'none' needs 8-bit bands, these are "
                                 f"{self.dtype}; use stretch: auto or [2, 98]")
        self._stretch = opts.stretch
        self._levels: list[tuple[float, float]] | None | bool = False  # False: not computed yet
        flags = [ds.mask_flag_enums[b - 1] for b in bands]
        self.all_valid = (not self.float and ds.nodata is None
                          and all(f == [rasterio.enums.MaskFlags.all_valid] for f in flags))

    # -- life cycle ---------------------------------------------------------------------------
    def close(self) -> None:
        self.ds.close()

    def __enter__(self) -> GeoRaster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def pixels(self) -> int:
        return self.height * self.width

    def georef(self) -> dict:
        """CRS (WKT, and EPSG code when there is one), transform and size, for reports."""
        crs = self.crs
        return {"crs": crs.to_string() if crs else None,
                "epsg": crs.to_epsg() if crs else None,
                "transform": list(self.transform)[:6], "size": [self.width, self.height],
                "nodata": self.ds.nodata, "bands": self.bands}

    def warn_if_no_crs(self, notes: list[str]) -> None:
        if self.crs is None:
            msg = f"{self.path}: no CRS; processed in pixel coordinates"
            notes.append(msg)
            warnings.warn(msg, GeoWarning, stacklevel=3)

    # -- scaling ------------------------------------------------------------------------------
    def levels(self) -> list[tuple[float, float]] | None:
        """Per band (low, high) of the stretch, or None when the values are kept (8-bit)."""
        if self._levels is not False:
            return self._levels  # type: ignore[return-value]
        if self._stretch == "none" or (self._stretch == "auto" and self.dtype == np.uint8):
            self._levels = None
            return None
        lo_p, hi_p = (2.0, 98.0) if self._stretch == "auto" else self._stretch
        f = max(1, math.ceil(math.sqrt(self.pixels / STATS_PIXELS)))
        shape = (len(self.bands), math.ceil(self.height / f), math.ceil(self.width / f))
        data = self._guarded(lambda: self.ds.read(self.bands, out_shape=shape, masked=True),
                             f"a decimated overview read ({shape[2]}x{shape[1]})")
        out = []
        for b in range(len(self.bands)):
            v = data[b].compressed().astype(np.float64)
            v = v[np.isfinite(v)]
            if v.size == 0:
                out.append((0.0, 1.0))
                continue
            lo, hi = (float(x) for x in np.percentile(v, [lo_p, hi_p]))
            out.append((lo, hi if hi > lo else lo + 1.0))
        self._levels = out
        return out

    # -- reading ------------------------------------------------------------------------------
    def _guarded(self, read, where: str, win=None):
        rasterio = require("rasterio")
        try:
            return read()
        except rasterio.errors.RasterioError as e:
            block = self._bad_block(win) if win is not None else None
            raise ImageReadError(f"{self.path}: {where}{block or ''} cannot be read; the file is "
                                 f"corrupt or truncated there ({_first_line(e)})") from None

    def _bad_block(self, win) -> str | None:
        """After a failed read: the first of the file's blocks (tiles or strips) inside ``win``
        that cannot be read, as ' (tile i, j: rows .., cols ..)'."""
        from rasterio.windows import intersect

        for (i, j), bw in self.ds.block_windows(self.bands[0]):
            if not intersect(bw, win):
                continue
            try:
                self.ds.read(self.bands, window=bw)
            except Exception:  # noqa: BLE001 - any failure marks the block
                return (f", tile {i},{j} (rows {bw.row_off}..{bw.row_off + bw.height - 1}, "
                        f"cols {bw.col_off}..{bw.col_off + bw.width - 1})")
        return None

    def read(self, row: int, col: int, height: int, width: int, *, where: str | None = None
             ) -> tuple[np.ndarray, np.ndarray | None]:
        """Pixels ``[row:row+height, col:col+width]`` as an image and a validity mask."""
        from rasterio.windows import Window

        win = Window(col, row, width, height)
        where = where or f"rows {row}..{row + height - 1}, cols {col}..{col + width - 1}"
        data = self._guarded(lambda: self.ds.read(self.bands, window=win), where, win)
        valid = None
        if not self.all_valid:
            m = self._guarded(lambda: self.ds.read_masks(self.bands, window=win), where)
            valid = m.min(axis=0) > 0
            if self.float:
                valid &= np.isfinite(data).all(axis=0)
        return self._to_image(data), valid

    def read_all(self) -> tuple[np.ndarray, np.ndarray | None]:
        return self.read(0, 0, self.height, self.width, where="the raster")

    def _to_image(self, data: np.ndarray) -> np.ndarray:
        levels = self.levels()
        if levels is None:
            out = data if data.dtype == np.uint8 else data.astype(np.uint8)
        else:
            out = np.empty(data.shape, np.uint8)
            for b, (lo, hi) in enumerate(levels):
                x = data[b].astype(np.float32)
                np.nan_to_num(x, copy=False, nan=lo, posinf=hi, neginf=lo)
                x -= np.float32(lo)
                x *= np.float32(255.0 / (hi - lo))
                np.clip(x, 0, 255, out=x)
                x += np.float32(0.5)
                out[b] = x.astype(np.uint8)
        if out.shape[0] == 1:
            return out[0]
        return np.ascontiguousarray(out.transpose(1, 2, 0))


class MaskWriter:
    """A single-band tiled GeoTIFF with another raster's CRS and transform, written by windows.

    Written to a temporary file and renamed on success, so an interrupted run never leaves half
    a GeoTIFF. ``tags`` are stored as GDAL metadata (e.g. the label schema, for ``vectorize``).
    """

    def __init__(self, path: str | os.PathLike, like: GeoRaster, *, dtype: str = "uint8",
                 nodata: float | None = IGNORE, palette: np.ndarray | None = None,
                 tags: dict | None = None, block: int = 512):
        rasterio = require("rasterio")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}{self.path.suffix}")
        profile = dict(driver="GTiff", width=like.width, height=like.height, count=1, dtype=dtype,
                       crs=like.crs, transform=like.transform, nodata=nodata, tiled=True,
                       blockxsize=block, blockysize=block, compress="deflate", BIGTIFF="IF_SAFER")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            self.ds = rasterio.open(self.tmp, "w", **profile)
        if tags:
            self.ds.update_tags(**{k: v if isinstance(v, str) else json.dumps(v)
                                   for k, v in tags.items()})
        if palette is not None and dtype == "uint8":
            pal = np.asarray(palette, np.uint8)
            self.ds.write_colormap(1, {i: (*map(int, pal[i]), 255) for i in range(min(256, len(pal)))})

    def write(self, arr: np.ndarray, row: int, col: int) -> None:
        from rasterio.windows import Window

        self.ds.write(arr.astype(self.ds.dtypes[0], copy=False), 1,
                      window=Window(col, row, arr.shape[1], arr.shape[0]))

    def __enter__(self) -> MaskWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.ds.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
        finally:
            if self.tmp.exists():
                self.tmp.unlink()


def write_georeferenced(path: str | os.PathLike, arr: np.ndarray, like: GeoRaster, **kw) -> Path:
    """Write a whole 2-D array as a GeoTIFF with ``like``'s georeferencing."""
    if arr.ndim != 2 or arr.shape != (like.height, like.width):
        raise SegflowError(f"{path}: expected a {like.width}x{like.height} array, got {arr.shape}")
    with MaskWriter(path, like, **kw) as w:
        w.write(arr, 0, 0)
    return Path(path)
