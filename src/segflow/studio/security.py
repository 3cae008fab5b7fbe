"""Passwords (argon2id via argon2-cffi), session and API tokens, CSRF secrets.

Tokens are random (``secrets``); the database keeps only their SHA-256, so a leaked database
does not leak live sessions. Browser sessions carry a CSRF secret: a state-changing request
authenticated by the session cookie must echo it in the ``X-CSRF-Token`` header (the page
reads it from the ``segflow_csrf`` cookie: the double-submit pattern). API clients send
``Authorization: Bearer <token>`` and need no CSRF token (a browser never adds that header
on its own).
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
SESSION_COOKIE = "segflow_session"
CSRF_COOKIE = "segflow_csrf"
CSRF_HEADER = "x-csrf-token"
MIN_PASSWORD = 10  # the policy itself (length and zxcvbn strength): services/accounts.py
_dummy: str | None = None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def dummy_hash() -> str:
    """An argon2 hash with the same parameters as real ones, to verify against when the user
    does not exist: a login then takes as long for unknown names as for known ones."""
    global _dummy
    if _dummy is None:
        _dummy = _hasher.hash(secrets.token_urlsafe(16))
    return _dummy


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def new_token() -> tuple[str, str]:
    """A fresh token and the hash to store."""
    tok = secrets.token_urlsafe(32)
    return tok, token_hash(tok)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return secrets.compare_digest(a.encode(), b.encode())
