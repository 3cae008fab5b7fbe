"""Tasks: the image, the annotation (versions, history, diff), saving with conflict
detection, submit, review with pinned comments, and the assist tools."""

from __future__ import annotations

import json

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from segflow.studio.deps import (
    REVIEWABLE,
    current_user,
    get_db,
    project_for,
    require_ack,
    require_qualified,
    require_role,
    stamp,
    task_for,
    unprocessable,
)
from segflow.studio.schemas import AnnotationIn, Assist, PathId, Review, TaskOut, Version
from segflow.studio.services import masks, quality
from segflow.studio.services.workflow import project_schema
from segflow.studio.tables import Annotation, Comment, Event, Image, Project, Task, User, now
from segflow.studio.views import task_json

router = APIRouter(prefix="/api", tags=["tasks"])
EDITABLE = ("assigned", "rejected")


def usernames(db: Session) -> dict[int, str]:
    return dict(db.execute(select(User.id, User.username)).all())


@router.get("/projects/{pid}/next-task", summary="My next task to annotate (annotators): the "
            "qualification's until passed, then real work", response_model=TaskOut)
def next_task(pid: PathId, user: User = Depends(current_user),
              db: Session = Depends(get_db)) -> TaskOut:
    p = project_for(db, user, pid)
    require_role(user, "annotator")
    require_ack(db, user, pid)
    try:
        t = quality.next_task(db, p, user)
    except quality.QualityError as e:
        db.commit()  # a first visit still records where the annotator stands
        raise HTTPException(e.status, str(e)) from None
    db.commit()
    if t is None:
        raise HTTPException(404, "no open tasks for you in this project")
    return task_json(db, t)


@router.get("/tasks/{tid}", summary="A task", response_model=TaskOut)
def get_task(tid: PathId, user: User = Depends(current_user),
             db: Session = Depends(get_db)) -> TaskOut:
    return task_json(db, task_for(db, user, tid))


@router.get("/images/{iid}", summary="An image (8-bit PNG/JPEG for the browser)")
def get_image(iid: PathId, request: Request, user: User = Depends(current_user),
              db: Session = Depends(get_db)):
    img = db.get(Image, iid)
    if img is None:
        raise HTTPException(404, f"no image {iid}")
    project_for(db, user, img.project_id)
    if user.role in ("annotator", "reviewer"):
        # annotators: the images of their own tasks; reviewers: of tasks submitted for review
        # (as task_for); both: guideline examples
        q = select(Task.id).where(Task.image_id == iid)
        q = q.where(Task.assignee_id == user.id) if user.role == "annotator" else \
            q.where(Task.state.in_(REVIEWABLE))
        from segflow.studio.tables import Guideline

        ex = any(e.get("image_id") == iid for g in db.scalars(
            select(Guideline).where(Guideline.project_id == img.project_id)) for e in g.examples)
        if db.scalar(q.limit(1)) is None and not ex:
            raise HTTPException(404, f"no image {iid}")
    store = request.app.state.store
    path = store.path(img.sha256, img.ext)
    headers = {"Cache-Control": "private, max-age=86400"}
    if img.ext in ("png", "jpg", "webp", "bmp"):
        with open(path, "rb") as f:  # 8-bit files the browser shows as they are
            head = f.read(32)
        if img.ext != "png" or head[24] == 8:
            return FileResponse(path, headers=headers)
    disp = path.with_suffix(".display.png")
    if not disp.exists():
        from segflow.io import write_image
        from segflow.ops.draw import to_display_rgb

        write_image(disp, to_display_rgb(store.read(img.sha256, img.ext)))
    return FileResponse(disp, media_type="image/png", headers=headers)


def _annotation(db: Session, t: Task, version: int | None) -> Annotation | None:
    v = t.version if version is None else version
    return db.scalar(select(Annotation).where(Annotation.task_id == t.id, Annotation.version == v))


@router.get("/tasks/{tid}/annotation", summary="The labels (latest or ?version=N) as runs")
def get_annotation(tid: PathId, version: Version | None = None, user: User = Depends(current_user),
                   db: Session = Depends(get_db)) -> Response:
    t = task_for(db, user, tid)
    img = db.get(Image, t.image_id)
    a = _annotation(db, t, version)
    if a is None and version not in (None, 0):
        raise HTTPException(404, f"task {tid} has no version {version}")
    out = masks.to_wire(a.segments if a else [], a.runs if a else None, img.height, img.width)
    out.update(version=a.version if a else 0, kind=a.kind if a else None)
    # json.dumps directly: FastAPI's encoder walks every run, ~10x slower on 1 MP maps
    return Response(json.dumps(out, separators=(",", ":")), media_type="application/json")


@router.put("/tasks/{tid}/annotation", summary="Save a new version (the assigned annotator; "
             "or a reviewer fixing a submitted task before accepting it, as their own "
             "version); 409 if someone saved since base_version")
def save_annotation(tid: PathId, body: AnnotationIn, user: User = Depends(current_user),
                    db: Session = Depends(get_db)) -> dict:
    t = task_for(db, user, tid)
    fix = user.role in ("reviewer", "manager", "admin") and t.assignee_id != user.id and \
        t.state == "submitted"
    if not fix and (user.role != "annotator" or t.assignee_id != user.id):
        raise HTTPException(403, "only the task's annotator saves its labels (and reviewers, "
                                 "fixing a submitted task)")
    require_ack(db, user, t.project_id)
    require_qualified(db, user, t)
    states = ("submitted",) if fix else EDITABLE
    if t.state not in states or (fix and t.kind != "work"):
        raise HTTPException(409, f"task {tid} is {t.state}; it can be edited when assigned or "
                                 "rejected (by its annotator), or fixed by a reviewer when "
                                 "submitted")
    img = db.get(Image, t.image_id)
    if (body.width, body.height) != (img.width, img.height):
        raise HTTPException(422, f"width/height: the image is {img.width}x{img.height}, the "
                                 f"labels {body.width}x{body.height}")
    schema = project_schema(db.get(Project, t.project_id))
    try:
        stored = masks.from_wire(body.runs, [s.model_dump() for s in body.segments], img.height,
                                 img.width, schema)
    except masks.MaskError as e:
        raise HTTPException(422, str(e)) from None
    pre = db.scalar(select(Annotation).where(Annotation.task_id == tid,
                                             Annotation.kind == "prelabel")
                    .order_by(Annotation.version.desc()).limit(1))
    untouched = pre is not None and masks.same_labels(masks.Labels(pre.segments, pre.runs), stored)
    # Optimistic lock: the version moves only if nobody saved since base_version. One UPDATE
    # with the old version in its WHERE clause is atomic on SQLite and PostgreSQL alike.
    res = db.execute(update(Task).where(Task.id == tid, Task.version == body.base_version,
                                        Task.state.in_(states))
                     .values(version=Task.version + 1, updated_at=now(),
                             seconds_spent=Task.seconds_spent + body.seconds,
                             prelabel_untouched=untouched))
    if res.rowcount != 1:
        db.rollback()
        db.refresh(t)
        raise HTTPException(409, f"conflict: task {tid} is at version {t.version} (you edited "
                                 f"version {body.base_version}); reload it to see the other "
                                 "changes — nothing was overwritten")
    db.add(Annotation(task_id=tid, version=body.base_version + 1, author_id=user.id,
                      kind="review" if fix else "save", segments=stored.segments,
                      runs=stored.runs))
    db.add(Event(project_id=t.project_id, task_id=tid, user_id=user.id, kind="saved",
                 seconds=body.seconds))
    db.commit()
    return {"version": body.base_version + 1, "segments": len(stored.segments),
            "untouched_prelabel": untouched}


@router.post("/tasks/{tid}/submit", summary="Send the task to review (its annotator); a "
             "qualification task answers with its score and error map")
def submit(tid: PathId, user: User = Depends(current_user), db: Session = Depends(get_db)) -> dict:
    t = task_for(db, user, tid)
    if user.role != "annotator" or t.assignee_id != user.id:
        raise HTTPException(403, "only the task's annotator submits it")
    require_qualified(db, user, t)
    if t.state not in EDITABLE:
        raise HTTPException(409, f"task {tid} is {t.state}")
    if t.version == 0:
        raise HTTPException(409, "save some labels before submitting")
    t.state, t.updated_at = "submitted", now()
    db.add(Event(project_id=t.project_id, task_id=tid, user_id=user.id, kind="submitted"))
    db.flush()
    feedback = quality.on_submit(db, db.get(Project, t.project_id), t)
    db.commit()
    out = task_json(db, t).model_dump()
    if feedback is not None:
        out["feedback"] = feedback
    return out


@router.post("/tasks/{tid}/review", summary="Accept, or reject with comments (reviewers; never "
                                            "one's own work)", response_model=TaskOut)
def review(tid: PathId, body: Review, user: User = Depends(current_user),
           db: Session = Depends(get_db)) -> TaskOut:
    t = task_for(db, user, tid)
    require_role(user, "reviewer", "manager", "admin")
    # a reviewer's own fixes (kind "review") are what they accept, not work they review
    authors = set(db.scalars(select(Annotation.author_id).where(Annotation.task_id == tid,
                                                                Annotation.kind != "review")))
    if user.id == t.assignee_id or user.id in authors:
        raise HTTPException(403, "nobody reviews their own work")
    if t.state != "submitted":
        raise HTTPException(409, f"task {tid} is {t.state}, not submitted")
    if t.kind != "work":
        raise HTTPException(409, f"task {tid} is scored against gold labels or decided with "
                                 "its image's task, not reviewed on its own")
    if body.decision == "reject" and not body.comments:
        raise HTTPException(422, "comments: say what to fix when rejecting")
    img = db.get(Image, t.image_id)
    for c in body.comments:
        if c.x is not None and not (0 <= c.x < img.width and 0 <= (c.y or 0) < img.height):
            raise HTTPException(422, "comments: x, y must lie inside the image")
        db.add(Comment(task_id=tid, author_id=user.id, version=t.version, x=c.x, y=c.y,
                       text=c.text))
    t.state = "accepted" if body.decision == "accept" else "rejected"
    t.reviewer_id, t.updated_at = user.id, now()
    db.add(Event(project_id=t.project_id, task_id=tid, user_id=user.id, kind=t.state))
    if t.state == "accepted":
        quality.accept_group(db, t, user)
        quality.reviewer_fixes(db, db.get(Project, t.project_id), t)
        quality.on_accept(db, db.get(Project, t.project_id), t)
    db.commit()
    return task_json(db, t)


@router.get("/tasks/{tid}/comments", summary="Review comments, pinned to points")
def comments(tid: PathId, user: User = Depends(current_user), db: Session = Depends(get_db)) -> list:
    task_for(db, user, tid)
    names = usernames(db)
    return [{"id": c.id, "author": names.get(c.author_id), "version": c.version, "x": c.x,
             "y": c.y, "text": c.text, "created_at": stamp(c.created_at)}
            for c in db.scalars(select(Comment).where(Comment.task_id == tid)
                                .order_by(Comment.id))]


@router.get("/tasks/{tid}/history", summary="Every version with author, time and segment count")
def history(tid: PathId, user: User = Depends(current_user), db: Session = Depends(get_db)) -> list:
    task_for(db, user, tid)
    names = usernames(db)
    return [{"version": a.version, "kind": a.kind, "author": names.get(a.author_id),
             "segments": len(a.segments), "created_at": stamp(a.created_at)}
            for a in db.scalars(select(Annotation).where(Annotation.task_id == tid)
                                .order_by(Annotation.version))]


@router.get("/tasks/{tid}/diff.png", summary="Visual diff of two versions: green added, red "
                                             "removed, yellow relabelled", response_class=Response)
def diff_png(tid: PathId, a: Version, b: Version, request: Request, user: User = Depends(current_user),
             db: Session = Depends(get_db)) -> Response:
    t = task_for(db, user, tid)
    img = db.get(Image, t.image_id)
    versions = []
    for v in (a, b):
        ann = _annotation(db, t, v)
        if ann is None and v != 0:
            raise HTTPException(404, f"task {tid} has no version {v}")
        versions.append(masks.Labels(ann.segments, ann.runs) if ann else masks.Labels([], b""))
    from segflow.ops.draw import to_display_rgb

    base = to_display_rgb(request.app.state.store.read(img.sha256, img.ext))
    return Response(masks.diff_png(base, *versions), media_type="image/png")


@router.post("/tasks/{tid}/assist", summary="Run an assist tool on the server: a region to paint "
                                            "(threshold, k-means, GrabCut, superpixel)")
def assist(tid: PathId, body: Assist, request: Request, user: User = Depends(current_user),
           db: Session = Depends(get_db)) -> dict:
    from segflow.studio.services.assist import run_assist

    t = task_for(db, user, tid)
    if user.role != "annotator" or t.assignee_id != user.id:
        raise HTTPException(403, "assist tools are for the task's annotator")
    img = db.get(Image, t.image_id)
    image = request.app.state.store.read(img.sha256, img.ext)
    with unprocessable():
        region = run_assist(image, body.tool, point=body.point, box=body.box, method=body.method,
                            k=body.k, n_segments=body.n_segments)
    return {"width": img.width, "height": img.height, "pixels": int(region.sum()),
            "runs": masks.encode_runs(region.astype(np.int32))}
