"""HTML reports: one self-contained folder with the page and the pictures it shows."""

from __future__ import annotations

import os
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from segflow.atomic import atomic_write_text

_env = Environment(loader=PackageLoader("segflow", "templates"),
                   autoescape=select_autoescape(["html"]))


def relpath(path: str | os.PathLike, start: str | os.PathLike) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


def write_report(path: str | os.PathLike, template: str, **context) -> Path:
    """Render ``templates/<template>`` with ``context`` to ``path`` (atomically)."""
    html = _env.get_template(template).render(**context)
    return atomic_write_text(path, html)
