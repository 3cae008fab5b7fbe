"""Huge georeferenced rasters: import (admins), the tile pyramid, label tiles, saving the edited
tiles, and the GeoTIFF / GeoJSON exports (``services.tiles``)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from segflow.errors import SegflowError
from segflow.studio.deps import current_user, get_db, project_for, require_role, task_for
from segflow.studio.routes.projects import WAIT, answer, require_ack
from segflow.studio.schemas import MAX_INT, PathId, RasterImport, RasterLabelsIn, Version
from segflow.studio.services import chunks, masks, tiles
from segflow.studio.services.workflow import project_schema
from segflow.studio.tables import Annotation, Project, Task, User

router = APIRouter(prefix="/api", tags=["rasters"])
Num = Annotated[int, Path(ge=0, le=MAX_INT)]


def _item(db: Session, t: Task):
    try:
        return tiles.raster_of(db, t)
    except SegflowError as e:
        raise HTTPException(404, str(e)) from None


def _version(t: Task, version: int | None) -> int:
    v = t.version if version is None else version
    if v > t.version:
        raise HTTPException(404, f"task {t.id} has no version {v}")
    return v


@router.post("/projects/{pid}/rasters", summary="Add a GeoTIFF on the server as a task (admin); "
                                                "a raster without overviews gets a preview first")
def import_raster(pid: PathId, body: RasterImport, request: Request, response: Response,
                  wait: float = WAIT, user: User = Depends(current_user),
                  db: Session = Depends(get_db)) -> dict:
    require_role(user, "admin")  # reading server paths is for admins only
    project_for(db, user, pid, manage=True)
    app = request.app

    def work(progress):
        with app.state.sessions() as s:
            return tiles.import_raster(s, app.state.data_dir, s.get(Project, pid), body.path,
                                       body.bands, progress=progress)

    st = app.state.jobs.submit("import", work, project_id=pid, user_id=user.id)
    return answer(app.state.jobs.wait(st["id"], wait), response)


@router.get("/tasks/{tid}/raster", summary="A raster task's size, pyramid and georeferencing")
def raster_info(tid: PathId, user: User = Depends(current_user), db: Session = Depends(get_db)) -> dict:
    t = task_for(db, user, tid)
    a = db.scalar(select(Annotation).where(Annotation.task_id == tid, Annotation.version == t.version))
    return {**tiles.info(_item(db, t)), "version": t.version,
            "segments": [{k: s[k] for k in ("id", "category_id", "iscrowd")} | {"area": s.get("area", 0)}
                         for s in (a.segments if a else [])]}


@router.get("/tasks/{tid}/raster/tiles/{level}/{tx}/{ty}.png", response_class=Response,
            summary="One tile of the image pyramid (level 0: full resolution)")
def raster_tile(tid: PathId, level: Annotated[int, Path(ge=0, le=64)], tx: Num, ty: Num,
                user: User = Depends(current_user), db: Session = Depends(get_db)) -> Response:
    t = task_for(db, user, tid)
    try:
        png = tiles.tile_png(_item(db, t), level, tx, ty)
    except SegflowError as e:
        raise HTTPException(422, str(e)) from None
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/tasks/{tid}/raster/labels/{tx}/{ty}",
            summary="One full-resolution label tile (latest or ?version=N) as runs")
def raster_labels(tid: PathId, tx: Num, ty: Num, version: Version | None = None,
                  user: User = Depends(current_user), db: Session = Depends(get_db)) -> Response:
    t = task_for(db, user, tid)
    v = _version(t, version)
    try:
        lab = tiles.label_tile(db, t, _item(db, t), tx, ty, v)
    except SegflowError as e:
        raise HTTPException(422, str(e)) from None
    out = {"tx": tx, "ty": ty, "version": v, "height": lab.shape[0], "width": lab.shape[1],
           "runs": masks.encode_runs(lab)}
    return Response(json.dumps(out, separators=(",", ":")), media_type="application/json")


@router.put("/tasks/{tid}/raster/labels", summary="Save edited label tiles as a new version (the "
                                                  "assigned annotator); only changed tiles are "
                                                  "stored; 409 if someone saved since base_version")
def save_tiles(tid: PathId, body: RasterLabelsIn, user: User = Depends(current_user),
               db: Session = Depends(get_db)) -> dict:
    t = task_for(db, user, tid)
    if user.role != "annotator" or t.assignee_id != user.id:
        raise HTTPException(403, "only the task's annotator saves its labels")
    require_ack(db, user, t.project_id)
    if t.state not in chunks.EDITABLE:
        raise HTTPException(409, f"task {tid} is {t.state}; it can be edited when assigned or "
                                 "rejected")
    item = _item(db, t)
    try:
        changed = {}
        for k, tl in enumerate(body.tiles):
            h, w = tiles.label_shape(item.meta, tl.tx, tl.ty)
            try:
                changed[tiles.label_key(tl.tx, tl.ty)] = masks.decode_runs(tl.runs, h, w)
            except masks.MaskError as e:
                raise SegflowError(f"tiles[{k}] ({tl.tx},{tl.ty}, {w}x{h}): {e}") from None
        return chunks.save(db, t, user.id, base_version=body.base_version, seconds=body.seconds,
                           segments=[s.model_dump() for s in body.segments], changed=changed,
                           schema=project_schema(db.get(Project, t.project_id)))
    except (SegflowError, masks.MaskError) as e:
        db.rollback()
        raise HTTPException(422, str(e)) from None
    except chunks.Conflict:
        db.refresh(t)
        raise HTTPException(409, f"conflict: task {tid} is at version {t.version} (you edited "
                                 f"version {body.base_version}); reload it to see the other "
                                 "changes — nothing was overwritten") from None


def _export(db: Session, user: User, tid: int, version: int | None, tmp: FsPath) -> tuple:
    t = task_for(db, user, tid)
    v = _version(t, version)
    item = _item(db, t)
    a = db.scalar(select(Annotation).where(Annotation.task_id == tid, Annotation.version == v))
    schema = project_schema(db.get(Project, t.project_id))
    mask = tiles.export_geotiff(db, t, item, v, tmp / "labels.tif", a.segments if a else [], schema)
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
        try:
            vectorize_to_file(mask, tmp / "labels.geojson", to_crs=to_crs,
                              schema={"classes": schema.to_list()})
        except SegflowError as e:
            raise HTTPException(422, str(e)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return FileResponse(tmp / "labels.geojson", media_type="application/geo+json",
                        filename=f"task{tid}_v{v}.geojson",
                        background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))
