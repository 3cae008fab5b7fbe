"""``segflow vectorize``: polygons of a mask GeoTIFF, as GeoJSON or GeoPackage."""

from __future__ import annotations

import warnings
from pathlib import Path

import typer

from segflow.cli._common import console, emit_json, error_line

VECTORIZE_EPILOG = """
Each polygon is one connected segment of a class (holes kept) with `segment_id`, `class_id`,
`class_name` (when the mask carries segflow's schema, or `--schema`), `area_px` and `area_m2`
(in the raster's projected CRS; for a geographic CRS, in an equal-area projection centred on the
raster). Nodata (255 in segflow's masks) is left out. Big masks are read by windows.

**Examples**

    segflow vectorize out/scene_mask.tif -o out/scene.geojson

    segflow vectorize out/scene_mask.tif -o out/scene.gpkg --simplify 0.5 --to-crs EPSG:4326

    segflow vectorize out/otsu/scene_mask.tif -o fg.geojson --skip 0    # foreground only
"""


def show_geo_warnings() -> None:
    """Raster warnings (no CRS...) as one plain line, like errors."""
    from segflow.geo import GeoWarning

    previous = warnings.showwarning
    if getattr(previous, "segflow_geo", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, GeoWarning):
            error_line(str(message), "warning")
        else:
            previous(message, category, filename, lineno, file, line)

    show.segflow_geo = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def vectorize_command(
    mask: Path = typer.Argument(..., help="Mask GeoTIFF (one band of class ids)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output .geojson or .gpkg."),
    simplify: float = typer.Option(None, "--simplify", help="Simplify polygons by this distance "
                                   "(CRS units: metres for a projected CRS)."),
    to_crs: str = typer.Option(None, "--to-crs", help="Reproject, e.g. EPSG:4326."),
    schema: Path = typer.Option(None, "--schema", help="schema.json with the class names."),
    skip: list[int] = typer.Option([], "--skip", help="Class id to leave out (repeatable)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Write the polygons of a mask's segments with class and area, in the mask's CRS or
    reprojected."""
    from segflow.geo.vector import read_schema_file, vectorize_to_file

    n, crs, notes = vectorize_to_file(mask, out, simplify=simplify, to_crs=to_crs, skip=skip,
                                      schema=read_schema_file(schema) if schema else None)
    crs = crs.to_string() if crs is not None else None
    if json_out:
        emit_json({"outputs": [str(out)], "polygons": n, "crs": crs, "notes": notes})
        return
    console.print(f"{n} polygons ({crs or 'pixel coordinates'}) -> {out}", highlight=False)
    for note in notes:
        if "no CRS" not in note:  # already shown as a warning
            console.print(f"note: {note}", highlight=False)
