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

The API is documented at /docs (OpenAPI). Images are stored under DATA/images by content hash.
"""


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
) -> None:
    """Serve the studio (FastAPI + SQLAlchemy; SQLite in WAL mode by default)."""
    if ctx.invoked_subcommand is not None:
        return
    application = _app(db, data, token_ttl_days=token_ttl_days,
                       rate_limit_storage=rate_limit_storage)
    import uvicorn

    if demo:
        from segflow.studio.services.demo import seed_demo

        with application.state.sessions() as s:
            info = seed_demo(s, application.state.store)
        if info.get("created"):
            console.print(f"demo project created; log in as {', '.join(info['users'])} with "
                          f"password {info['password']}")
    console.print(f"segflow studio on http://{host}:{port} (data in {data}; API docs at /docs)")
    uvicorn.run(application, host=host, port=port, log_level="warning")


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
