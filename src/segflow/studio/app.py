"""The studio's FastAPI application."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from segflow.errors import SegflowError
from segflow.studio import handlers
from segflow.studio.db import make_engine, migrate, session_factory
from segflow.studio.services.jobs import Jobs
from segflow.studio.services.storage import ImageStore

HERE = Path(__file__).resolve().parent


CSP = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
       "script-src 'self'")
CSP_DOCS = CSP + " 'unsafe-inline'"  # Swagger UI's page starts itself with an inline script


class SecurityHeaders:
    """nosniff, no framing, a CSP on HTML pages, and Secure cookies when configured or when the
    request came over HTTPS. A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs an
    extra task and a body copy on every request."""

    def __init__(self, app, *, secure_cookies: bool = False):
        self.app, self.secure_cookies = app, secure_cookies

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        secure = self.secure_cookies or scope.get("scheme") == "https"

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.startswith(b"text/html"):
                    csp = CSP_DOCS if scope["path"] == "/docs" else CSP
                    extra.append((b"content-security-policy", csp.encode()))
                headers += [(k, v) for k, v in extra if k not in names]
                if secure:
                    headers = [(k, v + b"; Secure") if k.lower() == b"set-cookie"
                               and b"; secure" not in v.lower() else (k, v) for k, v in headers]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


MiB = 1 << 20
#: default caps on a request body: uploads (multipart forms of images) and everything else
#: (JSON: labels as runs, settings)
MAX_UPLOAD_MB = 2048
MAX_BODY_MB = 128
#: the one route that takes files (POST /api/projects/{pid}/images); a form sent anywhere else
#: has the JSON cap
UPLOAD_PATH = re.compile(r"/api/projects/[^/]+/images")


class BodyLimit:
    """413 for a request body over the cap: at once when Content-Length says so (nothing is
    read), else when the bytes received pass it (chunked uploads). Image uploads (a multipart
    form sent to the upload route) have their own, larger cap. Nothing is stored from a
    refused request: routes read their whole body before they write."""

    def __init__(self, app, *, max_upload: int, max_body: int):
        self.app, self.max_upload, self.max_body = app, max_upload, max_body

    @staticmethod
    def _detail(size: int | None, cap: int, upload: bool) -> str:
        what = "upload" if upload else "request body"
        opt = "--max-upload-mb" if upload else "--max-body-mb"
        got = f" of {size / MiB:.1f} MiB" if size is not None else ""
        return (f"the {what}{got} is over the studio's limit of {cap / MiB:g} MiB; send less at "
                f"a time (or start the studio with a larger {opt})")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        upload = (headers.get(b"content-type", b"").lower().startswith(b"multipart/")
                  and UPLOAD_PATH.fullmatch(scope.get("path", "")) is not None)
        cap = self.max_upload if upload else self.max_body
        length = headers.get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                n = -1
            if n < 0:
                return await JSONResponse({"detail": "Content-Length: not a byte count"},
                                          400)(scope, receive, send)
            if n > cap:
                return await JSONResponse({"detail": self._detail(n, cap, upload)},
                                          413, headers={"Connection": "close"})(scope, receive,
                                                                                send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cap:  # FastAPI passes an HTTPException from the body read on
                    raise HTTPException(413, self._detail(None, cap, upload))
            return message

        await self.app(scope, counted, send)


def default_db_url(data_dir: Path) -> str:
    return f"sqlite:///{(Path(data_dir) / 'studio.db').resolve()}"


def create_app(db_url: str | None = None, data_dir: str | Path = "studio-data", *,
               token_ttl_days: float = 30, rate_limit_storage: str = "memory://",
               login_limit_per_user: str = "10/15 minutes",
               login_limit_per_ip: str = "50/15 minutes", secure_cookies: bool = False,
               store: str | None = None, queue: str | None = None,
               queue_name: str = "segflow", job_lease_s: float = 60.0,
               max_upload_mb: float = MAX_UPLOAD_MB, max_body_mb: float = MAX_BODY_MB) -> FastAPI:
    """Build the app: migrate the database to the newest schema, open the image store.

    ``token_ttl_days``: lifetime of API bearer tokens. ``rate_limit_storage``: where failed
    logins are counted, ``memory://`` (one process) or ``redis://host:6379`` (shared by all
    worker processes); the limits are ``"N/period"`` strings of the ``limits`` library.
    ``secure_cookies`` marks every cookie Secure (the studio runs behind TLS). Requests that
    arrive over HTTPS get Secure cookies anyway, including those a trusted proxy forwards
    with ``X-Forwarded-Proto: https`` (uvicorn's ``--forwarded-allow-ips``).

    ``max_upload_mb`` caps an image upload (a multipart request to the upload route),
    ``max_body_mb`` any other request body: larger ones get 413 with the limit and the option that raises it.

    ``queue``: where background jobs go; None runs them on Huey's SQLite queue in the data
    folder with worker threads of this process, ``redis://host:6379/0`` sends them to
    ``segflow worker`` processes (``services.jobs``)."""
    from segflow.studio.services.accounts import LoginLimits

    if not (0 < token_ttl_days <= 3650):
        raise SegflowError(f"token TTL: {token_ttl_days} days; use a number of days from 1 to 3650")
    for opt, v in (("--max-upload-mb", max_upload_mb), ("--max-body-mb", max_body_mb)):
        if not (isinstance(v, (int, float)) and 0 < v <= 1 << 20):  # NaN fails both
            raise SegflowError(f"{opt}: {v}; give a positive size in MiB, at most 1048576")
    limits = LoginLimits(login_limit_per_user, login_limit_per_ip, rate_limit_storage)
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(db_url or default_db_url(data_dir))
    migrate(engine)
    app = FastAPI(title="segflow studio", version="0.1.0",
                  description="Annotation and review of segmentation datasets. Every action of "
                              "the web UI is a call of this API. Browser sessions use cookies "
                              "plus an X-CSRF-Token header; API clients use bearer tokens from "
                              "POST /api/auth/token.",
                  docs_url=None, redoc_url=None)  # /docs is served below, without a CDN
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.data_dir = data_dir
    app.state.store = ImageStore(data_dir, store)  # store: an object-store URL (--store)
    app.state.token_ttl_days = token_ttl_days
    app.state.login_limits = limits
    app.state.secure_cookies = secure_cookies
    app.state.jobs = Jobs(data_dir, app.state.sessions, queue=queue, name=queue_name,
                          lease_s=job_lease_s, store=app.state.store)
    handlers.install(app)

    app.add_middleware(BodyLimit, max_upload=int(max_upload_mb * MiB),
                       max_body=int(max_body_mb * MiB))
    app.add_middleware(SecurityHeaders, secure_cookies=secure_cookies)

    from segflow.studio.routes import (
        auth,
        docs,
        jobs,
        pages,
        projects,
        quality,
        rasters,
        tasks,
        training,
        volumes,
    )

    app.include_router(auth.router)
    app.include_router(projects.router)
    app.include_router(tasks.router)
    app.include_router(quality.router)
    app.include_router(jobs.router)
    app.include_router(training.router)
    app.include_router(volumes.router)
    app.include_router(rasters.router)
    app.include_router(pages.router)
    docs.mount(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


def app_from_cli() -> FastAPI:
    """The app of one worker process of ``segflow studio --workers N`` (uvicorn's factory)."""
    import os

    return create_app(os.environ["SEGFLOW_STUDIO_DB"], os.environ["SEGFLOW_STUDIO_DATA"],
                      secure_cookies=bool(os.environ.get("SEGFLOW_STUDIO_SECURE_COOKIES")),
                      token_ttl_days=float(os.environ.get("SEGFLOW_STUDIO_TOKEN_TTL_DAYS", "30")),
                      rate_limit_storage=os.environ.get("SEGFLOW_STUDIO_RATE_LIMIT_STORAGE",
                                                        "memory://"),
                      store=os.environ.get("SEGFLOW_STUDIO_STORE") or None,
                      queue=os.environ.get("SEGFLOW_STUDIO_QUEUE") or None,
                      queue_name=os.environ.get("SEGFLOW_STUDIO_QUEUE_NAME", "segflow"),
                      max_upload_mb=float(os.environ.get("SEGFLOW_STUDIO_MAX_UPLOAD_MB",
                                                         MAX_UPLOAD_MB)),
                      max_body_mb=float(os.environ.get("SEGFLOW_STUDIO_MAX_BODY_MB", MAX_BODY_MB)))
