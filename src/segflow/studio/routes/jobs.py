"""Background jobs (pre-labels, imports, exports): their state and progress."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from sqlalchemy.orm import Session

from segflow.studio.deps import current_user, get_db, is_member
from segflow.studio.tables import User

router = APIRouter(prefix="/api", tags=["jobs"])
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="the id a 202 answer gave")]


@router.get("/jobs/{jid}", summary="A job's state (queued, running, done, failed), progress "
                                   "(done of total) and, once done, its result")
def get_job(jid: JobId, request: Request, user: User = Depends(current_user),
            db: Session = Depends(get_db)) -> dict:
    st = request.app.state.jobs.status(jid)
    mine = st is not None and (st["user_id"] == user.id or user.role == "admin" or (
        user.role == "manager" and st["project_id"] is not None
        and is_member(db, user, st["project_id"])))
    if not mine:
        raise HTTPException(404, f"no job {jid}")
    return st
