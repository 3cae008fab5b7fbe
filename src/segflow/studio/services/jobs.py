"""Work that outlives its request: training, pre-labelling, imports and exports run as jobs on
Huey (a kept task-queue library), with progress a client polls (``GET /api/jobs/{id}``).

Two queues, one code path:

* embedded (the default): Huey's SQLite storage in ``DATA/jobs/queue.db``, consumed by worker
  threads that the studio process starts itself (on the first job);
* ``redis://host:6379/0``: Huey's Redis storage, consumed by ``segflow worker`` processes, which
  may run on other machines (they need the data folder and the database).

A job is a row of the ``jobs`` table (kind, parameters, state, progress, result, attempt,
heartbeat) plus a log file ``DATA/jobs/logs/ID.log``; the queue only carries its id, so every
studio process answers for every job. The code of a kind is a function registered with
:func:`kind`, called as ``fn(ctx, params)`` in the worker with a :class:`JobContext`
(database sessions, image store, ``progress``, ``log``, ``should_stop``).

A running job's worker renews a lease (``heartbeat_at``) every ``lease_s / 4`` seconds. A job
whose lease ran out (its worker was killed, the machine lost) is retried when its kind allows
it (``attempts``: training resumes from its last checkpoint) or marked failed with the reason:
never shown as running forever. Any process may notice (the consumers' reaper, a status read);
the claim is one conditional UPDATE, so only one of them acts.

Cancelling a queued job revokes it in Huey; a running one sees ``ctx.should_stop()`` turn true
(training stops after the current step, saving its checkpoint) and ends "cancelled".
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update

from segflow.errors import SegflowError
from segflow.studio.tables import Job

log = logging.getLogger("segflow.studio.jobs")
FINISHED = ("done", "failed", "cancelled")
STATES = ("queued", "running", *FINISHED)
LOG_TAIL = 64 * 1024  # the log API returns at most this many bytes, the end of the file


@dataclass(frozen=True)
class Kind:
    fn: Callable[[JobContext, dict], dict]
    attempts: int = 1  # > 1: a job whose worker died is run again (attempt 2, 3, ...)


KINDS: dict[str, Kind] = {}


def kind(name: str, *, attempts: int = 1):
    """Register ``fn(ctx, params) -> result dict`` as the code of job kind ``name``."""

    def deco(fn):
        KINDS[name] = Kind(fn, attempts)
        return fn

    return deco


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class JobContext:
    """What a job's code gets: the studio's database and store, and its reporting calls."""

    def __init__(self, jobs: Jobs, row: Job):
        self.jobs, self.id, self.kind = jobs, row.id, row.kind
        self.project_id, self.user_id, self.attempt = row.project_id, row.user_id, row.attempt
        self.sessions, self.store, self.data_dir = jobs.sessions, jobs.store, jobs.data_dir
        self.state = {"done": 0, "total": 0, **(row.progress or {})}
        self._stop = threading.Event()
        self._dirty = True
        self.log_path = jobs.log_path(row.id)

    def progress(self, done: int, total: int, **extra) -> None:
        """Report ``done`` of ``total`` (plus e.g. ``loss``, ``metric``, ``eta_s``); written to
        the job's row by its heartbeat, at most a few times a second."""
        self.state.update({"done": int(done), "total": int(total)},
                          **{k: _finite(v) for k, v in extra.items()})
        self._dirty = True

    def log(self, msg: str) -> None:
        with open(self.log_path, "a", encoding="utf-8") as f:
            f.write(time.strftime("%H:%M:%S ") + msg.rstrip() + "\n")

    def should_stop(self) -> bool:
        """True once the job was cancelled: stop at the next safe point."""
        return self._stop.is_set()


def _embedded_consumer(huey, **options):
    """Huey's consumer without its signal handlers (the studio's server owns the signals)."""
    from huey.consumer import Consumer

    class Embedded(Consumer):
        def _set_signal_handlers(self):
            pass

    return Embedded(huey, **options)


def make_huey(queue: str | None, data_dir: Path, name: str = "segflow"):
    from huey import RedisHuey, SqliteHuey

    if queue in (None, "", "sqlite"):
        return SqliteHuey(name=name, filename=str(Path(data_dir) / "jobs" / "queue.db"),
                          results=False)
    if queue.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name=name, url=queue, results=False)
    raise SegflowError(f"--queue {queue}: use redis://HOST:6379/0 (or leave it out for the "
                       "embedded SQLite queue)")


class Jobs:
    """The job table and the Huey queue of one studio (see the module docstring).

    ``consume``: run worker threads in this process (the embedded queue): from the first job
    submitted, or at once when jobs are left from before a restart. ``lease_s``: how long a
    running job may go without a heartbeat."""

    def __init__(self, data_dir: Path, sessions, *, queue: str | None = None,
                 workers: int = 2, consume: bool | None = None, lease_s: float = 60.0,
                 name: str = "segflow", store=None):
        from segflow.studio.services import training, work  # noqa: F401  (the job kinds)
        from segflow.studio.services.storage import ImageStore

        self.data_dir = Path(data_dir)
        (self.data_dir / "jobs" / "logs").mkdir(parents=True, exist_ok=True)
        # store: the studio's ImageStore (or an object-store URL, --store): jobs read and
        # write images where the web processes do
        if store is None or isinstance(store, str):
            store = ImageStore(self.data_dir, store)
        self.sessions, self.store = sessions, store
        self.queue = queue
        self.huey = make_huey(queue, self.data_dir, name)
        self._task = self.huey.task(name="segflow_job")(self.execute)
        self.consume = (queue in (None, "", "sqlite")) if consume is None else consume
        self.workers, self.lease_s = workers, float(lease_s)
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self._consumer = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        if self.consume and self._unfinished():  # jobs left from before a restart
            self.start()

    def _unfinished(self) -> bool:
        try:
            with self.sessions() as db:
                return db.scalar(select(Job.id).where(Job.state.in_(("queued", "running")))
                                 .limit(1)) is not None
        except Exception:  # no jobs table yet (a database older than the migration)
            return False

    # ---- the interface ---------------------------------------------------------------------

    def submit(self, kind: str, params: dict | None = None, *, project_id: int | None,
               user_id: int | None) -> dict:
        """Queue job ``kind`` (a registered :func:`kind`) with JSON ``params``; returns its
        status."""
        if kind not in KINDS:
            raise SegflowError(f"unknown job kind {kind!r}")
        if params is not None and not isinstance(params, dict):
            # a programming error (the old closure form of submit): say so, not a database error
            raise TypeError(f"job {kind!r}: params must be a JSON dict, got {type(params).__name__}")
        jid = uuid.uuid4().hex
        row = Job(id=jid, kind=kind, project_id=project_id, user_id=user_id, state="queued",
                  params=params or {}, progress={"done": 0, "total": 0}, attempt=1,
                  max_attempts=KINDS[kind].attempts, lease_s=self.lease_s,
                  created_at=time.time())
        with self.sessions() as db:
            db.add(row)
            db.commit()
            st = self.public(row)
        self._enqueue(jid)
        return st

    def status(self, jid: str) -> dict | None:
        """The job's status, or None for an unknown id."""
        if not _valid(jid):
            return None
        with self.sessions() as db:
            row = db.get(Job, jid)
            if row is None:
                return None
            if row.state == "running" and self._expired(row):
                self.reap_one(db, row)
                db.refresh(row)
            return self.public(row)

    def wait(self, jid: str, seconds: float) -> dict | None:
        """The status once the job finished or ``seconds`` passed, whichever comes first."""
        end = time.monotonic() + max(0.0, seconds)
        while True:
            st = self.status(jid)
            if st is None or st["state"] in FINISHED or time.monotonic() >= end:
                return st
            time.sleep(0.05)

    def list(self, *, project_id: int | None = None, kind: str | None = None,
             limit: int = 100) -> list[dict]:
        with self.sessions() as db:
            q = select(Job).order_by(Job.created_at.desc()).limit(limit)
            if project_id is not None:
                q = q.where(Job.project_id == project_id)
            if kind is not None:
                q = q.where(Job.kind == kind)
            rows = list(db.scalars(q))
            for row in rows:
                if row.state == "running" and self._expired(row):
                    self.reap_one(db, row)
                    db.refresh(row)
            return [self.public(r) for r in rows]

    def cancel(self, jid: str) -> dict | None:
        """Cancel a job: a queued one is revoked at once, a running one stops at its next safe
        point (its ``should_stop``); a finished one is left as it is."""
        with self.sessions() as db:
            n = db.execute(update(Job).where(Job.id == jid, Job.state == "queued").values(
                state="cancelled", cancel_requested=True, finished_at=time.time(),
                error="cancelled before it started")).rowcount
            if not n:
                db.execute(update(Job).where(Job.id == jid, Job.state == "running")
                           .values(cancel_requested=True))
            db.commit()
        if n:
            self.huey.revoke_by_id(jid)
        return self.status(jid)

    def read_log(self, jid: str) -> str:
        p = self.log_path(jid)
        if not p.exists():
            return ""
        with open(p, "rb") as f:
            f.seek(max(0, p.stat().st_size - LOG_TAIL))
            return f.read().decode("utf-8", "replace")

    def log_path(self, jid: str) -> Path:
        return self.data_dir / "jobs" / "logs" / f"{jid}.log"

    # ---- consumers ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start this process's worker threads (and the reaper), once."""
        with self._lock:
            if self._consumer is not None:
                return
            self._stopped.clear()
            c = _embedded_consumer(self.huey, workers=self.workers, worker_type="thread",
                                   periodic=False, initial_delay=0.05, max_delay=0.5,
                                   backoff=1.5, check_worker_health=False)
            c.start()
            self._consumer = c
            threading.Thread(target=self._reaper, name="segflow-job-reaper", daemon=True).start()

    def run_forever(self) -> None:
        """``segflow worker``: consume until SIGINT/SIGTERM (Huey's consumer loop)."""
        from huey.consumer import Consumer

        threading.Thread(target=self._reaper, name="segflow-job-reaper", daemon=True).start()
        Consumer(self.huey, workers=self.workers, worker_type="thread", periodic=False,
                 initial_delay=0.05, max_delay=0.5, backoff=1.5).run()
        self._stopped.set()

    def shutdown(self) -> None:
        self._stopped.set()
        with self._lock:
            c, self._consumer = self._consumer, None
        if c is not None:
            c.stop(graceful=False)

    def _enqueue(self, jid: str) -> None:
        t = self._task.s(jid)
        t.id = jid  # the Huey task id is the job id: revoke_by_id(job id) works
        self.huey.enqueue(t)
        if self.consume:
            self.start()

    def _reaper(self) -> None:
        while not self._stopped.wait(max(0.2, min(self.lease_s / 4, 5.0))):
            try:
                self.reap()
            except Exception:  # a database hiccup: try again at the next round
                log.exception("job reaper")

    def reap(self) -> int:
        """Retry or fail every running job whose lease ran out; returns how many."""
        n = 0
        with self.sessions() as db:
            for row in list(db.scalars(select(Job).where(Job.state == "running"))):
                if self._expired(row):
                    n += self.reap_one(db, row)
        return n

    @staticmethod
    def _expired(row: Job) -> bool:
        return (row.heartbeat_at or row.started_at or 0) + row.lease_s < time.time()

    def reap_one(self, db, row: Job) -> int:
        """``row``'s worker stopped renewing its lease: queue it again (attempts left) or fail
        it with the reason. The conditional UPDATE makes one process win the claim."""
        gone = f"its worker {row.worker or '?'} stopped (no heartbeat for {row.lease_s:.0f} s)"
        if row.attempt < row.max_attempts and not row.cancel_requested:
            values = dict(state="queued", attempt=row.attempt + 1,
                          error=f"attempt {row.attempt}: {gone}; retried")
        else:
            values = dict(state="failed", code=500, finished_at=time.time(),
                          error=f"{gone}; attempt {row.attempt} of {row.max_attempts}")
        cond = (Job.id == row.id) & (Job.state == "running") & (Job.attempt == row.attempt)
        cond &= (Job.heartbeat_at == row.heartbeat_at) if row.heartbeat_at is not None \
            else Job.heartbeat_at.is_(None)
        won = db.execute(update(Job).where(cond).values(**values)).rowcount
        db.commit()
        if won:
            log.warning("job %s (%s): %s", row.id, row.kind, values["error"])
            _append(self.log_path(row.id), values["error"])
            if values["state"] == "queued":
                self._enqueue(row.id)
        return won

    # ---- the worker side -------------------------------------------------------------------

    def execute(self, jid: str) -> None:
        """Run job ``jid`` (called by a Huey worker): claim it, renew its lease while its code
        runs, record the outcome."""
        now = time.time()
        with self.sessions() as db:
            won = db.execute(update(Job).where(Job.id == jid, Job.state == "queued").values(
                state="running", worker=self.worker_name, started_at=now, heartbeat_at=now,
                lease_s=self.lease_s)).rowcount
            db.commit()
            row = db.get(Job, jid) if won else None
            if row is None:  # cancelled, or another worker has it
                return
            ctx = JobContext(self, row)
            params, k = dict(row.params or {}), KINDS.get(row.kind)
        ctx.log(f"attempt {ctx.attempt} on {self.worker_name}")
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(ctx, done), daemon=True,
                                name=f"segflow-job-heartbeat-{jid[:8]}")
        beat.start()
        out = {"state": "done", "result": None, "error": None, "code": None}
        try:
            if k is None:
                raise SegflowError(f"job kind {row.kind!r} is unknown to this worker")
            out["result"] = k.fn(ctx, params)
            if ctx.should_stop():
                out["state"], out["error"] = "cancelled", "cancelled while running"
        except SegflowError as e:
            out.update(state="failed", error=str(e), code=400)
        except OSError as e:
            from segflow.studio.handlers import storage_error

            known = storage_error(e)
            out.update(state="failed", error=known[1] if known else f"{type(e).__name__}: {e}",
                       code=known[0] if known else 500)
            log.error("job %s (%s): %s", jid, row.kind, e)
        except Exception as e:  # reported, never lost in a thread
            log.exception("job %s (%s) failed", jid, row.kind)
            out.update(state="failed", code=500,
                       error=f"internal error ({type(e).__name__}: {e}); see the worker's log")
        done.set()
        beat.join()
        ctx.log(f"{out['state']}" + (f": {out['error']}" if out["error"] else ""))
        if out["error"] is None:  # a retried job that succeeded keeps why attempt 1 ended
            del out["error"]
        with self.sessions() as db:
            db.execute(update(Job).where(Job.id == jid, Job.worker == self.worker_name,
                                         Job.state == "running").values(
                progress=ctx.state, finished_at=time.time(), **out))
            db.commit()

    def _heartbeat(self, ctx: JobContext, done: threading.Event) -> None:
        every = max(0.1, min(0.5, self.lease_s / 4))
        while not done.wait(every):
            try:
                values = {"heartbeat_at": time.time()}
                if ctx._dirty:
                    ctx._dirty = False
                    values["progress"] = dict(ctx.state)
                with self.sessions() as db:
                    db.execute(update(Job).where(Job.id == ctx.id).values(**values))
                    if db.scalar(select(Job.cancel_requested).where(Job.id == ctx.id)):
                        ctx._stop.set()
                    db.commit()
            except Exception:  # a missed beat; the lease allows a few
                log.exception("job %s heartbeat", ctx.id)

    # ---- answers ---------------------------------------------------------------------------

    @staticmethod
    def public(row: Job) -> dict:
        prog = dict(row.progress or {})
        return {"id": row.id, "kind": row.kind, "project_id": row.project_id,
                "user_id": row.user_id, "state": row.state, "done": prog.get("done", 0),
                "total": prog.get("total", 0), "progress": prog, "result": row.result,
                "error": row.error, "code": row.code, "attempt": row.attempt,
                "max_attempts": row.max_attempts, "params": row.params,
                "cancel_requested": bool(row.cancel_requested), "worker": row.worker,
                "created_at": row.created_at, "started_at": row.started_at,
                "finished_at": row.finished_at, "heartbeat_at": row.heartbeat_at,
                "url": f"/api/jobs/{row.id}"}


def _valid(jid: str) -> bool:
    return len(jid) == 32 and all(c in "0123456789abcdef" for c in jid)


def _append(path: Path, msg: str) -> None:
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(time.strftime("%H:%M:%S ") + msg + "\n")
    except OSError:
        pass


def outcome(st: dict) -> tuple[int, dict]:
    """How a route answers with a job: its result when done, its error's status when it
    failed, else 202 and the job to poll."""
    if st["state"] == "done":
        return 200, st["result"]
    if st["state"] in ("failed", "cancelled"):
        return st.get("code") or (409 if st["state"] == "cancelled" else 500), \
            {"detail": st["error"], "job": st}
    return 202, {"job": st, "detail": f"{st['kind']} continues in the background; poll {st['url']}"}
