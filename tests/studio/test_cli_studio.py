"""`segflow studio` from the command line: create-admin, the demo project, one-line errors."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.test_cli import assert_one_line_error, segflow


def test_create_admin_then_login(tmp_path):
    data = tmp_path / "data"
    p = segflow("studio", "create-admin", "--username", "alice", "--password", "kiwi-lantern-97",
                "--data", data, check=0)
    assert "admin alice created" in p.stdout + p.stderr
    assert_one_line_error(segflow("studio", "create-admin", "--username", "alice", "--password",
                                  "kiwi-lantern-97", "--data", data), "alice", "exists")
    assert_one_line_error(segflow("studio", "create-admin", "--username", "bob", "--password",
                                  "short", "--data", data), "--password", "10")
    assert_one_line_error(segflow("studio", "create-admin", "--username", "bob", "--password",
                                  "password123", "--data", data), "--password", "too weak")
    from segflow.studio.app import create_app

    c = TestClient(create_app(None, data))
    r = c.post("/api/auth/login", json={"username": "alice", "password": "kiwi-lantern-97"})
    assert r.status_code == 200 and r.json()["user"]["role"] == "admin"
    assert (data / "studio.db").exists()


def test_bad_database_url_is_one_line():
    assert_one_line_error(segflow("studio", "create-admin", "--username", "a", "--password",
                                  "kiwi-lantern-97", "--db", "mysql://x"), "--db", "postgresql")


def test_help_has_examples():
    p = segflow("studio", "--help", check=0)
    assert "segflow studio --demo" in p.stdout and "create-admin" in p.stdout


def test_demo_project(tmp_path):
    from segflow.studio.app import create_app
    from segflow.studio.services.demo import DEMO_PASSWORD, seed_demo

    app = create_app(None, tmp_path / "d")
    with app.state.sessions() as s:
        info = seed_demo(s, app.state.store, n_images=3)
        assert seed_demo(s, app.state.store)["created"] is False  # once only
    assert info["created"]
    c = TestClient(app)
    tok = c.post("/api/auth/token", json={"username": "annie", "password": DEMO_PASSWORD}).json()["token"]
    h = {"Authorization": f"Bearer {tok}"}
    p = c.get("/api/projects", headers=h).json()[0]
    assert p["images"] == 3 and p["task_type"] == "panoptic" and p["guideline_version"] == 1
    tasks = c.get(f"/api/projects/{p['id']}/tasks", headers=h).json()
    assert len(tasks) == 3 and all(t["state"] == "assigned" and t["version"] == 1 for t in tasks)
    a = c.get(f"/api/tasks/{tasks[0]['id']}/annotation", headers=h).json()
    assert a["kind"] == "prelabel" and len(a["segments"]) > 3  # the synthetic truth as pre-labels
