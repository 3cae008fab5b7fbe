"""Serving the studio for a team (issue 11): worker processes (PostgreSQL only), Secure
cookies behind TLS, and no acknowledged save lost when the server is killed (kill -9)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tests.conftest import free_port
from tests.studio.conftest import pg_schema, png_bytes
from tests.test_cli import assert_one_line_error, segflow


def test_workers_are_refused_on_sqlite(tmp_path):
    assert_one_line_error(segflow("studio", "--workers", "3", "--data", tmp_path / "d"),
                          "--workers", "postgresql")


def test_secure_cookies(tmp_path):
    from fastapi.testclient import TestClient

    from segflow.studio import security
    from segflow.studio.app import create_app
    from segflow.studio.tables import User

    login = {"username": "ann", "password": "ann-password-1"}
    for secure, base, expect in ((True, "http://testserver", True),
                                 (False, "https://testserver", True),  # TLS seen by the server
                                 (False, "http://testserver", False)):
        app = create_app(None, tmp_path / f"d{secure}{base[:5]}", secure_cookies=secure)
        with app.state.sessions() as s:
            s.add(User(username="ann", password_hash=security.hash_password(login["password"]),
                       role="annotator"))
            s.commit()
        r = TestClient(app, base_url=base).post("/api/auth/login", json=login)
        cookies = r.headers.get_list("set-cookie")
        assert r.status_code == 200 and len(cookies) == 2
        assert all(("; Secure" in c) == expect for c in cookies), (secure, base, cookies)
        app.state.engine.dispose()


# ---- kill -9 during saves -------------------------------------------------------------------

SIDE = 200


def _serve(db_url: str | None, data, port: int) -> subprocess.Popen:
    args = [sys.executable, "-m", "segflow", "studio", "--data", str(data), "--port", str(port)]
    if db_url:
        args += ["--db", db_url]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    import httpx

    for _ in range(600):
        try:
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=1)
            return p
        except httpx.HTTPError:
            if p.poll() is not None:
                raise AssertionError(p.stderr.read().decode()[-2000:]) from None
            time.sleep(0.1)
    raise AssertionError("the server did not start")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request):
    if request.param == "sqlite":
        yield None
        return
    with pg_schema("sf_kill") as url:
        yield url


def test_kill_9_during_saves_loses_no_acknowledged_save(tmp_path, db_url):
    """Four annotators save as fast as they can; the server is killed with SIGKILL in the
    middle. After a restart every save that was answered 200 reads back identical."""
    import httpx

    from segflow.studio import security
    from segflow.studio.app import create_app
    from segflow.studio.services.masks import decode_runs, encode_runs
    from segflow.studio.tables import User

    data = tmp_path / "data"
    app = create_app(db_url, data)
    with app.state.sessions() as s:
        for name, role in (("boss", "admin"), *((f"a{k}", "annotator") for k in range(4))):
            s.add(User(username=name, password_hash=security.hash_password("password-123"),
                       role=role))
        s.commit()
    app.state.engine.dispose()
    port = free_port()
    srv = _serve(db_url, data, port)
    try:
        c = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
        tok = {n: c.post("/api/auth/token", json={"username": n, "password": "password-123"}
                         ).json()["token"] for n in ("boss", "a0", "a1", "a2", "a3")}
        H = {n: {"Authorization": f"Bearer {t}"} for n, t in tok.items()}
        pid = c.post("/api/projects", headers=H["boss"], json={
            "name": "kill", "task_type": "instance",
            "schema": [{"id": 1, "name": "bg"}, {"id": 2, "name": "obj", "isthing": True}]}).json()["id"]
        users = [c.get("/api/me", headers=H[f"a{k}"]).json()["id"] for k in range(4)]
        c.post(f"/api/projects/{pid}/members", headers=H["boss"], json={"user_ids": users})
        rng = np.random.default_rng(0)
        files = [("files", (f"{k}.png", png_bytes(rng.integers(0, 255, (SIDE, SIDE, 3), np.uint8)),
                            "image/png")) for k in range(4)]
        c.post(f"/api/projects/{pid}/images", headers=H["boss"], files=files)
        assert c.post(f"/api/projects/{pid}/assign", headers=H["boss"],
                      json={"mode": "balanced"}).json()["assigned"] == 4
        acked, stop = [], threading.Event()

        def annotator(k: int):
            h = H[f"a{k}"]
            local = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
            r = np.random.default_rng(k)
            try:
                t = local.get(f"/api/projects/{pid}/next-task", headers=h).json()
                version = t["version"]
                while not stop.is_set():
                    ids = np.zeros((SIDE, SIDE), np.int32)
                    y, x = r.integers(0, SIDE - 40, 2)
                    ids[y:y + int(r.integers(5, 40)), x:x + int(r.integers(5, 40))] = 1
                    body = {"base_version": version, "width": SIDE, "height": SIDE,
                            "runs": encode_runs(ids), "segments": [{"id": 1, "category_id": 2}]}
                    resp = local.put(f"/api/tasks/{t['id']}/annotation", headers=h, json=body)
                    if resp.status_code == 200:
                        version = resp.json()["version"]
                        acked.append((t["id"], version, hashlib.sha256(ids.tobytes()).hexdigest(), h))
            except httpx.HTTPError:
                pass  # the server died under us: what matters is what was acknowledged

        threads = [threading.Thread(target=annotator, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(acked) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(srv.pid, signal.SIGKILL)  # mid-save: no shutdown, no flush
        srv.wait(timeout=30)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert len(acked) >= 10, "too few saves before the kill to mean anything"
        n_acked = len(acked)
        srv = _serve(db_url, data, port)
        for tid, version, digest, h in acked:
            a = c.get(f"/api/tasks/{tid}/annotation?version={version}", headers=h)
            assert a.status_code == 200, (tid, version, a.text)
            got = decode_runs(a.json()["runs"], SIDE, SIDE)
            assert hashlib.sha256(got.tobytes()).hexdigest() == digest, (tid, version)
        for tid in {t for t, *_ in acked}:  # each task's latest version is its last answered save
            last = max(v for t, v, *_ in acked if t == tid)
            h = next(h for t, _, _, h in acked if t == tid)
            assert c.get(f"/api/tasks/{tid}", headers=h).json()["version"] in (last, last + 1)
        print(f"kill -9 ({'PostgreSQL' if db_url else 'SQLite'}): {n_acked} acknowledged saves "
              f"before the kill, {len(acked)} read back identical after the restart")
    finally:
        srv.kill()
        srv.wait(timeout=30)
