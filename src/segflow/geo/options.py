"""How a raster's bands become the image a pipeline or model sees (no rasterio needed here).

``bands`` picks 1 or 3 bands, 1-based as in GDAL and rasterio (``[4, 3, 2]`` is a false-colour
composite of a 4-band raster); the default is bands 1-3 (or 1 for a 1- or 2-band raster).
``stretch`` maps each band to 0..255: ``"auto"`` leaves 8-bit data as it is and stretches
anything else between its 2nd and 98th percentiles; ``[low, high]`` gives the percentiles;
``"none"`` keeps the values (8-bit data only). Percentiles come from a decimated read of the
whole raster (GDAL uses the overviews of a COG), never from the full-resolution pixels, so
every window is scaled the same way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RasterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bands: list[int] | None = Field(None, min_length=1, max_length=3)
    stretch: Literal["auto", "none"] | tuple[float, float] = "auto"

    @field_validator("bands")
    @classmethod
    def _bands(cls, v):
        if v is not None:
            if len(v) == 2:
                raise ValueError("give 1 band (grey) or 3 bands (RGB order), e.g. [4, 3, 2]")
            if any(b < 1 for b in v):
                raise ValueError("band numbers start at 1 (as in GDAL)")
        return v

    @field_validator("stretch")
    @classmethod
    def _stretch(cls, v):
        if isinstance(v, tuple):
            lo, hi = v
            if not (0 <= lo < hi <= 100):
                raise ValueError("percentiles must satisfy 0 <= low < high <= 100")
        return v


def parse_bands(text: str | None) -> list[int] | None:
    """``"4,3,2"`` or ``"[4, 3, 2]"`` (a CLI option) into a list; ``None`` stays ``None``."""
    from segflow.errors import ConfigError

    if text is None:
        return None
    try:
        bands = [int(b) for b in text.strip("[] ").split(",") if b.strip()]
    except ValueError:
        raise ConfigError(f"--bands: expected band numbers like 4,3,2, got {text!r}") from None
    try:
        return RasterOptions(bands=bands).bands
    except ValueError as e:
        raise ConfigError(f"--bands {text}: {e.errors()[0]['msg']}") from None
