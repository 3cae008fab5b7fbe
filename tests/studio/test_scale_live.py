"""The studio laid out as docs/scaling.md describes, live on loopback: `segflow studio
--workers 2` on PostgreSQL, images in an object store (moto's S3), jobs on Redis, and a
separate `segflow worker` process. Through the HTTP API only: upload, pre-label (a job the
worker runs), label, review, export (a job the worker runs) and download; the images are in
the bucket, every answer comes from the web processes, and the export holds the labels."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import free_port, moto_s3
from tests.studio.conftest import blob_image, pg_schema, png_bytes
from tests.studio.test_training import redis_url

ROOT = Path(__file__).resolve().parents[2]
PW = "scale-pass-123"


@pytest.fixture
def s3():
    with moto_s3("studio-images") as (fs, _):
        yield fs


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-m", "segflow", *args], env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _wait_job(c, h, r, timeout=120):
    """A route's answer, following its job while it is 202."""
    end = time.monotonic() + timeout
    while r.status_code == 202:
        assert time.monotonic() < end, r.text
        time.sleep(0.5)
        j = c.get(r.json()["job"]["url"], headers=h).json()
        if j["state"] == "done":
            return j, j["result"]
        assert j["state"] in ("queued", "running"), j
    assert r.status_code in (200, 201), r.text
    return None, r.json()


@pytest.mark.slow
def test_two_web_processes_and_a_worker_share_postgresql_s3_and_redis(s3, tmp_path):
    import httpx

    from segflow.studio import security
    from segflow.studio.app import create_app
    from segflow.studio.tables import User

    redis = redis_url()
    store, name = "s3://studio-images/prod", f"segflow-scale-{uuid.uuid4().hex[:8]}"
    data = tmp_path / "shared"
    with pg_schema("sf_scale") as db:
        app = create_app(db, data, store=store)  # migrates; the admin and an annotator
        with app.state.sessions() as s:
            for user, role in (("boss", "admin"), ("ann", "annotator"), ("rev", "reviewer")):
                s.add(User(username=user, password_hash=security.hash_password(PW), role=role))
            s.commit()
        app.state.jobs.shutdown()
        app.state.engine.dispose()
        port = free_port()
        web = _start(["studio", "--db", db, "--data", str(data), "--port", str(port),
                      "--workers", "2", "--store", store, "--queue", redis,
                      "--queue-name", name], tmp_path / "web.log")
        worker = _start(["worker", "--db", db, "--data", str(data), "--store", store,
                         "--queue", redis, "--queue-name", name, "--lease", "20"],
                        tmp_path / "worker.log")
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=60) as c:
                end = time.monotonic() + 240  # two processes importing the stack, on 2 cores
                while True:
                    try:
                        c.get("/login")
                        break
                    except httpx.HTTPError:
                        assert web.poll() is None, (tmp_path / "web.log").read_text()[-2000:]
                        assert time.monotonic() < end, "the studio did not start in 240 s"
                        time.sleep(0.2)
                tok = {u: c.post("/api/auth/token", json={"username": u, "password": PW}).json()
                       for u in ("boss", "ann", "rev")}
                h = {u: {"Authorization": f"Bearer {t['token']}"} for u, t in tok.items()}
                pid = c.post("/api/projects", headers=h["boss"], json={
                    "name": "scaled", "task_type": "semantic", "schema": [
                        {"id": 1, "name": "background", "color": [90, 90, 90]},
                        {"id": 2, "name": "blob", "color": [220, 60, 60]}]}).json()["id"]
                c.post(f"/api/projects/{pid}/members", headers=h["boss"],
                       json={"user_ids": [tok["ann"]["user"]["id"], tok["rev"]["user"]["id"]]})
                files = [("files", (f"b{k}.png", png_bytes(blob_image(k)), "image/png"))
                         for k in range(3)]
                up = c.post(f"/api/projects/{pid}/images", headers=h["boss"], files=files)
                assert up.status_code == 201, up.text
                # the images are in the bucket, under their content keys
                keys = s3.find("studio-images/prod/images")
                assert len(keys) == 3, keys
                # pre-labels: a job on the Redis queue, run by the worker process
                r = c.put(f"/api/projects/{pid}/prelabel?wait=30", headers=h["boss"],
                          json={"mode": "pipeline", "pipeline": "otsu", "class_id": 2})
                _, res = _wait_job(c, h["boss"], r)
                assert res["prelabelled"] == 3, res
                c.post(f"/api/projects/{pid}/assign", headers=h["boss"], json={
                    "mode": "manual", "user_ids": [tok["ann"]["user"]["id"]],
                    "task_ids": up.json()["task_ids"]})
                # label (accept the pre-labels as they are), submit, review, accept
                for tid in up.json()["task_ids"]:
                    t = c.get(f"/api/tasks/{tid}", headers=h["ann"]).json()
                    assert t["version"] >= 1, t  # pre-labelled
                    a = c.get(f"/api/tasks/{tid}/annotation", headers=h["ann"]).json()
                    assert any(s["category_id"] == 2 for s in a["segments"]), a["segments"]
                    assert c.post(f"/api/tasks/{tid}/submit", headers=h["ann"]).status_code == 200
                    rv = c.post(f"/api/tasks/{tid}/review", headers=h["rev"],
                                json={"decision": "accept"})
                    assert rv.status_code == 200, rv.text
                # export: a job the worker runs; the download comes from a web process
                r = c.post(f"/api/projects/{pid}/export?wait=30", headers=h["boss"],
                           json={"format": "folders"})
                _, dv = _wait_job(c, h["boss"], r)
                z = c.get(f"/api/projects/{pid}/exports/{dv['id']}.zip", headers=h["boss"])
                assert z.status_code == 200, z.text
                names = zipfile.ZipFile(io.BytesIO(z.content)).namelist()
                masks = [n for n in names if n.startswith("semantic/") and n.endswith(".png")]
                assert len(masks) == 3, names
                # the pre-labels in the export are the pipeline's, pixel for pixel
                from PIL import Image

                got = [np.asarray(Image.open(io.BytesIO(zipfile.ZipFile(io.BytesIO(z.content))
                                                        .read(n)))) for n in sorted(masks)[:3]]
                assert all((g == 2).sum() > 100 for g in got), [np.unique(g) for g in got]
                assert web.poll() is None and worker.poll() is None
            # both jobs ran in the worker process, none in the web processes
            from sqlalchemy import text

            from segflow.studio.db import make_engine

            eng = make_engine(db)
            with eng.connect() as conn:
                ran = conn.execute(text("SELECT kind, state, worker FROM jobs")).all()
            eng.dispose()
            assert sorted(k for k, _, _ in ran) == ["export", "prelabel"], ran
            assert all(st == "done" and w.endswith(f":{worker.pid}") for _, st, w in ran), ran
        finally:
            for p in (web, worker):
                p.terminate()
            for p in (web, worker):
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
            subprocess.run(["redis-cli", "-n", "0", "DEL", f"huey.redis.{name}"],
                           capture_output=True)
