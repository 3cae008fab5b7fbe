"""The studio's FastAPI application."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from segflow.errors import SegflowError
from segflow.studio.db import make_engine, migrate, session_factory
from segflow.studio.services.storage import ImageStore

HERE = Path(__file__).resolve().parent


def default_db_url(data_dir: Path) -> str:
    return f"sqlite:///{(Path(data_dir) / 'studio.db').resolve()}"


def create_app(db_url: str | None = None, data_dir: str | Path = "studio-data", *,
               token_ttl_days: float = 30, rate_limit_storage: str = "memory://",
               login_limit_per_user: str = "10/15 minutes",
               login_limit_per_ip: str = "50/15 minutes") -> FastAPI:
    """Build the app: migrate the database to the newest schema, open the image store.

    ``token_ttl_days``: lifetime of API bearer tokens. ``rate_limit_storage``: where failed
    logins are counted, ``memory://`` (one process) or ``redis://host:6379`` (shared by all
    worker processes); the limits are ``"N/period"`` strings of the ``limits`` library."""
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
                              "POST /api/auth/token.")
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.data_dir = data_dir
    app.state.store = ImageStore(data_dir)
    app.state.token_ttl_days = token_ttl_days
    app.state.login_limits = limits

    @app.exception_handler(SegflowError)
    async def _user_error(_: Request, exc: SegflowError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError):
        e = exc.errors()[0]
        where = ".".join(str(x) for x in e["loc"] if x != "body")
        return JSONResponse({"detail": f"{where}: {e['msg']}", "errors": exc.errors()},
                            status_code=422)

    @app.middleware("http")
    async def _security_headers(request: Request, call_next):
        resp = await call_next(request)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        # FastAPI's /docs and /redoc pages load Swagger UI / ReDoc from a CDN: no CSP there
        if resp.headers.get("content-type", "").startswith("text/html") and \
                not request.url.path.startswith(("/docs", "/redoc")):
            resp.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' blob: data:; "
                                    "style-src 'self' 'unsafe-inline'; script-src 'self'")
        return resp

    from segflow.studio.routes import auth, pages, projects, tasks

    app.include_router(auth.router)
    app.include_router(projects.router)
    app.include_router(tasks.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app
