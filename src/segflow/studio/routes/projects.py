"""Projects: the brief, members, guidelines, imports, pre-labels, assignment, progress and
export."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from segflow.annotations import LabelSchema
from segflow.errors import SegflowError
from segflow.studio.deps import (
    REVIEWABLE,
    WAIT,
    answer,
    current_user,
    get_db,
    latest_guideline,
    project_for,
    require_role,
    stamp,
    unprocessable,
)
from segflow.studio.schemas import (
    Assign,
    Brief,
    ExportIn,
    GuidelineIn,
    ImportFolder,
    Members,
    PathId,
    Prelabel,
    TaskOut,
    TaskState,
)
from segflow.studio.services import dashboard, quality, workflow
from segflow.studio.services.export import zip_version
from segflow.studio.tables import (
    Acknowledgement,
    DatasetVersion,
    Guideline,
    Image,
    Member,
    Project,
    Task,
    User,
)
from segflow.studio.views import task_list, version_json

router = APIRouter(prefix="/api/projects", tags=["projects"])


def project_targets(p: Project) -> list[str]:
    from segflow.studio.services.training import project_targets as targets

    return targets(p)


def project_json(db: Session, p: Project) -> dict:
    g = latest_guideline(db, p.id)
    return {"id": p.id, "name": p.name, "task_type": p.task_type, "goals": p.goals,
            "target_metric": p.target_metric, "target_threshold": p.target_threshold,
            "image_count": p.image_count, "domains": p.domains, "schema": p.schema,
            "prelabel": p.prelabel, "guideline_version": g.version if g else 0,
            "targets": project_targets(p),
            "images": db.scalar(select(func.count()).select_from(Image)
                                .where(Image.project_id == p.id)),
            "members": [m for m in db.scalars(select(Member.user_id)
                                              .where(Member.project_id == p.id))],
            "created_at": stamp(p.created_at)}


def _schema(body: Brief) -> list[dict]:
    classes = [c.model_dump() for c in body.schema_]
    with unprocessable("schema: "):
        workflow.check_hotkeys(classes)
        return LabelSchema.from_list(classes).to_list()


def _apply_brief(p: Project, body: Brief) -> None:
    if body.task_type != "semantic" and not any(c.isthing for c in body.schema_):
        raise HTTPException(422, f"schema: a {body.task_type} project needs at least one thing "
                                 "class (isthing: true)")
    p.name, p.task_type, p.goals = body.name, body.task_type, body.goals
    p.target_metric, p.target_threshold = body.target_metric, body.target_threshold
    p.image_count, p.domains, p.schema = body.image_count, body.domains, _schema(body)
    p.targets = _targets(body, p.schema)


def _targets(body: Brief, schema: list[dict]) -> list[str] | None:
    """The brief's targets, checked as ``segflow assess`` reads them (metric names of the
    task, classes of the schema)."""
    if body.targets is None:
        return None
    from segflow.assess.brief import check_classes, parse_brief

    with unprocessable():
        brief = parse_brief({"task": body.task_type, "targets": body.targets}, where="targets")
        check_classes(brief, [c["name"] for c in schema], where="targets")
    return [t.text for t in brief.targets]


@router.get("", summary="Projects I can see")
def list_projects(user: User = Depends(current_user), db: Session = Depends(get_db)) -> list[dict]:
    q = select(Project).order_by(Project.id)
    if user.role != "admin":
        q = q.join(Member, Member.project_id == Project.id).where(Member.user_id == user.id)
    return [project_json(db, p) for p in db.scalars(q)]


@router.post("", status_code=201, summary="Create a project from its brief (admin, manager)")
def create_project(body: Brief, user: User = Depends(current_user),
                   db: Session = Depends(get_db)) -> dict:
    require_role(user, "admin", "manager")
    p = Project(created_by=user.id, prelabel={"mode": "none"})
    _apply_brief(p, body)
    db.add(p)
    db.flush()
    db.add(Member(project_id=p.id, user_id=user.id))
    db.commit()
    return project_json(db, p)


@router.get("/{pid}", summary="A project's brief and state")
def get_project(pid: PathId, user: User = Depends(current_user), db: Session = Depends(get_db)) -> dict:
    return project_json(db, project_for(db, user, pid))


@router.put("/{pid}/brief", summary="Change the brief (admin, manager)")
def update_brief(pid: PathId, body: Brief, user: User = Depends(current_user),
                 db: Session = Depends(get_db)) -> dict:
    p = project_for(db, user, pid, manage=True)
    old = {c["id"] for c in p.schema}
    _apply_brief(p, body)
    if db.scalar(select(func.count()).select_from(Task).where(Task.project_id == pid,
                                                            Task.version > 0)) and \
            not old <= {c["id"] for c in p.schema}:
        db.rollback()
        raise HTTPException(409, "schema: classes already used by annotations cannot be removed")
    db.commit()
    return project_json(db, p)


@router.post("/{pid}/members", summary="Add members (admin, manager)")
def add_members(pid: PathId, body: Members, user: User = Depends(current_user),
                db: Session = Depends(get_db)) -> dict:
    project_for(db, user, pid, manage=True)
    for uid in body.user_ids:
        if db.get(User, uid) is None:
            raise HTTPException(404, f"user_ids: no user {uid}")
        if db.get(Member, (pid, uid)) is None:
            db.add(Member(project_id=pid, user_id=uid))
    db.commit()
    return {"members": list(db.scalars(select(Member.user_id).where(Member.project_id == pid)))}


# ---- guidelines ---------------------------------------------------------------------------


def guideline_json(db: Session, g: Guideline, user: User) -> dict:
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark", {"html": False}).render(g.markdown)  # raw HTML is escaped
    acked = db.get(Acknowledgement, (user.id, g.project_id, g.version)) is not None
    return {"version": g.version, "markdown": g.markdown, "html": html, "examples": g.examples,
            "created_at": stamp(g.created_at), "acknowledged": acked}


@router.get("/{pid}/guidelines", summary="All guideline versions, newest first")
def list_guidelines(pid: PathId, user: User = Depends(current_user),
                    db: Session = Depends(get_db)) -> list[dict]:
    project_for(db, user, pid)
    return [guideline_json(db, g, user) for g in db.scalars(
        select(Guideline).where(Guideline.project_id == pid).order_by(Guideline.version.desc()))]


@router.post("/{pid}/guidelines", status_code=201,
             summary="Publish a new guideline version (admin, manager)")
def add_guideline(pid: PathId, body: GuidelineIn, user: User = Depends(current_user),
                  db: Session = Depends(get_db)) -> dict:
    project_for(db, user, pid, manage=True)
    for k, ex in enumerate(body.examples):
        img = db.get(Image, ex.image_id)
        if img is None or img.project_id != pid:
            raise HTTPException(422, f"examples[{k}]: needs image_id of an image of this project "
                                     "and kind good or bad")
    last = latest_guideline(db, pid)
    g = Guideline(project_id=pid, version=(last.version + 1) if last else 1,
                  markdown=body.markdown, created_by=user.id,
                  examples=[e.model_dump() for e in body.examples])
    db.add(g)
    db.commit()
    return guideline_json(db, g, user)


@router.post("/{pid}/guidelines/{version}/ack", summary="Acknowledge a guideline version")
def ack_guideline(pid: PathId, version: PathId, user: User = Depends(current_user),
                  db: Session = Depends(get_db)) -> dict:
    project_for(db, user, pid)
    g = db.scalar(select(Guideline).where(Guideline.project_id == pid,
                                          Guideline.version == version))
    if g is None:
        raise HTTPException(404, f"no guideline version {version}")
    if db.get(Acknowledgement, (user.id, pid, version)) is None:
        db.add(Acknowledgement(user_id=user.id, project_id=pid, version=version))
        db.commit()
    return {"acknowledged": version}


# ---- images, import, pre-labels, assignment ------------------------------------------------


def _prelabel_job(request: Request, p: Project, user: User, task_ids=None) -> dict | None:
    """Pre-label the project's unlabelled tasks in the background (None: pre-labels are off)."""
    if (p.prelabel or {}).get("mode", "none") == "none":
        return None
    return request.app.state.jobs.submit("prelabel", {"task_ids": task_ids}, project_id=p.id,
                                         user_id=user.id)


@router.post("/{pid}/images", status_code=201, summary="Upload images (admin, manager)")
def upload_images(pid: PathId, request: Request, files: list[UploadFile] = File(...),
                  user: User = Depends(current_user), db: Session = Depends(get_db)) -> dict:
    """Each file is added on its own; the ones that cannot be read are listed in ``failed``
    (400 when none could be added). Pre-labels, when the project has them, are computed
    afterwards in a job (``prelabel_job``)."""
    # a plain def: FastAPI runs it in the thread pool, so decoding images never blocks the loop
    p = project_for(db, user, pid, manage=True)
    out = workflow.add_images(db, request.app.state.store, p,
                              [(f.filename or "image", f.file.read) for f in files])
    if out["failed"] and not out["added"] and not out["skipped_duplicates"]:
        raise HTTPException(400, "; ".join(f["error"] for f in out["failed"][:5]))
    out["prelabel_job"] = _prelabel_job(request, p, user, out["task_ids"]) if out["added"] else None
    return out


@router.post("/{pid}/import", summary="Import a server folder or dataset (admin); unreadable "
                                      "files are reported in 'failed', the others imported")
def import_folder(pid: PathId, body: ImportFolder, request: Request, response: Response,
                  wait: float = WAIT, user: User = Depends(current_user),
                  db: Session = Depends(get_db)) -> dict:
    require_role(user, "admin")  # reading server paths is for admins only
    p = project_for(db, user, pid, manage=True)
    try:
        workflow.check_folder(body.path)
    except SegflowError as e:
        raise HTTPException(400, str(e)) from None
    app = request.app
    st = app.state.jobs.submit("import", {"path": body.path, "format": body.format},
                               project_id=p.id, user_id=user.id)
    return answer(app.state.jobs.wait(st["id"], wait), response)


@router.put("/{pid}/prelabel", summary="Choose pre-labelling (admin, manager); the project's "
                                       "unlabelled tasks are pre-labelled in a job")
def set_prelabel(pid: PathId, body: Prelabel, request: Request, response: Response,
                 wait: float = WAIT, user: User = Depends(current_user),
                 db: Session = Depends(get_db)) -> dict:
    p = project_for(db, user, pid, manage=True)
    if body.mode == "checkpoint":
        require_role(user, "admin")  # a server path
    cfg = body.model_dump(exclude={"apply"})
    if cfg["class_id"] is not None and cfg["class_id"] not in {c["id"] for c in p.schema}:
        raise HTTPException(422, f"class_id: {cfg['class_id']} is not a class of the project")
    app = request.app
    st = app.state.jobs.submit("prelabel", {"config": cfg, "apply": body.apply},
                               project_id=p.id, user_id=user.id)
    return answer(app.state.jobs.wait(st["id"], wait), response)


@router.post("/{pid}/assign", summary="Assign tasks, balanced or by hand (admin, manager)")
def assign(pid: PathId, body: Assign, user: User = Depends(current_user),
           db: Session = Depends(get_db)) -> dict:
    p = project_for(db, user, pid, manage=True)
    try:
        out = workflow.assign(db, p, mode=body.mode, user_ids=body.user_ids,
                              task_ids=body.task_ids, eligible=quality.eligible(db, p))
        out["overlap"] = quality.add_overlap(db, p, out.pop("task_ids"))
    except SegflowError as e:
        db.rollback()
        raise HTTPException(400, str(e)) from None
    db.commit()
    return out


@router.get("/{pid}/tasks", summary="Tasks: all (managers), mine (annotators), to review "
                                    "(reviewers)", response_model=list[TaskOut])
def list_tasks(pid: PathId, state: TaskState | None = None, user: User = Depends(current_user),
               db: Session = Depends(get_db)) -> list[TaskOut]:
    project_for(db, user, pid)
    q = select(Task).where(Task.project_id == pid).order_by(Task.id)
    if user.role == "annotator":
        q = q.where(Task.assignee_id == user.id)
    elif user.role == "reviewer":
        q = q.where(Task.state.in_(REVIEWABLE), Task.kind == "work")
    if state:
        q = q.where(Task.state == state)
    return task_list(db, q)


@router.get("/{pid}/review-queue", summary="Submitted tasks a reviewer may review",
            response_model=list[TaskOut])
def review_queue(pid: PathId, user: User = Depends(current_user),
                 db: Session = Depends(get_db)) -> list[TaskOut]:
    project_for(db, user, pid)
    require_role(user, "reviewer", "manager", "admin")
    # overlap copies are decided with their image's task; gold tasks are scored, not reviewed
    q = select(Task).where(Task.project_id == pid, Task.state == "submitted", Task.kind == "work",
                           Task.assignee_id != user.id).order_by(Task.updated_at)
    return task_list(db, q)


# ---- progress and export --------------------------------------------------------------------


@router.get("/{pid}/dashboard", summary="Progress: states, throughput, rejection rate, time")
def get_dashboard(pid: PathId, user: User = Depends(current_user),
                  db: Session = Depends(get_db)) -> dict:
    project_for(db, user, pid)
    require_role(user, "admin", "manager", "reviewer")
    return dashboard.stats(db, pid)


@router.get("/{pid}/dashboard.png", summary="Progress charts", response_class=Response)
def dashboard_png(pid: PathId, user: User = Depends(current_user),
                  db: Session = Depends(get_db)) -> Response:
    project_for(db, user, pid)
    require_role(user, "admin", "manager", "reviewer")
    return Response(dashboard.chart_png(dashboard.stats(db, pid)), media_type="image/png")


@router.post("/{pid}/export", status_code=201,
             summary="Export accepted annotations as a dataset version (admin, manager)")
def export(pid: PathId, body: ExportIn, request: Request, response: Response, wait: float = WAIT,
           user: User = Depends(current_user), db: Session = Depends(get_db)) -> dict:
    p = project_for(db, user, pid, manage=True)
    app, uid = request.app, user.id
    st = app.state.jobs.submit("export", {"format": body.format}, project_id=p.id, user_id=uid)
    return answer(app.state.jobs.wait(st["id"], wait), response)


@router.get("/{pid}/exports", summary="Dataset versions exported so far")
def list_exports(pid: PathId, user: User = Depends(current_user),
                 db: Session = Depends(get_db)) -> list[dict]:
    project_for(db, user, pid, manage=True)
    return [version_json(d) for d in db.scalars(select(DatasetVersion).where(
        DatasetVersion.project_id == pid).order_by(DatasetVersion.id))]


@router.get("/{pid}/exports/{vid}.zip", summary="Download a dataset version")
def download_export(pid: PathId, vid: PathId, user: User = Depends(current_user),
                    db: Session = Depends(get_db)) -> FileResponse:
    project_for(db, user, pid, manage=True)
    dv = db.get(DatasetVersion, vid)
    if dv is None or dv.project_id != pid:
        raise HTTPException(404, f"no export {vid}")
    return FileResponse(zip_version(dv), filename=f"project{pid}-{dv.format}-"
                                                  f"{dv.content_hash[:12]}.zip")


