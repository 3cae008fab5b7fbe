"""3-D volumes: import (admins), the slice viewer's planes and labels, saving edited planes,
interpolation between painted slices, and the NIfTI export (``services.volumes``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path as FsPath
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from segflow.errors import SegflowError
from segflow.studio import large
from segflow.studio.deps import current_user, get_db, project_for, require_role, task_for, unprocessable
from segflow.studio.schemas import MAX_INT, Interpolate, PathId, Version, VolumeImport, VolumeLabelsIn
from segflow.studio.services import masks, volumes
from segflow.studio.tables import User

router = APIRouter(prefix="/api", tags=["volumes"])
Axis = Annotated[int, Path(ge=0, le=2, description="0 sagittal, 1 coronal, 2 axial")]
Index = Annotated[int, Path(ge=0, le=MAX_INT, description="slice number along the axis")]
Window = Annotated[float | None, Query(ge=-1e12, le=1e12)]


@router.post("/projects/{pid}/volumes", status_code=201,
             summary="Add a volume on the server (NIfTI, DICOM series folder) as a task (admin)")
def import_volume(pid: PathId, body: VolumeImport, request: Request,
                  user: User = Depends(current_user), db: Session = Depends(get_db)) -> dict:
    require_role(user, "admin")  # reading server paths is for admins only
    p = project_for(db, user, pid, manage=True)
    try:
        return volumes.import_volume(db, request.app.state.data_dir, p, body.path)
    except SegflowError as e:
        db.rollback()
        raise HTTPException(400, str(e)) from None


@router.get("/tasks/{tid}/volume", summary="A volume task's geometry, planes and window presets")
def volume_info(tid: PathId, user: User = Depends(current_user), db: Session = Depends(get_db)) -> dict:
    t = task_for(db, user, tid)
    return large.summary(db, t, volumes.info(large.item(db, t, "volume")))


@router.get("/tasks/{tid}/volume/planes/{axis}/{index}.png", response_class=Response,
            summary="One plane of the scan, window/level applied (8-bit PNG)")
def plane_png(tid: PathId, axis: Axis, index: Index, level: Window = None, width: Window = None,
              user: User = Depends(current_user), db: Session = Depends(get_db)) -> Response:
    t = task_for(db, user, tid)
    with unprocessable():
        png = volumes.plane_png(large.item(db, t, "volume"), axis, index, level, width)
    return large.png_response(png)


@router.get("/tasks/{tid}/volume/labels/{axis}/{index}",
            summary="The labels of one plane (latest or ?version=N) as runs")
def plane_labels(tid: PathId, axis: Axis, index: Index, version: Version | None = None,
                 user: User = Depends(current_user), db: Session = Depends(get_db)) -> Response:
    t = task_for(db, user, tid)
    v = large.version(t, version)
    with unprocessable():
        lab = volumes.label_plane(db, t, large.item(db, t, "volume"), axis, index, v)
    return large.labels_response({"axis": axis, "index": index}, v, lab)


def _plane(item, p) -> np.ndarray:
    shape = item.meta["shape"]
    volumes.check_plane(shape, p.axis, p.index)
    h, w = volumes.plane_shape(shape, p.axis)
    try:
        return masks.decode_runs(p.runs, h, w)
    except masks.MaskError as e:
        raise SegflowError(f"the {volumes.AXES[p.axis]} plane {p.index} ({w}x{h}): {e}") from None


@router.put("/tasks/{tid}/volume/labels", summary="Save edited planes as a new version (the "
                                                  "assigned annotator); 409 if someone saved since "
                                                  "base_version")
def save_planes(tid: PathId, body: VolumeLabelsIn, user: User = Depends(current_user),
                db: Session = Depends(get_db)) -> dict:
    t = task_for(db, user, tid)

    def changed(item):
        planes = [(p.axis, p.index, _plane(item, p)) for p in body.planes]
        return volumes.planes_to_chunks(db, t, item, min(body.base_version, t.version), planes)

    return large.save(db, user, t, "volume", body, changed)


@router.post("/tasks/{tid}/volume/interpolate",
             summary="Interpolate the planes between two labelled planes (the task's annotator)")
def interpolate(tid: PathId, body: Interpolate, user: User = Depends(current_user),
                db: Session = Depends(get_db)) -> dict:
    t = task_for(db, user, tid)
    if user.role != "annotator" or t.assignee_id != user.id:
        raise HTTPException(403, "interpolation is for the task's annotator")
    item = large.item(db, t, "volume")
    a, b = (body.a, body.b) if body.a.index <= body.b.index else (body.b, body.a)
    if a.axis != b.axis:
        raise HTTPException(422, "a, b: both planes must be on the same axis")
    if not 2 <= b.index - a.index <= volumes.MAX_GAP:
        raise HTTPException(422, f"a, b: give two planes with 1 to {volumes.MAX_GAP - 1} planes "
                                 f"between them (got slices {a.index} and {b.index})")
    try:
        la, lb = _plane(item, a), _plane(item, b)
    except (SegflowError, masks.MaskError) as e:
        raise HTTPException(422, str(e)) from None
    out = volumes.interpolate(la, lb, b.index - a.index)
    return {"axis": a.axis, "planes": [{"index": a.index + 1 + k, "runs": masks.encode_runs(p)}
                                       for k, p in enumerate(out)]}


@router.get("/tasks/{tid}/volume/export.nii.gz", response_class=Response,
            summary="The labels (latest or ?version=N) as NIfTI with the scan's affine")
def export(tid: PathId, version: Version | None = None,
           by: Literal["class", "segment"] = Query("class", description="class ids or segment ids"),
           user: User = Depends(current_user), db: Session = Depends(get_db)):
    t = task_for(db, user, tid)
    v = large.version(t, version)
    item = large.item(db, t, "volume")
    fd, tmp = tempfile.mkstemp(suffix=".nii.gz")
    os.close(fd)
    try:
        volumes.export_nifti(db, t, item, v, FsPath(tmp), large.segments_of(db, t, v), by=by)
    except SegflowError as e:
        os.unlink(tmp)
        raise HTTPException(422, str(e)) from None
    return FileResponse(tmp, media_type="application/gzip",
                        filename=f"task{tid}_v{v}_{by}.nii.gz",
                        background=BackgroundTask(os.unlink, tmp))
