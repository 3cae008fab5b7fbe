"""The studio's FastAPI application."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from segflow.studio import handlers
from segflow.studio.db import make_engine, migrate, session_factory
from segflow.studio.services.jobs import Jobs
from segflow.studio.services.storage import ImageStore

HERE = Path(__file__).resolve().parent


def default_db_url(data_dir: Path) -> str:
    return f"sqlite:///{(Path(data_dir) / 'studio.db').resolve()}"


def create_app(db_url: str | None = None, data_dir: str | Path = "studio-data", *,
               secure_cookies: bool = False) -> FastAPI:
    """Build the app: migrate the database to the newest schema, open the image store.

    ``secure_cookies`` marks every cookie Secure (the studio runs behind TLS). Requests that
    arrive over HTTPS get Secure cookies anyway, including those a trusted proxy forwards
    with ``X-Forwarded-Proto: https`` (uvicorn's ``--forwarded-allow-ips``)."""
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
    app.state.store = ImageStore(data_dir)
    app.state.secure_cookies = secure_cookies
    app.state.jobs = Jobs(data_dir)
    handlers.install(app)

    @app.middleware("http")
    async def _security_headers(request: Request, call_next):
        resp = await call_next(request)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        if resp.headers.get("content-type", "").startswith("text/html"):
            # Swagger UI's page starts itself with an inline script; its files are ours
            script = "'self' 'unsafe-inline'" if request.url.path == "/docs" else "'self'"
            resp.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' blob: data:; "
                                    f"style-src 'self' 'unsafe-inline'; script-src {script}")
        if app.state.secure_cookies or request.url.scheme == "https":
            raw = resp.headers.raw  # the response's own header list
            for k, (name, value) in enumerate(raw):
                if name == b"set-cookie" and b"; secure" not in value.lower():
                    raw[k] = (name, value + b"; Secure")
        return resp

    from segflow.studio.routes import auth, docs, jobs, pages, projects, tasks

    app.include_router(auth.router)
    app.include_router(projects.router)
    app.include_router(tasks.router)
    app.include_router(jobs.router)
    app.include_router(pages.router)
    docs.mount(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


def app_from_cli() -> FastAPI:
    """The app of one worker process of ``segflow studio --workers N`` (uvicorn's factory)."""
    import os

    return create_app(os.environ["SEGFLOW_STUDIO_DB"], os.environ["SEGFLOW_STUDIO_DATA"],
                      secure_cookies=bool(os.environ.get("SEGFLOW_STUDIO_SECURE_COOKIES")))
