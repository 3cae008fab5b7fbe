"""Log in and out, API tokens, users."""

from __future__ import annotations

import secrets
from datetime import timedelta

from fastapi import APIRouter, Depends, HTTPException, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from segflow.studio import security
from segflow.studio.deps import current_user, get_db, require_role
from segflow.studio.schemas import Login, NewUser, TokenRequest
from segflow.studio.tables import AuthToken, User, now

router = APIRouter(prefix="/api", tags=["auth"])
SESSION_DAYS = 7


def user_json(u: User) -> dict:
    return {"id": u.id, "username": u.username, "role": u.role}


def _check(db: Session, body: Login) -> User:
    u = db.scalar(select(User).where(User.username == body.username))
    if u is None or not security.verify_password(u.password_hash, body.password):
        raise HTTPException(401, "wrong user name or password")
    return u


@router.post("/auth/login", summary="Log in (browser): sets the session and CSRF cookies")
def login(body: Login, response: Response, db: Session = Depends(get_db)) -> dict:
    u = _check(db, body)
    tok, h = security.new_token()
    csrf = secrets.token_urlsafe(24)
    db.add(AuthToken(user_id=u.id, token_hash=h, kind="session", csrf=csrf,
                     expires_at=now() + timedelta(days=SESSION_DAYS)))
    db.commit()
    age = SESSION_DAYS * 86400
    response.set_cookie(security.SESSION_COOKIE, tok, max_age=age, httponly=True,
                        samesite="strict", path="/")
    response.set_cookie(security.CSRF_COOKIE, csrf, max_age=age, httponly=False,
                        samesite="strict", path="/")
    return {"user": user_json(u), "csrf": csrf}


@router.post("/auth/logout", summary="End the browser session")
def logout(response: Response, user: User = Depends(current_user),
           db: Session = Depends(get_db)) -> dict:
    db.query(AuthToken).filter(AuthToken.user_id == user.id,
                               AuthToken.kind == "session").delete()
    db.commit()
    response.delete_cookie(security.SESSION_COOKIE, path="/")
    response.delete_cookie(security.CSRF_COOKIE, path="/")
    return {"ok": True}


@router.post("/auth/token", summary="Create a bearer token for API clients")
def api_token(body: TokenRequest, db: Session = Depends(get_db)) -> dict:
    u = _check(db, body)
    tok, h = security.new_token()
    db.add(AuthToken(user_id=u.id, token_hash=h, kind="api", name=body.name))
    db.commit()
    return {"token": tok, "user": user_json(u)}


@router.get("/me", summary="Who am I")
def me(user: User = Depends(current_user)) -> dict:
    return user_json(user)


@router.get("/users", summary="List users (admin, manager)")
def list_users(user: User = Depends(current_user), db: Session = Depends(get_db)) -> list[dict]:
    require_role(user, "admin", "manager")
    return [user_json(u) for u in db.scalars(select(User).order_by(User.id))]


@router.post("/users", status_code=201, summary="Create a user (admin)")
def create_user(body: NewUser, user: User = Depends(current_user),
                db: Session = Depends(get_db)) -> dict:
    require_role(user, "admin")
    return user_json(add_user(db, body.username, body.password, body.role))


def add_user(db: Session, username: str, password: str, role: str) -> User:
    if len(password) < security.MIN_PASSWORD:
        raise HTTPException(422, f"password: at least {security.MIN_PASSWORD} characters")
    u = User(username=username, password_hash=security.hash_password(password), role=role)
    db.add(u)
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise HTTPException(409, f"user name {username!r} is taken") from None
    return u
