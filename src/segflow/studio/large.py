"""What the routes of large items (``routes.volumes``, ``routes.rasters``) share: the item of a
task, the version asked for, the task's summary, runs as JSON, and the save of edited chunks
with its permission, state and conflict checks (those of the 2-D save)."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi import HTTPException
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from segflow.errors import SegflowError
from segflow.studio.deps import require_ack
from segflow.studio.services import chunks, masks
from segflow.studio.services.workflow import project_schema
from segflow.studio.tables import Annotation, LargeItem, Project, Task, User


def item(db: Session, t: Task, kind: str) -> LargeItem:
    it = db.get(LargeItem, t.image_id)
    if it is None or it.kind != kind:
        raise HTTPException(404, f"task {t.id} is not a {kind}")
    return it


def version(t: Task, v: int | None) -> int:
    v = t.version if v is None else v
    if v > t.version:
        raise HTTPException(404, f"task {t.id} has no version {v}")
    return v


def summary(db: Session, t: Task, info: dict) -> dict:
    """``info`` plus the latest version and its segments (with their areas)."""
    a = db.scalar(select(Annotation).where(Annotation.task_id == t.id, Annotation.version == t.version))
    return {**info, "version": t.version,
            "segments": [{k: s[k] for k in ("id", "category_id", "iscrowd")} | {"area": s.get("area", 0)}
                         for s in (a.segments if a else [])]}


def segments_of(db: Session, t: Task, v: int) -> list[dict]:
    a = db.scalar(select(Annotation).where(Annotation.task_id == t.id, Annotation.version == v))
    return a.segments if a else []


def runs_json(out: dict) -> Response:
    # json.dumps directly: FastAPI's encoder walks every run, ~10x slower on large maps
    return Response(json.dumps(out, separators=(",", ":")), media_type="application/json")


def labels_response(where: dict, v: int, lab) -> Response:
    """One chunk of labels (a volume plane, a raster tile) at version ``v`` as runs, with
    ``where`` it is (axis/index, tx/ty)."""
    return runs_json({**where, "version": v, "height": lab.shape[0], "width": lab.shape[1],
                      "runs": masks.encode_runs(lab)})


def png_response(png: bytes) -> Response:
    """A rendered view (a plane, a tile): cached by the browser, private to the user."""
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


def save(db: Session, user: User, t: Task, kind: str, body,
         changed: Callable[[LargeItem], dict]) -> dict:
    """Store the chunks ``changed(item)`` returns as a new version (the task's annotator only);
    bad chunks or segments: 422, someone saved since ``body.base_version``: 409."""
    if user.role != "annotator" or t.assignee_id != user.id:
        raise HTTPException(403, "only the task's annotator saves its labels")
    require_ack(db, user, t.project_id)
    if t.state not in chunks.EDITABLE:
        raise HTTPException(409, f"task {t.id} is {t.state}; it can be edited when assigned or "
                                 "rejected")
    it = item(db, t, kind)
    try:
        return chunks.save(db, t, user.id, base_version=body.base_version, seconds=body.seconds,
                           segments=[s.model_dump() for s in body.segments], changed=changed(it),
                           schema=project_schema(db.get(Project, t.project_id)))
    except (SegflowError, masks.MaskError) as e:
        db.rollback()
        raise HTTPException(422, str(e)) from None
    except chunks.Conflict:
        db.refresh(t)
        raise HTTPException(409, f"conflict: task {t.id} is at version {t.version} (you edited "
                                 f"version {body.base_version}); reload it to see the other "
                                 "changes — nothing was overwritten") from None
