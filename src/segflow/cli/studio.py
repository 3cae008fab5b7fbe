"""``segflow studio``: the annotation and review web app."""

from __future__ import annotations

from pathlib import Path

import typer

from segflow._extras import require
from segflow.cli._common import console

app = typer.Typer(help="The annotation and review web app (segflow studio).",
                  rich_markup_mode="markdown")

DB_HELP = "Database URL: sqlite:///file.db (default: studio.db in --data) or postgresql://user@host/db."
EPILOG = """
**Examples**

    segflow studio --demo                       # http://127.0.0.1:8000, demo project and users

    segflow studio create-admin --username alice

    segflow studio --data /srv/studio --db postgresql://studio@127.0.0.1/studio --port 8080

    segflow studio --token-ttl-days 7 --rate-limit-storage redis://127.0.0.1:6379
    segflow studio --db postgresql://studio@127.0.0.1/studio --workers 4 --secure-cookies

    segflow studio --queue redis://127.0.0.1:6379/0     # jobs go to `segflow worker` processes
    segflow worker --queue redis://127.0.0.1:6379/0 --data studio-data

The API is documented at /docs (OpenAPI). Images are stored under DATA/images by content hash.
"""


QUEUE_HELP = ("Where background jobs (training, pre-labels, exports) run: left out, on an "
              "embedded SQLite queue in --data with worker threads of this process; "
              "redis://HOST:6379/0, in `segflow worker` processes.")
QUEUE_NAME_HELP = "The queue's name (studios sharing one Redis database need different names)."


def _app(db: str | None, data: Path, **kw):
    require("studio", what="segflow studio")
    from segflow.studio.app import create_app

    return create_app(db, data, **kw)


@app.callback(invoke_without_command=True, epilog=EPILOG)
def serve(
    ctx: typer.Context,
    db: str = typer.Option(None, "--db", help=DB_HELP),
    data: Path = typer.Option(Path("studio-data"), "--data", help="Folder for images, exports "
                                                               "and the SQLite database."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port."),
    demo: bool = typer.Option(False, "--demo", help="Create the demo project and users first."),
    token_ttl_days: float = typer.Option(30, "--token-ttl-days", help="Lifetime of API bearer "
                                         "tokens, in days."),
    rate_limit_storage: str = typer.Option("memory://", "--rate-limit-storage", help="Where failed "
                                           "logins are counted: memory:// (one process) or "
                                           "redis://host:6379 (shared by several workers)."),
    workers: int = typer.Option(1, "--workers", min=1, max=64,
                                help="Server processes (PostgreSQL only; SQLite serves one)."),
    secure_cookies: bool = typer.Option(False, "--secure-cookies",
                                        help="Mark cookies Secure: the studio is behind TLS. "
                                             "Automatic for requests a trusted proxy forwards "
                                             "with X-Forwarded-Proto: https."),
    store: str = typer.Option(None, "--store", help="Object store for the images (s3://bucket/"
                              "prefix; credentials from the usual environment), shared by "
                              "workers on several machines; --data is then a local cache."),
    forwarded_allow_ips: str = typer.Option("127.0.0.1", "--forwarded-allow-ips",
                                            help="Proxies trusted for X-Forwarded-Proto/-For "
                                                 "(comma-separated IPs)."),
    queue: str = typer.Option(None, "--queue", help=QUEUE_HELP),
    queue_name: str = typer.Option("segflow", "--queue-name", help=QUEUE_NAME_HELP),
    max_upload_mb: float = typer.Option(2048, "--max-upload-mb",
                                        help="Largest image upload (one multipart request), "
                                             "MiB; larger ones get 413."),
    max_body_mb: float = typer.Option(128, "--max-body-mb",
                                      help="Largest other request body (JSON labels), MiB."),
) -> None:
    """Serve the studio (FastAPI + SQLAlchemy; SQLite in WAL mode by default)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from segflow.errors import SegflowError
    from segflow.studio.db import normalize_url

    if workers > 1 and (db is None or normalize_url(db).startswith("sqlite")):
        raise SegflowError("--workers: SQLite serves one process (one writer at a time); use "
                           "--db postgresql://... for several workers")
    if workers > 1 and rate_limit_storage.startswith("memory"):
        console.print("note: with --rate-limit-storage memory:// each worker counts failed logins "
                      "on its own; give redis://... to share the count")
    application = _app(db, data, secure_cookies=secure_cookies, token_ttl_days=token_ttl_days,
                       rate_limit_storage=rate_limit_storage, store=store, queue=queue,
                       queue_name=queue_name, max_upload_mb=max_upload_mb,
                       max_body_mb=max_body_mb)  # migrates once, before any worker

    if demo:
        from segflow.studio.services.demo import seed_demo

        with application.state.sessions() as s:
            info = seed_demo(s, application.state.store)
        if info.get("created"):
            console.print(f"demo project created; log in as {', '.join(info['users'])} with "
                          f"password {info['password']}")
    console.print(f"segflow studio on http://{host}:{port} (data in {data}; API docs at /docs"
                  f"{f'; {workers} worker processes' if workers > 1 else ''})")
    # keep-alive longer than people think between saves (and than a proxy's idle timeout):
    # with uvicorn's 5 s, a save sent as the server closes the idle connection is reset
    opts = dict(host=host, port=port, log_level="warning", proxy_headers=True,
                forwarded_allow_ips=forwarded_allow_ips, timeout_keep_alive=75)
    if workers == 1:
        uvicorn.run(application, **opts)
        return
    application.state.engine.dispose()
    # each worker process builds its own app from these (the only way to hand uvicorn's
    # workers arguments); they are set here, never read as user configuration
    import os

    os.environ.update(SEGFLOW_STUDIO_DB=db, SEGFLOW_STUDIO_DATA=str(data),
                      SEGFLOW_STUDIO_SECURE_COOKIES="1" if secure_cookies else "",
                      SEGFLOW_STUDIO_TOKEN_TTL_DAYS=str(token_ttl_days),
                      SEGFLOW_STUDIO_RATE_LIMIT_STORAGE=rate_limit_storage,
                      SEGFLOW_STUDIO_STORE=store or "",
                      SEGFLOW_STUDIO_QUEUE=queue or "", SEGFLOW_STUDIO_QUEUE_NAME=queue_name,
                      SEGFLOW_STUDIO_MAX_UPLOAD_MB=str(max_upload_mb),
                      SEGFLOW_STUDIO_MAX_BODY_MB=str(max_body_mb))
    uvicorn.run("segflow.studio.app:app_from_cli", factory=True, workers=workers, **opts)


@app.command("create-admin")
def create_admin(
    username: str = typer.Option(..., "--username", help="The admin's user name."),
    password: str = typer.Option(..., "--password", prompt=True, hide_input=True,
                                 confirmation_prompt=True,
                                 help="At least 10 characters, not easy to guess."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    data: Path = typer.Option(Path("studio-data"), "--data", help="The studio's data folder."),
) -> None:
    """Create an admin user (the first one, or another)."""
    require("studio", what="segflow studio create-admin")
    from sqlalchemy import select

    from segflow.errors import SegflowError
    from segflow.studio import security
    from segflow.studio.services.accounts import password_problem
    from segflow.studio.tables import User

    why = password_problem(password, username=username)
    if why:
        raise SegflowError(f"--password: {why}")
    application = _app(db, data)
    with application.state.sessions() as s:
        if s.scalar(select(User).where(User.username == username)):
            raise SegflowError(f"--username: {username!r} exists already; pick another name")
        s.add(User(username=username, password_hash=security.hash_password(password),
                   role="admin"))
        s.commit()
    console.print(f"admin {username} created")


def worker_command(
    queue: str = typer.Option(..., "--queue", help="The studio's queue: redis://HOST:6379/0."),
    data: Path = typer.Option(Path("studio-data"), "--data", help="The studio's data folder "
                              "(shared with the studio: images, models, job logs)."),
    db: str = typer.Option(None, "--db", help=DB_HELP),
    workers: int = typer.Option(1, "--workers", min=1, max=64,
                                help="Jobs run at once by this process (threads)."),
    queue_name: str = typer.Option("segflow", "--queue-name", help=QUEUE_NAME_HELP),
    lease: float = typer.Option(60.0, "--lease", min=1, max=3600,
                                help="Seconds a running job may go without a heartbeat before "
                                     "it is retried or failed."),
    store: str = typer.Option(None, "--store", help="The studio's object store, as given to "
                              "segflow studio --store (s3://bucket/prefix, ...)."),
) -> None:
    """Run the studio's background jobs (training, pre-labels, imports, exports) from a Redis
    queue: start one or more next to `segflow studio --queue redis://...`, on this machine or
    others that see the same data folder and database."""
    require("studio", what="segflow worker")
    from segflow.errors import SegflowError
    from segflow.studio.app import default_db_url
    from segflow.studio.db import make_engine, migrate, session_factory
    from segflow.studio.services.jobs import Jobs

    if not queue.startswith(("redis://", "rediss://", "unix://")):
        raise SegflowError(f"--queue {queue}: a worker reads a Redis queue (redis://HOST:6379/0);"
                           " the embedded queue's workers run inside segflow studio")
    if not (data / "studio.db").exists() and db is None:
        raise SegflowError(f"--data {data}: no studio here (no studio.db); give the studio's "
                           "data folder, or --db for a PostgreSQL studio")
    engine = make_engine(db or default_db_url(data))
    migrate(engine)
    jobs = Jobs(data, session_factory(engine), queue=queue, name=queue_name, consume=False,
                workers=workers, lease_s=lease, store=store)
    try:
        jobs.huey.storage.conn.ping()
    except Exception as e:
        raise SegflowError(f"--queue {queue}: {str(e).splitlines()[0]}") from None
    console.print(f"segflow worker {jobs.worker_name}: {workers} thread(s) on {queue}")
    jobs.run_forever()
