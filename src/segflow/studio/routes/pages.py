"""HTML pages. They are thin: each loads its data from the REST API in the browser, so the
UI can do nothing the API does not offer. Templates are Jinja2 with autoescaping."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.orm import Session

from segflow.studio.deps import get_db, optional_user
from segflow.studio.tables import User

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")


def _page(request: Request, user: User | None, name: str, **ctx):
    if user is None:
        return RedirectResponse("/login", status_code=303)
    return templates.TemplateResponse(request, name, {"user": user, **ctx})


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request):
    return templates.TemplateResponse(request, "login.html", {"user": None})


@router.get("/", response_class=HTMLResponse)
def home(request: Request, user: User | None = Depends(optional_user)):
    return _page(request, user, "home.html")


@router.get("/projects/{pid}", response_class=HTMLResponse)
def project_page(pid: int, request: Request, user: User | None = Depends(optional_user)):
    return _page(request, user, "project.html", pid=pid)


@router.get("/projects/{pid}/training", response_class=HTMLResponse)
def training_page(pid: int, request: Request, user: User | None = Depends(optional_user)):
    if user is not None and user.role not in ("admin", "manager"):
        raise HTTPException(403, "training is for managers")
    return _page(request, user, "training.html", pid=pid)


@router.get("/models/{mid}", response_class=HTMLResponse)
def model_page(mid: str, request: Request, user: User | None = Depends(optional_user)):
    if user is not None and user.role not in ("admin", "manager"):
        raise HTTPException(403, "assessments are for managers")
    return _page(request, user, "model.html", mid=mid)


@router.get("/projects/{pid}/quality", response_class=HTMLResponse)
def quality_page(pid: int, request: Request, user: User | None = Depends(optional_user)):
    return _page(request, user, "quality.html", pid=pid)


LARGE_PAGES = {"volume": "volume.html", "raster": "tiles.html"}  # the viewer of each large item


def _large_kind(db: Session, tid: int) -> str | None:
    """'volume' or 'raster' for a task on a large item (its own viewer), else None (the 2-D editor). The
    page itself shows nothing: its script asks the API, which checks who may see the task."""
    from segflow.studio.tables import LargeItem, Task

    if not 1 <= tid < 2**31:
        return None
    return db.scalar(select(LargeItem.kind).join(Task, Task.image_id == LargeItem.image_id)
                     .where(Task.id == tid))


@router.get("/tasks/{tid}/edit", response_class=HTMLResponse)
def editor_page(tid: int, request: Request, user: User | None = Depends(optional_user),
                db: Session = Depends(get_db)):
    import json

    from segflow.studio.services.workflow import TOOL_KEYS

    kind = _large_kind(db, tid)
    if kind in LARGE_PAGES:
        return _page(request, user, LARGE_PAGES[kind], tid=tid, review=False)
    return _page(request, user, "editor.html", tid=tid, tool_keys=json.dumps(TOOL_KEYS))


@router.get("/tasks/{tid}/review", response_class=HTMLResponse)
def review_page(tid: int, request: Request, user: User | None = Depends(optional_user),
                db: Session = Depends(get_db)):
    kind = _large_kind(db, tid)
    if kind in LARGE_PAGES:
        return _page(request, user, LARGE_PAGES[kind], tid=tid, review=True)
    return _page(request, user, "review.html", tid=tid)


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, user: User | None = Depends(optional_user)):
    if user is not None and user.role != "admin":
        raise HTTPException(403, "the audit log is for admins")
    return _page(request, user, "audit.html")
