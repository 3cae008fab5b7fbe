"""The Ray engine: one Ray task per item, on a local Ray started for the run or on a cluster.

Ray is imported here only, when ``--engine ray`` is chosen (``pip install 'segflow[scale]'``).
A local Ray is started with ``workers`` CPUs, no dashboard and a small object store, and shut
down at the end; with ``address`` the run joins a running cluster (``ray start --head`` on one
node, ``ray start --address HEAD:6379`` on the others) whose nodes have segflow installed.
A task takes a chunk of items (:func:`chunk_size`), at most a few tasks per CPU are in flight,
so a million-image run does not hold a million task handles, and results come back to the
caller in completion order.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from segflow._extras import require
from segflow.engines import Crashed, Done
from segflow.errors import SegflowError

#: Tasks in flight per CPU of the cluster: enough to hide the scheduling round trip.
INFLIGHT_PER_CPU = 4
#: Seconds to wait for a TCP connection to ``--ray-address`` before saying it is unreachable.
CONNECT_TIMEOUT_S = 5.0

_initialised: set = set()  # the init functions already run in this (worker) process


def _call(init, fn, chunk):
    """What a Ray task runs: the worker's one-time ``init``, then a chunk of items."""
    if init is not None and init not in _initialised:
        init()
        _initialised.add(init)
    return [fn(*args) for args in chunk]


def chunk_size(n: int, cpus: int) -> int:
    """Items per task: about 16 tasks per CPU (so the last ones still balance), at most 32
    items (a task's scheduling round trip is ~1 ms; an image takes tens of ms)."""
    return max(1, min(32, n // (16 * max(1, cpus))))


def parse_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT`` (None for ``auto``). Raises
    SegflowError naming the address when it is neither."""
    a = address.strip()
    if a == "auto":
        return None
    rest = a[len("ray://"):] if a.startswith("ray://") else a
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SegflowError(f"--ray-address {address!r}: give HOST:PORT, ray://HOST:PORT or auto")
    return host.strip("[]"), int(port)


def check_reachable(address: str) -> None:
    """One line, not a hang or a traceback, when nothing listens at ``address``."""
    hp = parse_address(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as e:
        raise SegflowError(f"--ray-address {address}: cannot reach a Ray cluster there "
                           f"({e.strerror or type(e).__name__}); start one with `ray start "
                           "--head` or drop --ray-address for a local Ray") from None


class RayEngine:
    name = "ray"

    def __init__(self, *, workers: int = 1, address: str | None = None):
        require("scale", modules=("ray",), what="--engine ray")
        self.workers = max(1, int(workers))
        self.address = address
        if address:
            check_reachable(address)

    def _start(self) -> bool:
        """Start or join Ray unless this process already did; True when we started it."""
        import ray

        if ray.is_initialized():
            return False
        kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                  logging_level="ERROR", configure_logging=True)
        try:
            if self.address:
                ray.init(address=self.address, **kw)
            else:
                ray.init(num_cpus=self.workers, object_store_memory=256 * 2**20, **kw)
        except (ConnectionError, RuntimeError, TimeoutError) as e:
            where = f"at {self.address}" if self.address else "locally"
            raise SegflowError(f"Ray could not start {where}: {' '.join(str(e).split())[:200]}"
                               ) from None
        return True

    def map(self, fn: Callable[..., Any], items: Sequence[tuple], done: Done, crashed: Crashed,
            *, init: Callable[[], None] | None = None) -> None:
        import ray

        started = self._start()
        try:
            task = ray.remote(num_cpus=1, max_retries=1)(_call)
            cpus = int(ray.cluster_resources().get("CPU", self.workers)) or 1
            limit = INFLIGHT_PER_CPU * cpus
            size = chunk_size(len(items), cpus)
            todo = [range(a, min(a + size, len(items))) for a in range(0, len(items), size)][::-1]
            pending: dict = {}
            while todo or pending:
                while todo and len(pending) < limit:
                    c = todo.pop()
                    pending[task.remote(init, fn, [items[i] for i in c])] = c
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    c = pending.pop(ref)
                    try:
                        rs = ray.get(ref)
                    except Exception as e:  # the task's worker died (killed for memory, a node lost)
                        rs = [crashed(i, e) for i in c]
                    for i, r in zip(c, rs):
                        done(i, r)
        finally:
            if started:
                ray.shutdown()
