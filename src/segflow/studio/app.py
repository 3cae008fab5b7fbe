"""The studio's FastAPI application."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

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


def default_db_url(data_dir: Path) -> str:
    return f"sqlite:///{(Path(data_dir) / 'studio.db').resolve()}"


def create_app(db_url: str | None = None, data_dir: str | Path = "studio-data", *,
               token_ttl_days: float = 30, rate_limit_storage: str = "memory://",
               login_limit_per_user: str = "10/15 minutes",
               login_limit_per_ip: str = "50/15 minutes", secure_cookies: bool = False,
               store: str | None = None, queue: str | None = None,
               queue_name: str = "segflow", job_lease_s: float = 60.0) -> FastAPI:
    """Build the app: migrate the database to the newest schema, open the image store.

    ``token_ttl_days``: lifetime of API bearer tokens. ``rate_limit_storage``: where failed
    logins are counted, ``memory://`` (one process) or ``redis://host:6379`` (shared by all
    worker processes); the limits are ``"N/period"`` strings of the ``limits`` library.
    ``secure_cookies`` marks every cookie Secure (the studio runs behind TLS). Requests that
    arrive over HTTPS get Secure cookies anyway, including those a trusted proxy forwards
    with ``X-Forwarded-Proto: https`` (uvicorn's ``--forwarded-allow-ips``).

    ``queue``: where background jobs go; None runs them on Huey's SQLite queue in the data
    folder with worker threads of this process, ``redis://host:6379/0`` sends them to
    ``segflow worker`` processes (``services.jobs``)."""
    from segflow.studio.services.accounts import LoginLimits

    if not (0 < token_ttl_days <= 3650):
        raise SegflowError(f"token TTL: {token_ttl_days} days; use a number of days from 1 to 3650")
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
                      queue_name=os.environ.get("SEGFLOW_STUDIO_QUEUE_NAME", "segflow"))
