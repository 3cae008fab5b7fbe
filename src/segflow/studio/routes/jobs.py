"""Background jobs (training, pre-labels, imports, exports): their state, progress, log and
cancellation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from sqlalchemy.orm import Session

from segflow.studio.deps import current_user, get_db, is_member
from segflow.studio.tables import User

router = APIRouter(prefix="/api", tags=["jobs"])
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="the id a 202 answer gave")]


def _job(request: Request, db: Session, user: User, jid: str) -> dict:
    st = request.app.state.jobs.status(jid)
    mine = st is not None and (st["user_id"] == user.id or user.role == "admin" or (
        user.role == "manager" and st["project_id"] is not None
        and is_member(db, user, st["project_id"])))
    if not mine:
        raise HTTPException(404, f"no job {jid}")
    return st


@router.get("/jobs/{jid}", summary="A job's state (queued, running, done, failed, cancelled), "
                                   "progress (done of total; step, loss, metric, ETA for "
                                   "training) and, once done, its result")
def get_job(jid: JobId, request: Request, user: User = Depends(current_user),
            db: Session = Depends(get_db)) -> dict:
    return _job(request, db, user, jid)


@router.get("/jobs/{jid}/log", summary="The end of a job's log (at most 64 KiB)")
def get_job_log(jid: JobId, request: Request, user: User = Depends(current_user),
                db: Session = Depends(get_db)) -> dict:
    st = _job(request, db, user, jid)
    return {"id": st["id"], "state": st["state"], "log": request.app.state.jobs.read_log(jid)}


@router.post("/jobs/{jid}/cancel", summary="Cancel a job (its owner, the project's managers, "
                                           "admins): a queued one at once, a running one at "
                                           "its next step")
def cancel_job(jid: JobId, request: Request, user: User = Depends(current_user),
               db: Session = Depends(get_db)) -> dict:
    st = _job(request, db, user, jid)
    if user.role not in ("admin", "manager") and st["user_id"] != user.id:
        raise HTTPException(403, "only the job's owner, a manager or an admin may cancel it")
    if st["state"] not in ("queued", "running"):
        raise HTTPException(409, f"job {jid} is {st['state']} already")
    return request.app.state.jobs.cancel(jid)
