"""Files shipped inside the package: the built-in pipelines and the example training configs.

They are package data (``segflow/resources/pipelines/*.yaml``, ``segflow/resources/configs/*.yaml``),
read with :mod:`importlib.resources`, so they work the same from a wheel, a zip or a checkout.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # importlib.resources.abc is Python 3.11+
    from importlib.resources.abc import Traversable

Kind = Literal["pipelines", "configs"]
KINDS: tuple[Kind, ...] = ("pipelines", "configs")


def _folder(kind: Kind) -> Traversable:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return files(__name__) / kind


def names(kind: Kind) -> list[str]:
    """The names (file stems) of the shipped files of one kind, sorted."""
    return sorted(f.name.rsplit(".", 1)[0] for f in _folder(kind).iterdir()
                  if f.name.endswith(".yaml"))


def find(kind: Kind, name: str) -> Traversable | None:
    """The shipped file ``name`` (without ``.yaml``) of one kind, or None."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    f = _folder(kind) / f"{name}.yaml"
    return f if f.is_file() else None


def read_text(kind: Kind, name: str) -> str:
    """The text of a shipped file; KeyError when there is none of that name."""
    f = find(kind, name)
    if f is None:
        raise KeyError(name)
    return f.read_text(encoding="utf-8")
