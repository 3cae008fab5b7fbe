"""``segflow examples``: the built-in pipelines and example training configs, as files."""

from __future__ import annotations

from pathlib import Path

import typer

from segflow import resources
from segflow.cli._common import console, emit_json
from segflow.errors import SegflowError

EPILOG = """
**Examples**

    segflow examples                      # list what is shipped

    segflow examples copy .               # into ./pipelines/ and ./configs/

    segflow examples copy my/ --only cells --only street_unet

    segflow examples show objects         # print one file

Existing files are kept unless `--force` is given.
"""

app = typer.Typer(help="The built-in pipelines and example training configs, as files.",
                  rich_markup_mode="markdown", no_args_is_help=False)


@app.callback(invoke_without_command=True, epilog=EPILOG)
def list_examples(
    ctx: typer.Context,
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """List the shipped pipelines and training configs."""
    if ctx.invoked_subcommand is not None:
        return
    found = {k: resources.names(k) for k in resources.KINDS}
    if json_out:
        emit_json(found)
        return
    for kind, names in found.items():
        console.print(f"{kind}: {', '.join(names)}", highlight=False)


def _lookup(name: str) -> tuple[str, str]:
    for kind in resources.KINDS:
        if resources.find(kind, name) is not None:
            return kind, resources.read_text(kind, name)
    allowed = ", ".join(n for k in resources.KINDS for n in resources.names(k))
    raise SegflowError(f"no example named {name!r}; use one of {allowed}")


@app.command("show", epilog="**Examples**\n\n    segflow examples show cells\n\n"
                             "    segflow examples show street_unet > my_config.yaml")
def show(name: str = typer.Argument(..., help="A pipeline or config name.")) -> None:
    """Print one shipped file on stdout."""
    import sys

    sys.stdout.write(_lookup(name)[1])


@app.command("copy", epilog="**Examples**\n\n    segflow examples copy .\n\n"
                             "    segflow examples copy my/ --only cells --force")
def copy(
    dest: Path = typer.Argument(..., help="Folder; files go to DEST/pipelines/ and DEST/configs/."),
    only: list[str] = typer.Option(None, "--only", help="Copy only these names (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that exist."),
) -> None:
    """Write the shipped pipelines and configs into a folder, to read and edit."""
    from segflow.atomic import atomic_write_text

    wanted = [(_lookup(n)[0], n) for n in only] if only else \
        [(k, n) for k in resources.KINDS for n in resources.names(k)]
    written, kept = [], []
    for kind, name in wanted:
        path = dest / kind / f"{name}.yaml"
        if path.exists() and not force:
            kept.append(str(path))
            continue
        atomic_write_text(path, resources.read_text(kind, name))
        written.append(str(path))
    console.print(f"{len(written)} file(s) written under {dest}"
                  + (f"; {len(kept)} kept (exist already; --force to overwrite)" if kept else ""),
                  highlight=False, soft_wrap=True)
