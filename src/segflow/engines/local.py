"""The local engine: this process alone, or ``workers - 1`` worker processes plus this one."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

from segflow.engines import Crashed, Done


class LocalEngine:
    name = "local"

    def __init__(self, workers: int = 1):
        self.workers = max(1, int(workers))

    def map(self, fn: Callable[..., Any], items: Sequence[tuple], done: Done, crashed: Crashed,
            *, init: Callable[[], None] | None = None) -> None:
        workers = min(self.workers, len(items))
        if workers <= 1:
            for i, args in enumerate(items):
                done(i, fn(*args))
            return
        self._parallel(fn, items, done, crashed, workers, init)

    @staticmethod
    def _parallel(fn, items, done, crashed, workers, init) -> None:
        """``workers - 1`` processes plus this one, pulling items from one queue.

        This process works too, so items are processed while the pool starts (about half a
        second) and no core waits on a mostly idle parent.
        """
        import cv2

        ctx = mp.get_context("forkserver")  # no fork of a process that may hold OpenCV threads
        ctx.set_forkserver_preload([fn.__module__])
        todo = list(range(len(items)))[::-1]
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)  # this process is one of the workers now
        try:
            with ProcessPoolExecutor(workers - 1, mp_context=ctx, initializer=init) as pool:
                inflight: dict = {}
                while todo or inflight:
                    # Keep the pool's queue short, so this process can take the rest.
                    while todo and len(inflight) < 2 * (workers - 1):
                        i = todo.pop()
                        inflight[pool.submit(fn, *items[i])] = i
                    if todo:
                        i = todo.pop()
                        done(i, fn(*items[i]))
                        finished = [f for f in inflight if f.done()]
                    else:
                        finished = wait(inflight, return_when=FIRST_COMPLETED).done
                    for f in finished:
                        i = inflight.pop(f)
                        try:
                            r = f.result()
                        except Exception as e:  # the worker died (e.g. killed for memory)
                            r = crashed(i, e)
                        done(i, r)
        finally:
            cv2.setNumThreads(threads)
