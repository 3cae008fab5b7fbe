"""Work that outlives its request: pre-labelling, imports and exports run in a thread pool, with
progress a client polls (``GET /api/jobs/{id}``).

The interface is two calls, ``submit`` and ``status`` (plus ``wait`` for a request that would
rather answer at once when the work is quick), so a real task queue can replace the pool
later without touching the routes. A job's state is a small JSON file under
``DATA/jobs/``, so every server worker process answers for every job; the work itself runs
in the process that accepted it. A job still running when its process stops is reported as
lost by the others, never as running forever.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from segflow.errors import SegflowError

log = logging.getLogger("segflow.studio.jobs")
Progress = Callable[[int, int], None]
FINISHED = ("done", "failed")


class Jobs:
    def __init__(self, root: Path, *, workers: int = 2):
        self.root = Path(root) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segflow-job")
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()
        week = time.time() - 7 * 86400
        for f in self.root.glob("*.json"):  # finished jobs are kept a week
            try:
                if f.stat().st_mtime < week:
                    f.unlink()
            except OSError:
                pass

    # ---- the interface ---------------------------------------------------------------------

    def submit(self, kind: str, fn: Callable[[Progress], dict], *, project_id: int | None,
               user_id: int | None) -> dict:
        """Run ``fn(progress)`` in the pool; ``fn`` returns the job's result (a JSON dict) and
        calls ``progress(done, total)`` as it goes. Returns the job's status."""
        jid = uuid.uuid4().hex
        st = {"id": jid, "kind": kind, "project_id": project_id, "user_id": user_id,
              "state": "queued", "done": 0, "total": 0, "result": None, "error": None,
              "code": None, "pid": os.getpid(), "created": time.time(), "finished": None}
        self._write(st)
        with self._lock:
            self._futures[jid] = self._pool.submit(self._run, st, fn)
        return self.public(st)

    def status(self, jid: str) -> dict | None:
        """The job's status, or None for an unknown id."""
        if not (len(jid) == 32 and all(c in "0123456789abcdef" for c in jid)):
            return None
        try:
            st = json.loads((self.root / f"{jid}.json").read_text())
        except (OSError, ValueError):
            return None
        if st["state"] not in FINISHED and st["pid"] != os.getpid() and not _alive(st["pid"]):
            st.update(state="failed", error="the server process running this job stopped; "
                                            "start it again")
        return self.public(st)

    def wait(self, jid: str, seconds: float) -> dict | None:
        """The status once the job finished or ``seconds`` passed, whichever comes first."""
        with self._lock:
            fut = self._futures.get(jid)
        if fut is not None and seconds > 0:
            try:
                fut.result(timeout=seconds)
            except Exception:  # the job's own failure is in its status
                pass
        if fut is not None and fut.done():
            with self._lock:
                self._futures.pop(jid, None)
        return self.status(jid)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ---- internals -------------------------------------------------------------------------

    @staticmethod
    def public(st: dict) -> dict:
        return {k: st.get(k) for k in ("id", "kind", "project_id", "user_id", "state", "done",
                                       "total", "result", "error", "code")} | \
            {"url": f"/api/jobs/{st['id']}"}

    def _write(self, st: dict) -> None:
        tmp = self.root / f".{st['id']}.{threading.get_ident()}.tmp"
        tmp.write_text(json.dumps(st))
        os.replace(tmp, self.root / f"{st['id']}.json")

    def _run(self, st: dict, fn: Callable[[Progress], dict]) -> None:
        last = [0.0]

        def progress(done: int, total: int) -> None:
            st["done"], st["total"] = int(done), int(total)
            if time.monotonic() - last[0] > 0.5:  # a file write per half second at most
                last[0] = time.monotonic()
                self._write(st)

        st["state"] = "running"
        self._write(st)
        try:
            st["result"], st["state"] = fn(progress), "done"
        except SegflowError as e:
            st["state"], st["error"], st["code"] = "failed", str(e), 400
        except OSError as e:
            from segflow.studio.handlers import storage_error

            known = storage_error(e)
            st["state"], st["error"] = "failed", known[1] if known else f"{type(e).__name__}: {e}"
            st["code"] = known[0] if known else 500
            log.error("job %s (%s): %s", st["id"], st["kind"], e)
        except Exception as e:  # reported, never lost in a thread
            log.exception("job %s (%s) failed", st["id"], st["kind"])
            st["state"], st["code"] = "failed", 500
            st["error"] = f"internal error ({type(e).__name__}); see the server log"
        st["finished"] = time.time()
        self._write(st)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def outcome(st: dict) -> tuple[int, dict]:
    """How a route answers with a job: its result when done, its error's status when it
    failed, else 202 and the job to poll."""
    if st["state"] == "done":
        return 200, st["result"]
    if st["state"] == "failed":
        return st.get("code") or 500, {"detail": st["error"], "job": st}
    return 202, {"job": st, "detail": f"{st['kind']} continues in the background; poll {st['url']}"}
