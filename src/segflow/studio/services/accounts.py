"""Accounts: the password policy, login rate limits, token revocation and the audit log.

Rate limits use the ``limits`` library (moving windows), in memory by default and in Redis
when the studio runs several worker processes (``redis://host:6379``): every worker then sees
the same counts. Only failed logins are counted, per user name and per client address; a
successful login clears its user's count. Passwords are judged by zxcvbn (Dropbox's strength
estimator), which knows common passwords, keyboard patterns, repeats and the user's own name.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from fastapi import HTTPException, Request
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from segflow.errors import SegflowError
from segflow.studio.tables import AuditEvent, AuthToken, User

MISSING = "studio accounts need limits and zxcvbn: pip install 'segflow[studio]'"
MIN_PASSWORD = 10
MIN_SCORE = 3  # zxcvbn 0-4; 3 = "safely unguessable" against an online attack with throttling


def password_problem(password: str, *, username: str = "") -> str | None:
    """Why ``password`` is refused, or None when it is good enough."""
    if len(password) < MIN_PASSWORD:
        return f"at least {MIN_PASSWORD} characters (got {len(password)})"
    if not password.strip():
        return "must not be only spaces"
    try:
        from zxcvbn import zxcvbn
    except ImportError:
        raise SegflowError(MISSING) from None
    r = zxcvbn(password[:100], user_inputs=[username] if username else [])
    if r["score"] < MIN_SCORE:
        fb = r["feedback"]
        why = fb.get("warning") or "too easy to guess"
        tip = " ".join(fb.get("suggestions") or [])
        return f"too weak ({why.rstrip('.')}){'. ' + tip if tip else ''}"
    return None


def check_password(password: str, *, username: str = "", field: str = "password") -> None:
    """422 with the reason when ``password`` fails the policy."""
    why = password_problem(password, username=username)
    if why:
        raise HTTPException(422, f"{field}: {why}")


# ---- login rate limits --------------------------------------------------------------------


@dataclass
class LoginLimits:
    """Failed-login limits, per user name and per client address."""

    per_user: str = "10/15 minutes"
    per_ip: str = "50/15 minutes"
    storage: str = "memory://"
    key_prefix: str = "segflow"

    def __post_init__(self):
        try:
            from limits import parse
            from limits.storage import storage_from_string
            from limits.strategies import MovingWindowRateLimiter
        except ImportError:
            raise SegflowError(MISSING) from None

        try:
            self._user, self._ip = parse(self.per_user), parse(self.per_ip)
        except ValueError as e:
            raise SegflowError(f"login limits: {e} (write e.g. '10/15 minutes')") from None
        kw = {"key_prefix": self.key_prefix} if self.storage.startswith("redis") else {}
        try:
            self._limiter = MovingWindowRateLimiter(storage_from_string(self.storage, **kw))
        except Exception as e:  # unknown scheme, redis package missing, ...
            raise SegflowError(f"--rate-limit-storage {self.storage}: {str(e).splitlines()[0]}"
                               " (use memory:// or redis://host:6379)") from None

    def _keys(self, username: str, ip: str):
        return ((self._user, ("login-user", username.lower())), (self._ip, ("login-ip", ip)))

    def retry_after(self, username: str, ip: str) -> int:
        """Seconds to wait before the next attempt may be made; 0 when allowed now."""
        wait = 0.0
        for item, key in self._keys(username, ip):
            if not self._limiter.test(item, *key):
                reset = self._limiter.get_window_stats(item, *key).reset_time
                wait = max(wait, reset - time.time(), 1)
        return math.ceil(wait)

    def failed(self, username: str, ip: str) -> None:
        for item, key in self._keys(username, ip):
            self._limiter.hit(item, *key)

    def succeeded(self, username: str) -> None:
        item, key = self._keys(username, "")[0]
        self._limiter.clear(item, *key)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


# ---- tokens and the audit log -------------------------------------------------------------


def audit(db: Session, kind: str, *, request: Request | None = None, actor: User | None = None,
          user: User | None = None, username: str = "", detail: str = "") -> None:
    """Add an audit event (committed by the caller)."""
    db.add(AuditEvent(kind=kind, actor_id=actor.id if actor else None,
                      user_id=user.id if user else None,
                      username=(username or (user.username if user else ""))[:64],
                      ip=client_ip(request)[:64] if request else "", detail=detail[:500]))


def revoke_all(db: Session, user_id: int, *, keep: int | None = None) -> int:
    """Delete every session and token of a user (but ``keep``); returns how many."""
    q = delete(AuthToken).where(AuthToken.user_id == user_id)
    if keep is not None:
        q = q.where(AuthToken.id != keep)
    return db.execute(q).rowcount or 0


def token_json(t: AuthToken) -> dict:
    from segflow.studio.deps import stamp

    return {"id": t.id, "kind": t.kind, "name": t.name, "user_id": t.user_id,
            "created_at": stamp(t.created_at), "expires_at": stamp(t.expires_at)}


def tokens_of(db: Session, user_id: int) -> list[AuthToken]:
    return list(db.scalars(select(AuthToken).where(AuthToken.user_id == user_id)
                           .order_by(AuthToken.id)))
