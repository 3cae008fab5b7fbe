"""Batch engines: how a list of independent work items (one per image) is run.

Two engines share one small interface, :class:`Engine`:

* ``local`` -- this process, or ``workers`` processes on this machine (the default);
* ``ray``   -- Ray tasks, on a local Ray started for the run or on a cluster (``address``).

The library never imports Ray: the runners (``segflow.pipeline.runner``, the predict and eval
loops) take an engine object, and the CLI picks it with ``--engine``. A work item is a top-level
function and its arguments (so that it pickles by reference); its result comes back to
``done(i, result)`` in this process, in completion order, so the caller keeps results by index
and the outputs do not depend on the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from segflow.errors import SegflowError

#: The engines ``--engine`` takes.
ENGINES = ("local", "ray")

#: ``done(i, result)``: called in this process as item ``i`` finishes.
Done = Callable[[int, Any], None]
#: ``crashed(i, exc)``: the result to report for item ``i`` when its worker died.
Crashed = Callable[[int, BaseException], Any]


class Engine(Protocol):
    name: str
    workers: int

    def map(self, fn: Callable[..., Any], items: Sequence[tuple], done: Done,
            crashed: Crashed, *, init: Callable[[], None] | None = None) -> None:
        """Call ``fn(*items[i])`` for every ``i`` and hand each result to ``done``.

        ``init`` runs once in each worker process before its first item (never in this
        process). An item whose worker died is reported through ``crashed``."""


def get_engine(name: str = "local", *, workers: int = 1, address: str | None = None) -> Engine:
    """The engine called ``name`` (one of :data:`ENGINES`).

    ``workers``: processes on this machine (local) or CPUs of the local Ray started for the run
    (ray; ignored with ``address``). ``address``: a Ray cluster to join (``HOST:PORT``,
    ``ray://HOST:PORT`` or ``auto``); ray only.
    """
    if name not in ENGINES:
        raise SegflowError(f"--engine must be one of {', '.join(ENGINES)}, got {name!r}")
    if name == "local":
        if address:
            raise SegflowError("--ray-address goes with --engine ray")
        from segflow.engines.local import LocalEngine

        return LocalEngine(workers)
    from segflow.engines.ray import RayEngine

    return RayEngine(workers=workers, address=address)
