"""Issue 10, the studio side: jobs on Huey (lease, retry, cancel, Redis workers, kill -9), the
saved split, training and its bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.studio.conftest import make_studio
from tests.studio.training_helpers import semantic_project

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def st(tmp_path):
    s = make_studio(tmp_path, None)
    yield s
    s.app.state.jobs.shutdown()
    s.app.state.engine.dispose()


def redis_url() -> str:
    try:
        import redis

        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1).ping()
    except Exception:
        pytest.skip("Redis on 127.0.0.1:6379 is not reachable")
    return "redis://127.0.0.1:6379/0"


# ---- the split ----------------------------------------------------------------------------------


def test_split_is_saved_stable_and_new_images_join_by_hash(tmp_path):
    from segflow.errors import SegflowError
    from segflow.studio.services.training import assign_split, image_unit, split_path

    first = assign_split(tmp_path, 7, list(range(1, 51)), gold={3})
    assert first[3] == "test"  # gold: always held out
    share = sum(v == "test" for v in first.values()) / 50
    assert 0.05 < share < 0.4
    # a split with no test image at all gets the new image of lowest hash
    assert assign_split(tmp_path / "other", 7, [42], gold=set()) == {42: "test"}
    more = assign_split(tmp_path, 7, list(range(1, 81)), gold={3, 60}, test_fraction=0.9)
    assert {i: more[i] for i in first} == first  # saved: unchanged by a new fraction or gold
    assert more[60] == "test"
    for i in range(51, 81):
        if i != 60:
            assert more[i] == ("test" if image_unit(7, i) < 0.9 else "train")
    again = assign_split(tmp_path, 7, list(range(1, 81)), gold=set())
    assert again == more
    split_path(tmp_path, 7).write_text("{not json")
    with pytest.raises(SegflowError, match="saved split is unreadable"):
        assign_split(tmp_path, 7, [1], gold=set())


# ---- jobs: lease, retry, cancel ---------------------------------------------------------------


def _kinds():
    from segflow.studio.services.jobs import kind

    gate = threading.Event()

    @kind("test-wait")
    def wait_for_stop(ctx, params):
        for k in range(400):
            ctx.progress(k, 400, loss=1.0 / (k + 1), metric=float("nan"))
            if ctx.should_stop():
                return {"stopped_at": k}
            time.sleep(0.02)
        return {"stopped_at": None}

    @kind("test-retry", attempts=2)
    def retried(ctx, params):
        return {"attempt": ctx.attempt}

    @kind("test-gate")
    def gated(ctx, params):
        gate.wait(30)
        return {}

    return gate


def _dead_worker_row(st, kind: str, *, attempts: int) -> str:
    """A job that a worker claimed and then stopped beating for (killed): running, lease 1 s,
    last heartbeat 10 s ago."""
    from segflow.studio.tables import Job

    jid = uuid.uuid4().hex
    with st.app.state.sessions() as db:
        db.add(Job(id=jid, kind=kind, project_id=None, user_id=st.ids["manager"],
                   state="running", params={}, progress={"done": 3, "total": 10}, attempt=1,
                   max_attempts=attempts, lease_s=1.0, worker="gone:1",
                   created_at=time.time() - 20, started_at=time.time() - 20,
                   heartbeat_at=time.time() - 10))
        db.commit()
    return jid


def test_a_job_whose_worker_died_is_failed_with_the_reason_or_retried(st):
    _kinds()
    jobs = st.app.state.jobs
    jid = _dead_worker_row(st, "test-wait", attempts=1)
    j = st.ok("manager", "GET", f"/api/jobs/{jid}")
    assert j["state"] == "failed" and "gone:1 stopped (no heartbeat for 1 s)" in j["error"], j
    assert "stopped" in st.ok("manager", "GET", f"/api/jobs/{jid}/log")["log"]
    # a kind with attempts left runs again, as attempt 2
    jid = _dead_worker_row(st, "test-retry", attempts=2)
    assert jobs.reap() == 1 and jobs.reap() == 0  # one claim, not two
    j = jobs.wait(jid, 30)
    assert j["state"] == "done" and j["result"] == {"attempt": 2} and j["attempt"] == 2, j
    assert "retried" in j["error"]


def test_cancel_a_running_and_a_queued_job(st):
    gate = _kinds()
    jobs = st.app.state.jobs
    run = jobs.submit("test-wait", {}, project_id=None, user_id=st.ids["manager"])
    end = time.monotonic() + 20
    while st.ok("manager", "GET", run["url"])["done"] < 5:  # progress reaches the API
        assert time.monotonic() < end
        time.sleep(0.05)
    j = st.ok("manager", "GET", run["url"])
    assert j["state"] == "running" and j["progress"]["metric"] is None  # NaN stored as null
    assert st.call("annotator", "POST", f"{run['url']}/cancel").status_code == 404
    assert st.ok("manager", "POST", f"{run['url']}/cancel")["cancel_requested"]
    j = jobs.wait(run["id"], 20)
    assert j["state"] == "cancelled" and j["result"]["stopped_at"] < 399, j
    assert st.call("manager", "POST", f"{run['url']}/cancel").status_code == 409
    # two workers: block both, then a third job waits in the queue and is revoked there
    blockers = [jobs.submit("test-gate", {}, project_id=None, user_id=st.ids["manager"])
                for _ in range(2)]
    queued = jobs.submit("noop", {}, project_id=None, user_id=st.ids["manager"])
    time.sleep(0.5)
    assert jobs.status(queued["id"])["state"] == "queued"
    assert jobs.cancel(queued["id"])["state"] == "cancelled"
    gate.set()
    for b in blockers:
        assert jobs.wait(b["id"], 20)["state"] == "done"
    time.sleep(0.5)
    assert jobs.status(queued["id"])["state"] == "cancelled"  # it never ran


def test_jobs_queued_before_a_restart_run_after_it(tmp_path):
    from segflow.studio.app import create_app
    from segflow.studio.services.jobs import Jobs

    st = make_studio(tmp_path, None)
    before = Jobs(st.app.state.data_dir, st.app.state.sessions, consume=False)
    job = before.submit("noop", {}, project_id=None, user_id=None)  # the studio stops here
    time.sleep(0.3)
    assert before.status(job["id"])["state"] == "queued"
    st.app.state.engine.dispose()
    app = create_app(None, tmp_path / "data")  # started again: its workers take the job
    try:
        assert app.state.jobs.wait(job["id"], 30)["state"] == "done"
    finally:
        app.state.jobs.shutdown()
        app.state.engine.dispose()


# ---- training: bad input ------------------------------------------------------------------------


def test_training_refuses_bad_input_with_a_reason(st):
    pid = semantic_project(st, 4, accepted=2)["pid"]
    url = f"/api/projects/{pid}/training"

    def refused(body, code=422, *, raw=None, who="manager"):
        kw = {"content": raw, "headers": {**st.as_(who), "content-type": "application/json"}} \
            if raw is not None else {"json": body, "headers": st.as_(who)}
        r = st.client.post(url, **kw)
        assert r.status_code == code, (body, raw, r.status_code, r.text)
        return json.dumps(r.json()["detail"])

    assert "no-such" in refused({"model": "no-such"}) and "unet" in refused({"model": "no-such"})
    assert "semantic" in refused({"model": "maskrcnn"})  # a model of another task
    refused({"model": "unet3d"})
    refused({"preset": "turbo"})
    refused(None, raw='{"model": "unet", "max_steps": NaN}')
    refused(None, raw='{"model": "unet", "epochs": Infinity}')
    refused({"max_steps": 2**63})
    refused({"max_steps": 0})
    refused({"max_steps": "many"})
    refused({"seed": -1})
    refused({"model": ["unet"]})
    refused({"model": "x" * 10_000})
    refused({"learning_rate": 1})  # unknown field
    refused(None, raw="not json")
    assert "at least 3 accepted" in refused({"model": "unet"}, 409)
    refused({"model": "unet"}, 404, who="annotator")  # not a member
    # models: unknown ids are 404 with the id, malformed ones 422
    r = st.call("manager", "GET", "/api/models/m-unknown")
    assert r.status_code == 404 and "m-unknown" in r.text
    assert st.call("manager", "GET", "/api/models/..%2Fetc").status_code in (404, 422)
    r = st.call("manager", "PUT", f"/api/projects/{pid}/prelabeller", json={"model_id": "nope"})
    assert r.status_code == 404 and "nope" in r.text
    for bad in ({"model_id": "../x"}, {"model_id": ""}, {"model_id": 5},
                {"model_id": "m", "apply": "sometimes"}):
        assert st.call("manager", "PUT", f"/api/projects/{pid}/prelabeller",
                       json=bad).status_code == 422, bad
    assert st.ok("manager", "GET", "/api/models") == []
    assert st.ok("manager", "GET", f"/api/projects/{pid}/training") == []


def test_the_brief_holds_targets_checked_as_segflow_assess_reads_them(st):
    from tests.studio.conftest import SCHEMA

    base = {"name": "t", "task_type": "semantic", "schema": SCHEMA}
    p = st.ok("manager", "POST", "/api/projects", json={**base, "target_metric": "dice",
                                                         "target_threshold": 0.75})
    assert p["targets"] == ["dice >= 0.75"]  # no list: the metric and threshold
    p = st.ok("manager", "POST", "/api/projects",
              json={**base, "targets": ["miou >= 0.7", " iou[blob]>=0.5 "]})
    assert p["targets"] == ["miou >= 0.7", "iou[blob]>=0.5"]
    assert st.ok("manager", "GET", f"/api/projects/{p['id']}")["targets"] == p["targets"]
    for bad, why in ((["iou[cat] >= 0.5"], "unknown class 'cat'"), (["ap50 >= 0.5"], "ap50"),
                     (["miou >= NaN"], "miou >= NaN"), (["miou"], "cannot read target"),
                     ([5], "string"), (["miou >= 0.5"] * 51, "50"), ("miou >= 0.5", "list")):
        r = st.call("manager", "PUT", f"/api/projects/{p['id']}/brief",
                    json={**base, "targets": bad})
        assert r.status_code == 422 and why in r.text, (bad, r.text)
    assert st.ok("manager", "GET", f"/api/projects/{p['id']}")["targets"] == p["targets"]


# ---- Redis workers: a segflow worker process, and kill -9 of one mid-training ----------------


def _worker(data: Path, queue: str, name: str, lease: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-m", "segflow", "worker", "--queue", queue,
                             "--queue-name", name, "--data", str(data), "--lease", str(lease)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _redis_studio(tmp_path, name: str, lease: float):
    from segflow.studio.app import create_app

    st = make_studio(tmp_path, None)  # users and tokens
    st.app.state.engine.dispose()
    app = create_app(None, tmp_path / "data", queue=redis_url(), queue_name=name,
                     job_lease_s=lease)
    from fastapi.testclient import TestClient

    st.app, st.client = app, TestClient(app)
    return st


def test_segflow_worker_runs_the_studios_redis_jobs(tmp_path):
    name = f"segflow-test-{uuid.uuid4().hex[:8]}"
    st = _redis_studio(tmp_path, name, 5)
    job = st.app.state.jobs.submit("noop", {}, project_id=None, user_id=st.ids["manager"])
    time.sleep(0.5)
    assert st.app.state.jobs.status(job["id"])["state"] == "queued"  # no worker yet
    w = _worker(tmp_path / "data", redis_url(), name, 5)
    try:
        j = st.app.state.jobs.wait(job["id"], 60)
        assert j["state"] == "done" and j["result"] == {"noop": True}, j
        assert j["worker"].endswith(f":{w.pid}")
    finally:
        w.kill()
        w.wait(10)
        st.app.state.jobs.huey.storage.flush_queue()


@pytest.mark.slow
def test_kill_9_of_a_worker_mid_training_resumes_from_its_checkpoint(tmp_path):
    """A worker is killed (SIGKILL) once training has written a checkpoint; after its lease
    (3 s) the job is queued again, a new worker resumes it from last.pt, and it completes with
    a model. Bounded: everything within 240 s."""
    name = f"segflow-test-{uuid.uuid4().hex[:8]}"
    lease = 3.0
    st = _redis_studio(tmp_path, name, lease)
    pid = semantic_project(st, 6, accepted=6)["pid"]
    job = st.ok("manager", "POST", f"/api/projects/{pid}/training",
                json={"model": "unet", "preset": "cpu-fast", "max_steps": 10,
                      "checkpoint_every": 2})["job"]
    last = tmp_path / "data" / "runs" / job["id"] / "train" / "last.pt"
    w = _worker(tmp_path / "data", redis_url(), name, lease)
    end = time.monotonic() + 240
    try:
        while not (last.exists() and st.app.state.jobs.status(job["id"])["done"] >= 4):
            assert time.monotonic() < end and w.poll() is None, w.stdout.read() if w.poll() else ""
            time.sleep(0.2)
        step_at_kill = st.app.state.jobs.status(job["id"])["done"]
        os.kill(w.pid, signal.SIGKILL)
        w.wait(10)
        while (j := st.ok("manager", "GET", job["url"]))["attempt"] < 2:  # lease runs out
            assert time.monotonic() < end, j
            time.sleep(0.3)
        assert j["state"] in ("queued", "running") and "stopped (no heartbeat" in j["error"], j
        w = _worker(tmp_path / "data", redis_url(), name, lease)
        j = st.app.state.jobs.wait(job["id"], max(1.0, end - time.monotonic()))
        assert j["state"] == "done" and j["attempt"] == 2, j
        log = st.ok("manager", "GET", f"{job['url']}/log")["log"]
        assert "resuming from last.pt (attempt 2)" in log, log
        assert j["result"]["steps"] == 10 and step_at_kill < 10
        m = st.ok("manager", "GET", f"/api/models/{j['result']['model_id']}")
        assert m["config"]["job_id"] == job["id"]
    finally:
        w.kill()
        w.wait(10)
        st.app.state.jobs.huey.storage.flush_queue()


def test_worker_and_studio_refuse_a_bad_queue_in_one_line(tmp_path):
    from tests.studio.conftest import make_studio as _make

    _make(tmp_path, None).app.state.engine.dispose()  # a studio data folder
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    for args, want in (
        (["worker", "--queue", "sqlite", "--data", str(tmp_path / "data")], "reads a Redis queue"),
        (["worker", "--queue", "redis://127.0.0.1:1/0", "--data", str(tmp_path / "data")],
         "redis://127.0.0.1:1/0"),
        (["worker", "--queue", "redis://127.0.0.1:6379/0", "--data", str(tmp_path / "none")],
         "no studio here"),
        (["studio", "--queue", "amqp://x", "--data", str(tmp_path / "data")], "use redis://"),
    ):
        p = subprocess.run([sys.executable, "-m", "segflow", *args], env=env, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 2 and want in p.stderr, (args, p.stdout, p.stderr)
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
