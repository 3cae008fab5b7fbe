"""Training from the studio, the model registry, assessments and the pre-labeller (issue 10)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from segflow.errors import SegflowError
from segflow.studio.deps import WAIT, answer, current_user, get_db, project_for, require_role, unprocessable
from segflow.studio.schemas import MAX_INT, Body, PathId
from segflow.studio.services import training
from segflow.studio.tables import Member, Project, Task, User

router = APIRouter(prefix="/api", tags=["training"])
ModelId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
                              description="a model id of the registry")]


class TrainIn(Body):
    model: str = Field("unet", min_length=1, max_length=40,
                       description="a model of the registry for the project's task (unet, "
                                   "deeplabv3plus, fpn; maskrcnn for instance projects)")
    preset: Literal[tuple(training.PRESETS)] = "cpu-fast"  # type: ignore[valid-type]
    max_steps: int | None = Field(None, ge=1, le=1_000_000, description="optimizer steps "
                                  "(default: the preset's)")
    epochs: int | None = Field(None, ge=1, le=10_000)
    checkpoint_every: int | None = Field(None, ge=1, le=1_000_000)
    seed: int = Field(0, ge=0, le=MAX_INT)


class PrelabellerIn(Body):
    model_id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    apply: bool = Field(True, description="pre-label the project's unlabelled tasks now")


@router.get("/training/presets", summary="Training presets (budget, device, model size)")
def presets(user: User = Depends(current_user)) -> dict:
    from segflow.models.registry import MODELS

    return {"presets": {k: {"about": v["about"], "device": v["device"]}
                        for k, v in training.PRESETS.items()},
            "models": {n: m.task for n, m in MODELS.items() if n != "unet3d"}}


@router.post("/projects/{pid}/training", status_code=202,
             summary="Train a model on the accepted labels in a job (admin, manager)")
def start_training(pid: PathId, body: TrainIn, request: Request,
                   user: User = Depends(current_user), db: Session = Depends(get_db)) -> dict:
    p = project_for(db, user, pid, manage=True)
    with unprocessable():
        training.check_request(p, body.model, body.preset)
    accepted = db.scalar(select(func.count()).select_from(Task).where(
        Task.project_id == pid, Task.state == "accepted"))
    if accepted < 3:
        raise HTTPException(409, f"training needs at least 3 accepted images (2 to train, 1 held"
                                 f" out); the project has {accepted}")
    st = request.app.state.jobs.submit("train", body.model_dump(), project_id=pid,
                                       user_id=user.id)
    return {"job": st, "detail": f"training continues in the background; poll {st['url']}"}


@router.get("/projects/{pid}/training", summary="The project's training runs, newest first "
                                                "(admin, manager)")
def list_training(pid: PathId, request: Request, user: User = Depends(current_user),
                  db: Session = Depends(get_db)) -> list[dict]:
    project_for(db, user, pid, manage=True)
    return request.app.state.jobs.list(project_id=pid, kind="train")


# ---- the registry ------------------------------------------------------------------------------


def _registry(request: Request):
    from segflow.registry import ModelRegistry

    return ModelRegistry(training.models_root(request.app.state.data_dir))


def _visible(db: Session, user: User, rec) -> bool:
    pid = (rec.config or {}).get("project_id")
    if user.role == "admin":
        return True
    return isinstance(pid, int) and db.get(Member, (pid, user.id)) is not None


def _model(request: Request, db: Session, user: User, mid: str):
    require_role(user, "admin", "manager")
    try:
        rec = _registry(request).get(mid)
    except SegflowError:
        rec = None
    if rec is None or not _visible(db, user, rec):
        raise HTTPException(404, f"no model {mid}")
    return rec


def model_json(db: Session, rec, *, full: bool = False) -> dict:
    d = rec.to_dict()
    pid = (rec.config or {}).get("project_id")
    p = db.get(Project, pid) if isinstance(pid, int) else None
    d["project_id"] = pid
    d["prelabeller"] = bool(p and (p.prelabel or {}).get("model_id") == rec.id)
    d["report"] = f"/api/models/{rec.id}/report.html" if \
        (rec.folder / "report.html").exists() else None
    if full:
        f = rec.folder / "assessment.json"
        d["assessment"] = json.loads(f.read_text()) if f.exists() else None
    return d


@router.get("/models", summary="Trained models of the registry (admin, manager): those of my "
                               "projects, newest first")
def list_models(request: Request, project_id: int | None = Query(None, ge=1, le=MAX_INT),
                user: User = Depends(current_user), db: Session = Depends(get_db)) -> list[dict]:
    require_role(user, "admin", "manager")
    reg = _registry(request)
    recs = reg.list() if reg.root.exists() else []
    out = [model_json(db, r) for r in recs if _visible(db, user, r) and (
        project_id is None or (r.config or {}).get("project_id") == project_id)]
    return sorted(out, key=lambda d: d["created_at"], reverse=True)


@router.get("/models/{mid}", summary="A model's record: lineage, config, versions, held-out "
                                     "metrics and assessment (admin, manager)")
def get_model(mid: ModelId, request: Request, user: User = Depends(current_user),
              db: Session = Depends(get_db)) -> dict:
    return model_json(db, _model(request, db, user, mid), full=True)


@router.get("/models/{mid}/report.html", response_class=HTMLResponse,
            summary="The model's assessment report, with figures (admin, manager)")
def model_report(mid: ModelId, request: Request, user: User = Depends(current_user),
                 db: Session = Depends(get_db)):
    f = _model(request, db, user, mid).folder / "report.html"
    if not f.exists():
        raise HTTPException(404, f"model {mid} has no report")
    return FileResponse(f, media_type="text/html")


@router.get("/models/{mid}/report_files/{name}", summary="A figure of the report")
def model_report_file(mid: ModelId, request: Request,
                      name: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,100}\.png$")],
                      user: User = Depends(current_user), db: Session = Depends(get_db)):
    f = _model(request, db, user, mid).folder / "report_files" / name
    if not f.is_file():
        raise HTTPException(404, f"no figure {name}")
    return FileResponse(f, media_type="image/png")


@router.put("/projects/{pid}/prelabeller", summary="Make a model of the registry the project's "
                                                  "pre-labeller (admin, manager); its "
                                                  "unlabelled tasks are pre-labelled in a job")
def set_prelabeller(pid: PathId, body: PrelabellerIn, request: Request, response: Response,
                    wait: float = WAIT, user: User = Depends(current_user),
                    db: Session = Depends(get_db)) -> dict:
    project_for(db, user, pid, manage=True)
    try:
        rec = _registry(request).get(body.model_id)
    except SegflowError:
        rec = None
    if rec is None or (rec.config or {}).get("project_id") != pid:
        raise HTTPException(404, f"model_id: no model {body.model_id} of project {pid}")
    cfg = {"mode": "checkpoint", "checkpoint": str(rec.checkpoint), "model_id": rec.id,
           "pipeline": None, "class_id": None}
    jobs = request.app.state.jobs
    st = jobs.submit("prelabel", {"config": cfg, "apply": body.apply}, project_id=pid,
                     user_id=user.id)
    return answer(jobs.wait(st["id"], wait), response)

