"""How the studio answers when a request cannot be served: always JSON with a one-line
``detail`` a person can act on, never a bare 500 or a traceback.

* ``SegflowError`` (a user mistake found by the library): 400.
* Request validation: 422 naming the field. The handler copies only the error's type, place
  and message: the offending input may be bytes (a text/plain or form body) or NaN, which JSON
  cannot carry, and the handler itself must never fail.
* The data folder cannot be written (read-only, no permission, disk full): 503 or 507 naming
  the folder and what to do; the database unreachable or busy: 503 with Retry-After.
* Anything else: 500 with a short reason (the traceback goes to the server log only).
"""

from __future__ import annotations

import errno
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from segflow.errors import SegflowError

log = logging.getLogger("segflow.studio")
NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}
FULL = {errno.ENOSPC, errno.EDQUOT}


def validation_detail(errors: list) -> tuple[str, list[dict]]:
    """The first error as ``field: message`` and every error reduced to JSON-safe parts."""
    safe = []
    for e in errors:
        try:
            loc = [x if isinstance(x, (int, str)) else str(x) for x in e.get("loc", ())]
            safe.append({"type": str(e.get("type", "")), "loc": loc, "msg": str(e.get("msg", ""))})
        except Exception:  # an error object we do not understand: keep the rest
            continue
    if not safe:
        return "the request is not valid", []
    first = safe[0]
    where = ".".join(str(x) for x in first["loc"] if x != "body") or "body"
    if first["type"] == "json_invalid":
        where = "body"
    msg = first["msg"]
    if first["loc"][:1] == ["body"] and first["type"] in ("model_attributes_type", "dict_type",
                                                       "json_invalid", "missing"):
        msg += " (send a JSON object with Content-Type: application/json)"
    return f"{where}: {msg}", safe


def storage_error(exc: OSError) -> tuple[int, str] | None:
    """A status and a message for the OS refusing a write, or None for other OS errors."""
    where = exc.filename or "the data folder"
    if exc.errno in NOT_WRITABLE:
        return 503, (f"the server cannot write to {where} ({exc.strerror}); make the studio's "
                     "data folder writable by the user running it, then retry")
    if exc.errno in FULL:
        return 507, (f"the disk holding {where} is full; free space (or move the data folder "
                     "to a larger disk), then retry")
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(SegflowError)
    async def _user_error(_: Request, exc: SegflowError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        try:
            detail, errors = validation_detail(exc.errors())
        except Exception:
            detail, errors = "the request is not valid", []
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError):
        known = storage_error(exc)
        if known is None:
            return await _unexpected(request, exc)
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": known[1]}, status_code=known[0])

    from sqlalchemy.exc import OperationalError

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError):
        log.error("%s %s: %s", request.method, request.url.path, str(exc).splitlines()[0])
        return JSONResponse({"detail": "the database is not reachable or busy; retry in a moment "
                                       "(the server log has the details)"}, status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); the server log "
                                       "has the details. Please report it."}, status_code=500)
