"""Log in and out, API tokens, passwords, users and the audit log."""

from __future__ import annotations

import secrets
from datetime import timedelta

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segflow.studio import security
from segflow.studio.deps import current_user, get_db, require_role, stamp
from segflow.studio.schemas import (
    Login,
    NewUser,
    PasswordChange,
    PasswordReset,
    TokenRequest,
    UserUpdate,
)
from segflow.studio.services import accounts
from segflow.studio.services.accounts import audit, client_ip
from segflow.studio.tables import AUDIT_KINDS, AuditEvent, AuthToken, Member, User, now

router = APIRouter(prefix="/api", tags=["auth"])
SESSION_DAYS = 7


def user_json(u: User) -> dict:
    return {"id": u.id, "username": u.username, "role": u.role, "active": u.active}


def _check(db: Session, request: Request, username: str, password: str) -> User:
    """The user if the password is right. Failed attempts are counted per user name and per
    address (429 with Retry-After past the limit), and an unknown name costs one argon2
    verification like a known one, so names cannot be told apart by timing."""
    limits: accounts.LoginLimits = request.app.state.login_limits
    ip = client_ip(request)
    wait = limits.retry_after(username, ip)
    if wait:
        audit(db, "login_rate_limited", request=request, username=username,
              detail=f"retry after {wait} s")
        db.commit()
        raise HTTPException(429, f"too many failed logins for {username!r} or from {ip}; try "
                                 f"again in {wait} s", headers={"Retry-After": str(wait)})
    u = db.scalar(select(User).where(User.username == username))
    ok = security.verify_password(u.password_hash if u else security.dummy_hash(), password)
    if u is None or not ok or not u.active:
        limits.failed(username, ip)
        why = "no such user" if u is None else "wrong password" if not ok else "deactivated"
        audit(db, "login_failed", request=request, user=u, username=username, detail=why)
        db.commit()
        raise HTTPException(401, "wrong user name or password (or the account is deactivated)")
    limits.succeeded(username)
    db.execute(delete(AuthToken).where(AuthToken.user_id == u.id, AuthToken.expires_at < now()))
    return u


@router.post("/auth/login", summary="Log in (browser): sets the session and CSRF cookies")
def login(body: Login, request: Request, response: Response,
          db: Session = Depends(get_db)) -> dict:
    u = _check(db, request, body.username, body.password)
    tok, h = security.new_token()
    csrf = secrets.token_urlsafe(24)
    db.add(AuthToken(user_id=u.id, token_hash=h, kind="session", csrf=csrf, name="browser",
                     expires_at=now() + timedelta(days=SESSION_DAYS)))
    audit(db, "login_ok", request=request, actor=u, user=u)
    db.commit()
    age = SESSION_DAYS * 86400
    response.set_cookie(security.SESSION_COOKIE, tok, max_age=age, httponly=True,
                        samesite="strict", path="/")
    response.set_cookie(security.CSRF_COOKIE, csrf, max_age=age, httponly=False,
                        samesite="strict", path="/")
    return {"user": user_json(u), "csrf": csrf}


@router.post("/auth/logout", summary="End the session, or revoke the bearer token used")
def logout(request: Request, response: Response, user: User = Depends(current_user),
           db: Session = Depends(get_db)) -> dict:
    tid = request.state.token_id
    db.execute(AuthToken.__table__.delete().where(AuthToken.id == tid))
    audit(db, "logout", request=request, actor=user, user=user, detail=f"token {tid}")
    db.commit()
    response.delete_cookie(security.SESSION_COOKIE, path="/")
    response.delete_cookie(security.CSRF_COOKIE, path="/")
    return {"ok": True}


@router.post("/auth/token", summary="Create a bearer token for API clients (it expires)")
def api_token(body: TokenRequest, request: Request, db: Session = Depends(get_db)) -> dict:
    max_days = request.app.state.token_ttl_days
    if body.expires_in_days is not None and body.expires_in_days > max_days:
        raise HTTPException(422, f"expires_in_days: at most {max_days:g} on this studio")
    u = _check(db, request, body.username, body.password)
    tok, h = security.new_token()
    row = AuthToken(user_id=u.id, token_hash=h, kind="api", name=body.name,
                    expires_at=now() + timedelta(days=body.expires_in_days or max_days))
    db.add(row)
    db.flush()
    audit(db, "token_created", request=request, actor=u, user=u,
          detail=f"token {row.id} {body.name!r}")
    db.commit()
    return {"token": tok, "id": row.id, "expires_at": stamp(row.expires_at),
            "user": user_json(u)}


def _visible_user(db: Session, user: User, uid: int) -> User:
    """A user whose tokens ``user`` may manage: themselves, or anyone for admins."""
    u = db.get(User, uid)
    if u is None or (u.id != user.id and user.role != "admin"):
        raise HTTPException(404, f"no user {uid}")
    return u


@router.get("/auth/tokens", summary="My sessions and API tokens (admins: ?user_id= for anyone's)")
def list_tokens(user_id: int | None = Query(None, ge=1, le=2**31 - 1),
                user: User = Depends(current_user), db: Session = Depends(get_db)) -> list[dict]:
    u = _visible_user(db, user, user_id or user.id)
    return [accounts.token_json(t) for t in accounts.tokens_of(db, u.id)]


@router.delete("/auth/tokens/{token_id}", summary="Revoke a session or token (its owner, admins)")
def revoke_token(token_id: int, request: Request, user: User = Depends(current_user),
                 db: Session = Depends(get_db)) -> dict:
    t = db.get(AuthToken, token_id) if 0 < token_id < 2**31 else None
    if t is None or (t.user_id != user.id and user.role != "admin"):
        raise HTTPException(404, f"no token {token_id}")
    owner = db.get(User, t.user_id)
    db.delete(t)
    audit(db, "token_revoked", request=request, actor=user, user=owner,
          detail=f"token {token_id} {t.kind} {t.name!r}")
    db.commit()
    return {"revoked": token_id}


@router.post("/auth/password", summary="Change my password (needs the old one); my other "
                                       "sessions and tokens are revoked")
def change_password(body: PasswordChange, request: Request, user: User = Depends(current_user),
                    db: Session = Depends(get_db)) -> dict:
    try:
        _check(db, request, user.username, body.old_password)  # rate-limited like a login
    except HTTPException as e:
        if e.status_code != 401:
            raise
        raise HTTPException(403, "old_password: wrong password") from None
    accounts.check_password(body.new_password, username=user.username, field="new_password")
    user.password_hash = security.hash_password(body.new_password)
    n = accounts.revoke_all(db, user.id, keep=request.state.token_id)
    audit(db, "password_changed", request=request, actor=user, user=user,
          detail=f"{n} other sessions/tokens revoked")
    db.commit()
    return {"ok": True, "revoked": n}


@router.get("/me", summary="Who am I")
def me(user: User = Depends(current_user)) -> dict:
    return user_json(user)


@router.get("/users", summary="List users: all (admin), those of my projects (manager)")
def list_users(user: User = Depends(current_user), db: Session = Depends(get_db)) -> list[dict]:
    require_role(user, "admin", "manager")
    q = select(User).order_by(User.id)
    if user.role != "admin":
        mine = select(Member.project_id).where(Member.user_id == user.id)
        q = q.where(User.id.in_(select(Member.user_id).where(Member.project_id.in_(mine))))
    return [user_json(u) for u in db.scalars(q)]


@router.post("/users", status_code=201, summary="Create a user (admin)")
def create_user(body: NewUser, request: Request, user: User = Depends(current_user),
                db: Session = Depends(get_db)) -> dict:
    require_role(user, "admin")
    u = add_user(db, body.username, body.password, body.role)
    audit(db, "user_created", request=request, actor=user, user=u, detail=f"role {u.role}")
    db.commit()
    return user_json(u)


def add_user(db: Session, username: str, password: str, role: str) -> User:
    accounts.check_password(password, username=username)
    u = User(username=username, password_hash=security.hash_password(password), role=role)
    db.add(u)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise HTTPException(409, f"user name {username!r} is taken") from None
    return u


@router.patch("/users/{uid}", summary="Deactivate or reactivate a user (admin)")
def update_user(uid: int, body: UserUpdate, request: Request, user: User = Depends(current_user),
                db: Session = Depends(get_db)) -> dict:
    require_role(user, "admin")
    u = db.get(User, uid) if 0 < uid < 2**31 else None
    if u is None:
        raise HTTPException(404, f"no user {uid}")
    if u.id == user.id and not body.active:
        raise HTTPException(409, "active: you cannot deactivate yourself; ask another admin")
    n = 0
    if u.active != body.active:
        u.active = body.active
        n = 0 if body.active else accounts.revoke_all(db, u.id)
        audit(db, "user_activated" if body.active else "user_deactivated", request=request,
              actor=user, user=u, detail="" if body.active else f"{n} sessions/tokens revoked")
    db.commit()
    return user_json(u)


@router.post("/users/{uid}/password", summary="Reset a user's password (admin); their "
                                              "sessions and tokens are revoked")
def reset_password(uid: int, body: PasswordReset, request: Request,
                   user: User = Depends(current_user), db: Session = Depends(get_db)) -> dict:
    require_role(user, "admin")
    u = db.get(User, uid) if 0 < uid < 2**31 else None
    if u is None:
        raise HTTPException(404, f"no user {uid}")
    accounts.check_password(body.new_password, username=u.username, field="new_password")
    u.password_hash = security.hash_password(body.new_password)
    n = accounts.revoke_all(db, u.id, keep=request.state.token_id if u.id == user.id else None)
    audit(db, "password_reset", request=request, actor=user, user=u,
          detail=f"{n} sessions/tokens revoked")
    db.commit()
    return {"ok": True, "revoked": n}


@router.get("/audit", summary="Account audit events, newest first (admin)")
def list_audit(kind: str | None = Query(None, max_length=32),
               user_id: int | None = Query(None, ge=1, le=2**31 - 1),
               before_id: int | None = Query(None, ge=1, le=2**31 - 1),
               limit: int = Query(200, ge=1, le=1000), user: User = Depends(current_user),
               db: Session = Depends(get_db)) -> list[dict]:
    require_role(user, "admin")
    if kind is not None and kind not in AUDIT_KINDS:
        raise HTTPException(422, f"kind: one of {', '.join(AUDIT_KINDS)}")
    q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if kind:
        q = q.where(AuditEvent.kind == kind)
    if user_id:
        q = q.where(AuditEvent.user_id == user_id)
    if before_id:
        q = q.where(AuditEvent.id < before_id)
    rows = db.scalars(q).all()
    ids = {i for e in rows for i in (e.actor_id, e.user_id) if i}
    names = dict(db.execute(select(User.id, User.username).where(User.id.in_(ids))).all()) \
        if ids else {}
    return [{"id": e.id, "at": stamp(e.at), "kind": e.kind, "actor": names.get(e.actor_id),
             "actor_id": e.actor_id, "user_id": e.user_id, "username": e.username,
             "ip": e.ip, "detail": e.detail} for e in rows]
