"""Geospatial rasters: GeoTIFF and COG in (read by windows), georeferenced masks and polygons out.

Needs the ``geo`` extra (rasterio, shapely, geopandas, pyogrio). Nothing here imports them at
module level: ``import segflow`` stays light, and :func:`require` turns a missing extra into one
line naming ``pip install 'segflow[geo]'``.

* :mod:`segflow.geo.options`  band selection and scaling (``bands: [4, 3, 2]``, percentile stretch)
* :mod:`segflow.geo.raster`   reading windows, writing tiled GeoTIFF masks with the source's
  georeferencing
* :mod:`segflow.geo.windows`  the window grid (cores and halos)
* :mod:`segflow.geo.levels`   global thresholds from a histogram streamed over windows
* :mod:`segflow.geo.run`      a pipeline over a raster, whole or windowed
* :mod:`segflow.geo.predict`  a checkpoint over a raster, windowed
* :mod:`segflow.geo.vector`   masks to polygons (GeoJSON, GeoPackage)
* :mod:`segflow.geo.synth`    synthetic scenes written as GeoTIFF
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

GEO_EXTRA = "pip install 'segflow[geo]'"

#: TIFF tags that make a TIFF a GeoTIFF: ModelPixelScale, ModelTiepoint, ModelTransformation,
#: GeoKeyDirectory.
_GEO_TAGS = (33550, 33922, 34264, 34735)


def require(module: str = "rasterio") -> ModuleType:
    """Import a module of the ``geo`` extra, or raise one line saying how to install it
    (:func:`segflow._extras.require`)."""
    from segflow._extras import require as require_extra

    require_extra("geo", modules=(module.split(".")[0],), what="geospatial rasters")
    return importlib.import_module(module)


def _tiff_tags(path: Path) -> tuple[set[int], int] | None:
    """The tag ids and pixel count of a TIFF's first page, from its header (Pillow, no decode)."""
    from PIL import Image

    import segflow.io  # noqa: F401 - sets Pillow's own pixel cap off once; segflow checks its own

    try:
        with Image.open(path) as im:
            return set(getattr(im, "tag_v2", {}) or {}), im.size[0] * im.size[1]
    except Exception:  # noqa: BLE001 - not readable by Pillow (BigTIFF, odd layouts): ask GDAL
        return None


def wants_geo(path: str | os.PathLike, max_pixels: int | None = None) -> bool:
    """Whether ``path`` goes through the raster code rather than :func:`segflow.io.read_image`.

    True for a TIFF with georeferencing tags, and for a TIFF over the pixel cap (read by windows,
    in pixel coordinates). Plain TIFFs that fit keep the ordinary path. Raises the one-line
    extra hint when such a file needs rasterio and it is missing.
    """
    p = Path(path)
    if p.suffix.lower() not in (".tif", ".tiff") or not p.is_file():
        return False
    from segflow.io import get_max_pixels

    cap = max_pixels if max_pixels is not None else get_max_pixels()
    info = _tiff_tags(p)
    if info is None:
        geo = True  # Pillow could not parse it; GDAL may (BigTIFF, COG with odd layouts)
        try:
            import rasterio  # noqa: F401
        except ImportError:
            return False  # the ordinary reader reports what is wrong with the file
    else:
        tags, npix = info
        geo = bool(tags.intersection(_GEO_TAGS)) or npix > cap
    if geo:
        require("rasterio")
    return geo


class GeoWarning(UserWarning):
    """Raster input segflow can process, but not as asked (e.g. no CRS: pixel coordinates)."""
