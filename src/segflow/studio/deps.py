"""Request dependencies: the database session, who is asking, and what they may touch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

from fastapi import Depends, HTTPException, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from segflow.studio import security
from segflow.studio.tables import (
    Acknowledgement,
    AuthToken,
    Guideline,
    Member,
    Project,
    Task,
    User,
    now,
)

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
REVIEWABLE = ("submitted", "accepted", "rejected")  # the task states a reviewer may see


def get_db(request: Request) -> Iterator[Session]:
    """The request's session. The route owns the transaction: it commits once its work is
    done (or raises, and nothing is kept); services add and flush but never commit, except
    the services a background job calls (imports, pre-labels, exports), which own their own
    session and commit item by item so one bad file does not undo the others."""
    with request.app.state.sessions() as db:
        yield db


def _token_row(db: Session, token: str, kind: str) -> AuthToken | None:
    row = db.scalar(select(AuthToken).where(AuthToken.token_hash == security.token_hash(token),
                                            AuthToken.kind == kind))
    if row is None or (row.expires_at is not None and row.expires_at < now()):
        return None
    return row


def optional_user(request: Request, db: Session = Depends(get_db)) -> User | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        row = _token_row(db, auth[7:].strip(), "api")
        user = db.get(User, row.user_id) if row is not None else None
        if user is None or not user.active:
            raise HTTPException(401, "invalid, expired or revoked API token; create one with "
                                     "POST /api/auth/token")
        request.state.token_id = row.id
        return user
    cookie = request.cookies.get(security.SESSION_COOKIE)
    if not cookie:
        return None
    row = _token_row(db, cookie, "session")
    user = db.get(User, row.user_id) if row is not None else None
    if user is None or not user.active:
        return None
    if request.method in UNSAFE:
        sent = request.headers.get(security.CSRF_HEADER, "")
        if not sent or not security.same(sent, row.csrf):
            raise HTTPException(403, "missing or wrong CSRF token: send the segflow_csrf cookie's "
                                     "value in the X-CSRF-Token header")
    request.state.token_id = row.id
    return user


def current_user(user: User | None = Depends(optional_user)) -> User:
    if user is None:
        raise HTTPException(401, "log in first (POST /api/auth/login) or send a bearer token")
    return user


def require_role(user: User, *roles: str) -> None:
    if user.role not in roles:
        raise HTTPException(403, f"this needs the role {' or '.join(roles)}; you are {user.role}")


def is_member(db: Session, user: User, project_id: int) -> bool:
    return user.role == "admin" or db.get(Member, (project_id, user.id)) is not None


def project_for(db: Session, user: User, project_id: int, *, manage: bool = False) -> Project:
    """The project if ``user`` may see it (``manage``: may change it)."""
    p = db.get(Project, project_id)
    if p is None or not is_member(db, user, project_id):
        raise HTTPException(404, f"no project {project_id} (or you are not a member)")
    if manage:
        require_role(user, "admin", "manager")
    return p


def task_for(db: Session, user: User, task_id: int) -> Task:
    """The task if ``user`` may see it: managers and admins of the project, its annotator,
    and reviewers of the project once it is submitted or reviewed."""
    t = db.get(Task, task_id)
    if t is None or not is_member(db, user, t.project_id):
        raise HTTPException(404, f"no task {task_id}")
    if user.role in ("admin", "manager"):
        return t
    if user.role == "annotator" and t.assignee_id == user.id:
        return t
    if user.role == "reviewer" and t.state in REVIEWABLE:
        return t
    raise HTTPException(404, f"no task {task_id}")


def stamp(dt: datetime | None) -> str | None:
    return dt.isoformat() + "Z" if dt else None


def latest_guideline(db: Session, project_id: int) -> Guideline | None:
    return db.scalar(select(Guideline).where(Guideline.project_id == project_id)
                     .order_by(Guideline.version.desc()).limit(1))


def require_ack(db: Session, user: User, pid: int) -> None:
    """Annotators work only after acknowledging the project's latest guidelines."""
    g = latest_guideline(db, pid)
    if user.role == "annotator" and g and db.get(Acknowledgement, (user.id, pid, g.version)) is None:
        raise HTTPException(403, f"read and acknowledge guidelines version {g.version} first")


def require_qualified(db: Session, user: User, t: Task) -> None:
    """Real work (and honeypots, which must look like it) is for annotators who passed the
    project's qualification, when it has one."""
    from segflow.studio.services import quality

    if t.kind != "qualification" and not quality.is_qualified(db, user, t.project_id):
        raise HTTPException(403, "pass the project's qualification first (GET "
                                 f"/api/projects/{t.project_id}/next-task serves it)")


def answer(st: dict, response: Response) -> dict:
    """A job's outcome as this request's answer (``services.jobs.outcome``)."""
    from segflow.studio.services.jobs import outcome

    code, body = outcome(st)
    if code >= 400:
        raise HTTPException(code, body["detail"])
    response.status_code = code if code == 202 else response.status_code
    return body


WAIT = Query(2.0, ge=0, le=60, description="seconds to wait for the work to finish; after "
                                           "that the answer is 202 with a job to poll")


@contextlib.contextmanager
def unprocessable(prefix: str = ""):
    """Run the block; a :class:`SegflowError` from it (a value the library refuses: an index out
    of range, an unknown class, ...) becomes 422 with its message, after ``prefix``."""
    from segflow.errors import SegflowError

    try:
        yield
    except SegflowError as e:
        raise HTTPException(422, f"{prefix}{e}") from None
