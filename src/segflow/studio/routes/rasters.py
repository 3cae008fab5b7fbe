"""Huge georeferenced rasters: import (admins), the tile pyramid, label tiles, saving the edited
tiles, and the GeoTIFF / GeoJSON exports (``services.tiles``)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from segflow.errors import SegflowError
from segflow.studio import large
from segflow.studio.deps import (
    WAIT,
    answer,
    current_user,
    get_db,
    project_for,
    require_role,
    task_for,
    unprocessable,
)
from segflow.studio.schemas import MAX_INT, PathId, RasterImport, RasterLabelsIn, Version
from segflow.studio.services import masks, tiles
from segflow.studio.services.workflow import project_schema
from segflow.studio.tables import Project, User

router = APIRouter(prefix="/api", tags=["rasters"])
Num = Annotated[int, Path(ge=0, le=MAX_INT)]


@router.post("/projects/{pid}/rasters", summary="Add a GeoTIFF on the server as a task (admin); "
                                                "a raster without overviews gets a preview first")
def import_raster(pid: PathId, body: RasterImport, request: Request, response: Response,
                  wait: float = WAIT, user: User = Depends(current_user),
                  db: Session = Depends(get_db)) -> dict:
    require_role(user, "admin")  # reading server paths is for admins only
    project_for(db, user, pid, manage=True)
    app = request.app

    st = app.state.jobs.submit("import_raster", {"path": body.path, "bands": body.bands},
                               project_id=pid, user_id=user.id)
    return answer(app.state.jobs.wait(st["id"], wait), response)


@router.get("/tasks/{tid}/raster", summary="A raster task's size, pyramid and georeferencing")
def raster_info(tid: PathId, user: User = Depends(current_user), db: Session = Depends(get_db)) -> dict:
    t = task_for(db, user, tid)
    return large.summary(db, t, tiles.info(large.item(db, t, "raster")))


@router.get("/tasks/{tid}/raster/tiles/{level}/{tx}/{ty}.png", response_class=Response,
            summary="One tile of the image pyramid (level 0: full resolution)")
def raster_tile(tid: PathId, level: Annotated[int, Path(ge=0, le=64)], tx: Num, ty: Num,
                user: User = Depends(current_user), db: Session = Depends(get_db)) -> Response:
    t = task_for(db, user, tid)
    with unprocessable():
        png = tiles.tile_png(large.item(db, t, "raster"), level, tx, ty)
    return large.png_response(png)


@router.get("/tasks/{tid}/raster/labels/{tx}/{ty}",
            summary="One full-resolution label tile (latest or ?version=N) as runs")
def raster_labels(tid: PathId, tx: Num, ty: Num, version: Version | None = None,
                  user: User = Depends(current_user), db: Session = Depends(get_db)) -> Response:
    t = task_for(db, user, tid)
    v = large.version(t, version)
    with unprocessable():
        lab = tiles.label_tile(db, t, large.item(db, t, "raster"), tx, ty, v)
    return large.labels_response({"tx": tx, "ty": ty}, v, lab)


@router.put("/tasks/{tid}/raster/labels", summary="Save edited label tiles as a new version (the "
                                                  "assigned annotator); only changed tiles are "
                                                  "stored; 409 if someone saved since base_version")
def save_tiles(tid: PathId, body: RasterLabelsIn, user: User = Depends(current_user),
               db: Session = Depends(get_db)) -> dict:
    t = task_for(db, user, tid)

    def changed(item):
        out = {}
        for k, tl in enumerate(body.tiles):
            h, w = tiles.label_shape(item.meta, tl.tx, tl.ty)
            try:
                out[tiles.label_key(tl.tx, tl.ty)] = masks.decode_runs(tl.runs, h, w)
            except masks.MaskError as e:
                raise SegflowError(f"tiles[{k}] ({tl.tx},{tl.ty}, {w}x{h}): {e}") from None
        return out

    return large.save(db, user, t, "raster", body, changed)


def _export(db: Session, user: User, tid: int, version: int | None, tmp: FsPath) -> tuple:
    t = task_for(db, user, tid)
    v = large.version(t, version)
    item = large.item(db, t, "raster")
    schema = project_schema(db.get(Project, t.project_id))
    mask = tiles.export_geotiff(db, t, item, v, tmp / "labels.tif", large.segments_of(db, t, v), schema)
    return v, mask, schema


@router.get("/tasks/{tid}/raster/export.tif", response_class=Response,
            summary="The labels (latest or ?version=N) as a GeoTIFF of class ids with the "
                    "raster's CRS and transform (0: unlabelled, nodata)")
def export_tif(tid: PathId, version: Version | None = None, user: User = Depends(current_user),
               db: Session = Depends(get_db)):
    tmp = FsPath(tempfile.mkdtemp(prefix="segflow-export-"))
    try:
        v, mask, _ = _export(db, user, tid, version, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(mask, media_type="image/tiff", filename=f"task{tid}_v{v}.tif",
                        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))


@router.get("/tasks/{tid}/raster/export.geojson", response_class=Response,
            summary="The labels (latest or ?version=N) as GeoJSON polygons with class and area, "
                    "in the raster's CRS or ?to_crs=EPSG:4326")
def export_geojson(tid: PathId, version: Version | None = None,
                   to_crs: Annotated[str | None, Query(pattern=r"^EPSG:\d{1,6}$")] = None,
                   user: User = Depends(current_user), db: Session = Depends(get_db)):
    from segflow.geo.vector import vectorize_to_file

    tmp = FsPath(tempfile.mkdtemp(prefix="segflow-export-"))
    try:
        v, mask, schema = _export(db, user, tid, version, tmp)
        with unprocessable():
            vectorize_to_file(mask, tmp / "labels.geojson", to_crs=to_crs,
                              schema={"classes": schema.to_list()})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(tmp / "labels.geojson", media_type="application/geo+json",
                        filename=f"task{tid}_v{v}.geojson",
                        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))
