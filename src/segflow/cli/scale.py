"""Options shared by the batch commands (``run``, ``predict``, ``eval``): the engine that runs
the images (``--engine local|ray``, ``--ray-address``) and the paths that may be URLs."""

from __future__ import annotations

from pathlib import Path

import typer

ENGINE_HELP = "local (processes on this machine) or ray (a local Ray, or --ray-address)."
ADDRESS_HELP = "Ray cluster to join (HOST:PORT, ray://HOST:PORT or auto); with --engine ray."


def engine_option():
    return typer.Option("local", "--engine", help=ENGINE_HELP)


def address_option():
    return typer.Option(None, "--ray-address", help=ADDRESS_HELP)


def make_engine(name: str, workers: int = 1, address: str | None = None):
    """The engine ``--engine`` names; raises one line for a bad name or address."""
    from segflow.engines import get_engine

    return get_engine(name, workers=workers, address=address)


def split_urls(items: list[str]) -> tuple[list[str], list[Path]]:
    """``(URLs, local paths)`` of command-line inputs (``file://`` is a local path)."""
    from segflow.remote import is_url, local

    return [i for i in items if is_url(i)], [local(i) for i in items if not is_url(i)]
