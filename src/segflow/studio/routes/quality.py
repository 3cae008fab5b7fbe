"""Quality control: gold labels, the qualification, honeypot and overlap settings, where each
annotator stands, the quality dashboard, and the reviewer's view of an overlap group."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from segflow.studio.deps import current_user, get_db, project_for, require_role, task_for
from segflow.studio.schemas import (
    GoldIn,
    PathId,
    QualificationUpdate,
    QualitySettingsIn,
    Resolve,
    TaskOut,
)
from segflow.studio.services import quality
from segflow.studio.tables import GoldLabel, Project, QualityScore, User
from segflow.studio.views import task_json

router = APIRouter(prefix="/api", tags=["quality"])
PNG = {"Cache-Control": "private, no-store"}


def _refused(e: quality.QualityError) -> HTTPException:
    return HTTPException(e.status, str(e))


@router.get("/projects/{pid}/quality/settings", summary="Qualification, honeypot and overlap "
                                                        "settings (admin, manager)")
def get_settings(pid: PathId, user: User = Depends(current_user),
                 db: Session = Depends(get_db)) -> dict:
    project_for(db, user, pid, manage=True)  # annotators must not learn which images are gold
    return quality.settings(db, pid)


@router.put("/projects/{pid}/quality/settings", summary="Set the qualification (gold images, "
                                                        "metric, pass mark, attempts), the "
                                                        "honeypot rate and overlap (admin, "
                                                        "manager)")
def put_settings(pid: PathId, body: QualitySettingsIn, user: User = Depends(current_user),
                 db: Session = Depends(get_db)) -> dict:
    p = project_for(db, user, pid, manage=True)
    try:
        out = quality.save_settings(db, p, body.model_dump())
    except quality.QualityError as e:
        raise _refused(e) from None
    db.commit()
    return out


@router.get("/projects/{pid}/gold", summary="Gold images (admin, manager)")
def list_gold(pid: PathId, user: User = Depends(current_user),
              db: Session = Depends(get_db)) -> list[dict]:
    project_for(db, user, pid, manage=True)
    return [quality.gold_json(g) for g in db.scalars(
        select(GoldLabel).where(GoldLabel.project_id == pid).order_by(GoldLabel.id)
        .options(selectinload(GoldLabel.image)))]


@router.post("/projects/{pid}/gold", status_code=201, summary="Mark an image gold: its "
             "accepted labels or imported ones become the reference (admin, manager)")
def add_gold(pid: PathId, body: GoldIn, user: User = Depends(current_user),
             db: Session = Depends(get_db)) -> dict:
    p = project_for(db, user, pid, manage=True)
    try:
        g = quality.set_gold(db, p, user, body.image_id, task_id=body.task_id,
                             labels=body.labels.model_dump() if body.labels else None)
    except quality.QualityError as e:
        raise _refused(e) from None
    db.commit()
    g = db.scalar(select(GoldLabel).where(GoldLabel.id == g.id)
                  .options(selectinload(GoldLabel.image)))
    return quality.gold_json(g)


@router.delete("/projects/{pid}/gold/{image_id}", summary="Unmark a gold image (admin, "
                                                          "manager); not while the "
                                                          "qualification uses it")
def delete_gold(pid: PathId, image_id: PathId, user: User = Depends(current_user),
                db: Session = Depends(get_db)) -> dict:
    project_for(db, user, pid, manage=True)
    g = db.scalar(select(GoldLabel).where(GoldLabel.project_id == pid,
                                          GoldLabel.image_id == image_id))
    if g is None:
        raise HTTPException(404, f"image {image_id} is not gold")
    if image_id in quality.settings(db, pid)["qualification"]["image_ids"]:
        raise HTTPException(409, f"image {image_id} is in the qualification; take it out of the "
                                 "settings first")
    db.delete(g)
    db.commit()
    return {"deleted": image_id}


@router.get("/projects/{pid}/qualification", summary="Where annotators stand in the "
            "qualification: one's own (annotators), everyone's (admin, manager)")
def get_qualification(pid: PathId, user: User = Depends(current_user),
                      db: Session = Depends(get_db)) -> list[dict]:
    p = project_for(db, user, pid)
    if user.role == "annotator":
        return quality.qualification_json(db, p, [user.id], user_view=True)
    require_role(user, "admin", "manager")
    return quality.qualification_json(db, p, None, user_view=False)


@router.put("/projects/{pid}/qualification/{uid}", summary="Pause an annotator, have them "
            "re-qualify, or let them pass (admin, manager)")
def put_qualification(pid: PathId, uid: PathId, body: QualificationUpdate,
                      user: User = Depends(current_user), db: Session = Depends(get_db)) -> dict:
    p = project_for(db, user, pid, manage=True)
    try:
        quality.set_qualification(db, p, uid, body.status)
    except quality.QualityError as e:
        raise _refused(e) from None
    db.commit()
    return quality.qualification_json(db, p, [uid], user_view=False)[0]


@router.get("/quality/scores/{sid}/heatmap.png", summary="A score's error map (an overlay: "
            "missed blue, over-painted red, wrong class yellow); annotators see their own "
            "qualification feedback", response_class=Response)
def score_heatmap(sid: PathId, user: User = Depends(current_user),
                  db: Session = Depends(get_db)) -> Response:
    s = db.get(QualityScore, sid)
    if s is None:
        raise HTTPException(404, f"no score {sid}")
    project_for(db, user, s.project_id)
    own = user.role == "annotator" and s.user_id == user.id and s.kind == "qualification"
    if not own and user.role not in ("admin", "manager"):
        raise HTTPException(404, f"no score {sid}")
    if s.heatmap is None:
        raise HTTPException(404, f"score {sid} has no heat-map")
    return Response(s.heatmap, media_type="image/png", headers=PNG)


@router.get("/projects/{pid}/quality", summary="Quality per annotator (gold scores over time, "
            "agreement, rejections, reviewer edits) and pre-label edits per source (admin, "
            "manager)")
def get_quality(pid: PathId, user: User = Depends(current_user),
                db: Session = Depends(get_db)) -> dict:
    p = project_for(db, user, pid, manage=True)
    return quality.dashboard(db, p)


@router.get("/projects/{pid}/quality.png", summary="Quality charts (admin, manager)",
            response_class=Response)
def get_quality_png(pid: PathId, user: User = Depends(current_user),
                    db: Session = Depends(get_db)) -> Response:
    p = project_for(db, user, pid, manage=True)
    return Response(quality.dashboard_png(quality.dashboard(db, p)), media_type="image/png",
                    headers=PNG)


def _reviewer_task(db: Session, user: User, tid: int):
    t = task_for(db, user, tid)
    require_role(user, "reviewer", "manager", "admin")
    return t


@router.get("/tasks/{tid}/agreement", summary="The overlap group of a task: its annotators, "
                                              "agreement and flag (reviewers, managers)")
def get_agreement(tid: PathId, user: User = Depends(current_user),
                  db: Session = Depends(get_db)) -> dict:
    return quality.agreement_json(db, _reviewer_task(db, user, tid))


@router.get("/tasks/{tid}/agreement.png", summary="Disagreement heat-map of an overlap group "
            "(an overlay: yellow to red as more annotators disagree)", response_class=Response)
def get_agreement_png(tid: PathId, user: User = Depends(current_user),
                      db: Session = Depends(get_db)) -> Response:
    png = quality.agreement_png(db, _reviewer_task(db, user, tid))
    if png is None:
        raise HTTPException(404, f"task {tid} has no agreement scored yet")
    return Response(png, media_type="image/png", headers=PNG)


@router.post("/tasks/{tid}/resolve", summary="Decide an overlap group: keep one annotator's "
             "version or merge them (majority, STAPLE) as the reviewer's own version, accepted",
             response_model=TaskOut)
def resolve(tid: PathId, body: Resolve, user: User = Depends(current_user),
            db: Session = Depends(get_db)) -> TaskOut:
    t = _reviewer_task(db, user, tid)
    group = quality.agreement_json(db, t)
    if user.id in {g["annotator_id"] for g in group.get("tasks", [])}:
        raise HTTPException(403, "nobody decides on their own work")
    if body.method == "pick" and body.task_id is None:
        raise HTTPException(422, "task_id: say whose version to keep")
    try:
        quality.resolve(db, db.get(Project, t.project_id), t, user, body.method, body.task_id)
    except quality.QualityError as e:
        db.rollback()
        raise _refused(e) from None
    db.commit()
    return task_json(db, t)
