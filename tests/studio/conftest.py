"""Studio fixtures: an app on SQLite or on PostgreSQL (127.0.0.1:5432, database ``test``, one
fresh schema per app, skipped when the server is not reachable), and users of every role."""

from __future__ import annotations

import contextlib
import io
import uuid
from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image

PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres",
                             connect_timeout=2):
            return True
    except Exception:
        return False


@contextlib.contextmanager
def pg_schema(prefix: str = "sf"):
    """A fresh PostgreSQL schema on 127.0.0.1:5432/test for one test (dropped afterwards); yields
    the database URL that uses it. Skips the test when PostgreSQL is not reachable."""
    if not pg_available():
        pytest.skip("PostgreSQL on 127.0.0.1:5432 (database test) is not reachable")
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    dsn = "host=127.0.0.1 port=5432 dbname=test user=postgres"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(f"DROP SCHEMA {schema} CASCADE")


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def blob_image(seed: int = 0, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """Bright discs on a dark textured background (an easy Otsu case)."""
    rng = np.random.default_rng(seed)
    h, w = size
    img = rng.integers(20, 50, (h, w, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:h, :w]
    for _ in range(3):
        cy, cx, r = rng.integers(15, h - 15), rng.integers(15, w - 15), rng.integers(8, 14)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = (200, 180, 60)
    return img


@dataclass
class Studio:
    app: object
    client: object
    tokens: dict = field(default_factory=dict)
    ids: dict = field(default_factory=dict)

    def as_(self, who: str | None):
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    def call(self, who, method, url, **kw):
        return self.client.request(method, url, headers=self.as_(who), **kw)

    def ok(self, who, method, url, **kw):
        r = self.call(who, method, url, **kw)
        assert r.status_code < 300, (method, url, who, r.status_code, r.text)
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r


SCHEMA = [
    {"id": 1, "name": "background", "color": [90, 90, 90], "hotkey": "1"},
    {"id": 2, "name": "blob", "color": [220, 60, 60], "isthing": True, "hotkey": "2"},
]


def make_studio(tmp_path, db_url: str | None) -> Studio:
    from fastapi.testclient import TestClient

    from segflow.studio import security
    from segflow.studio.app import create_app
    from segflow.studio.tables import User

    app = create_app(db_url, tmp_path / "data")
    st = Studio(app, TestClient(app))
    with app.state.sessions() as s:
        for name, role in (("admin", "admin"), ("manager", "manager"), ("annotator", "annotator"),
                           ("annotator2", "annotator"), ("reviewer", "reviewer"),
                           ("outsider", "annotator")):
            s.add(User(username=name, password_hash=security.hash_password(f"{name}-pw-123"),
                       role=role))
        s.commit()
    for name in ("admin", "manager", "annotator", "annotator2", "reviewer", "outsider"):
        r = st.client.post("/api/auth/token", json={"username": name, "password": f"{name}-pw-123"})
        assert r.status_code == 200, r.text
        st.tokens[name] = r.json()["token"]
        st.ids[name] = r.json()["user"]["id"]
    return st


@pytest.fixture(params=["sqlite", "postgresql"])
def studio(request, tmp_path):
    if request.param == "postgresql":
        with pg_schema() as url:
            st = make_studio(tmp_path, url)
            yield st
            st.app.state.jobs.shutdown()
            st.app.state.engine.dispose()
    else:
        st = make_studio(tmp_path, None)
        yield st
        st.app.state.jobs.shutdown()
        st.app.state.engine.dispose()


def setup_project(st: Studio, n_images: int = 3, *, task_type: str = "instance") -> dict:
    """A project with members, guidelines acknowledged by the annotators, and images assigned
    to ``annotator``; returns ids."""
    p = st.ok("manager", "POST", "/api/projects", json={
        "name": "blobs", "task_type": task_type, "goals": "count blobs", "target_metric": "ap50",
        "target_threshold": 0.7, "image_count": 10, "domains": ["lab"], "schema": SCHEMA})
    pid = p["id"]
    st.ok("manager", "POST", f"/api/projects/{pid}/members",
          json={"user_ids": [st.ids[n] for n in ("annotator", "annotator2", "reviewer")]})
    g = st.ok("manager", "POST", f"/api/projects/{pid}/guidelines",
              json={"markdown": "# Blobs\nLabel every blob."})
    for n in ("annotator", "annotator2", "reviewer"):
        st.ok(n, "POST", f"/api/projects/{pid}/guidelines/{g['version']}/ack")
    files = [("files", (f"blob{k}.png", png_bytes(blob_image(k)), "image/png"))
             for k in range(n_images)]
    up = st.ok("manager", "POST", f"/api/projects/{pid}/images", files=files)
    st.ok("manager", "POST", f"/api/projects/{pid}/assign",
          json={"mode": "manual", "user_ids": [st.ids["annotator"]], "task_ids": up["task_ids"]})
    return {"pid": pid, "tasks": up["task_ids"]}


def labels_body(st: Studio, tid: int, ids: np.ndarray, segments: list[dict], base: int | None = None):
    from segflow.studio.services.masks import encode_runs

    if base is None:
        base = st.ok("annotator", "GET", f"/api/tasks/{tid}")["version"]
    return {"base_version": base, "width": int(ids.shape[1]), "height": int(ids.shape[0]),
            "runs": encode_runs(ids), "segments": segments, "seconds": 12.5}
