"""Studio REST API on SQLite and PostgreSQL: permissions, the review cycle, conflicts, bad input."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.studio.conftest import blob_image, labels_body, png_bytes, setup_project

ROLES = ("admin", "manager", "annotator", "reviewer", "outsider")
DENIED = (401, 403, 404)


def _disc_labels(h=96, w=128):
    ids = np.zeros((h, w), np.int32)
    yy, xx = np.mgrid[:h, :w]
    ids[(yy - 40) ** 2 + (xx - 50) ** 2 <= 100] = 1
    ids[(yy - 60) ** 2 + (xx - 90) ** 2 <= 64] = 2
    return ids, [{"id": 1, "category_id": 2}, {"id": 2, "category_id": 2}]


def _submitted_task(st, pid) -> int:
    """A fresh image, assigned to ``annotator``, labelled and submitted."""
    k = 100 + len(st.ids) + np.random.default_rng().integers(1 << 30)
    up = st.ok("manager", "POST", f"/api/projects/{pid}/images",
               files=[("files", (f"x{k}.png", png_bytes(blob_image(int(k))), "image/png"))])
    tid = up["task_ids"][0]
    st.ok("manager", "POST", f"/api/projects/{pid}/assign",
          json={"mode": "manual", "user_ids": [st.ids["annotator"]], "task_ids": [tid]})
    ids, segs = _disc_labels()
    st.ok("annotator", "PUT", f"/api/tasks/{tid}/annotation", json=labels_body(st, tid, ids, segs))
    st.ok("annotator", "POST", f"/api/tasks/{tid}/submit")
    return tid


def _assigned_task(st, pid) -> int:
    k = 10_000 + np.random.default_rng().integers(1 << 30)
    up = st.ok("manager", "POST", f"/api/projects/{pid}/images",
               files=[("files", (f"y{k}.png", png_bytes(blob_image(int(k))), "image/png"))])
    tid = up["task_ids"][0]
    st.ok("manager", "POST", f"/api/projects/{pid}/assign",
          json={"mode": "manual", "user_ids": [st.ids["annotator"]], "task_ids": [tid]})
    return tid


# (name, allowed roles, request builder(st, ctx, role) -> (method, url, kwargs))
MATRIX = [
    ("list users", {"admin", "manager"}, lambda st, c, r: ("GET", "/api/users", {})),
    ("create user", {"admin"}, lambda st, c, r: (
        "POST", "/api/users", {"json": {"username": f"new-{r}", "password": "longenough1",
                                        "role": "annotator"}})),
    ("create project", {"admin", "manager"}, lambda st, c, r: (
        "POST", "/api/projects", {"json": {"name": "p", "schema": [{"id": 1, "name": "a"}]}})),
    ("read project", {"admin", "manager", "annotator", "reviewer"},
     lambda st, c, r: ("GET", f"/api/projects/{c['pid']}", {})),
    ("edit brief", {"admin", "manager"}, lambda st, c, r: (
        "PUT", f"/api/projects/{c['pid']}/brief",
        {"json": {"name": "blobs", "task_type": "instance", "schema": c["schema"]}})),
    ("add members", {"admin", "manager"}, lambda st, c, r: (
        "POST", f"/api/projects/{c['pid']}/members", {"json": {"user_ids": [st.ids["annotator2"]]}})),
    ("publish guidelines", {"admin", "manager"}, lambda st, c, r: (
        "POST", f"/api/projects/{c['pid']}/guidelines", {"json": {"markdown": f"v by {r}"}})),
    ("read guidelines", {"admin", "manager", "annotator", "reviewer"},
     lambda st, c, r: ("GET", f"/api/projects/{c['pid']}/guidelines", {})),
    ("upload images", {"admin", "manager"}, lambda st, c, r: (
        "POST", f"/api/projects/{c['pid']}/images",
        {"files": [("files", (f"{r}.png", png_bytes(blob_image(hash(r) % 1000 + 7)), "image/png"))]})),
    ("import server folder", {"admin"}, lambda st, c, r: (
        "POST", f"/api/projects/{c['pid']}/import", {"json": {"path": c["folder"]}})),
    ("set pre-labels", {"admin", "manager"}, lambda st, c, r: (
        "PUT", f"/api/projects/{c['pid']}/prelabel", {"json": {"mode": "none"}})),
    ("assign", {"admin", "manager"}, lambda st, c, r: (
        "POST", f"/api/projects/{c['pid']}/assign", {"json": {"mode": "balanced"}})),
    ("list tasks", {"admin", "manager", "annotator", "reviewer"},
     lambda st, c, r: ("GET", f"/api/projects/{c['pid']}/tasks", {})),
    ("next task", {"annotator"}, lambda st, c, r: ("GET", f"/api/projects/{c['pid']}/next-task", {})),
    ("read assigned task", {"admin", "manager", "annotator"},
     lambda st, c, r: ("GET", f"/api/tasks/{c['assigned']}", {})),
    ("read labels", {"admin", "manager", "annotator"},
     lambda st, c, r: ("GET", f"/api/tasks/{c['assigned']}/annotation", {})),
    ("read image", {"admin", "manager", "annotator", "reviewer"},
     lambda st, c, r: ("GET", f"/api/images/{c['image']}", {})),
    ("save labels", {"annotator"}, lambda st, c, r: (
        "PUT", f"/api/tasks/{c['assigned']}/annotation",
        {"json": labels_body(st, c["assigned"], *_disc_labels(),
                             base=st.ok("admin", "GET", f"/api/tasks/{c['assigned']}")["version"])})),
    ("assist", {"annotator"}, lambda st, c, r: (
        "POST", f"/api/tasks/{c['assigned']}/assist", {"json": {"tool": "threshold", "point": [50, 40]}})),
    ("submit", {"annotator"}, lambda st, c, r: ("POST", f"/api/tasks/{c['fresh'][r]}/submit", {})),
    ("review queue", {"admin", "manager", "reviewer"},
     lambda st, c, r: ("GET", f"/api/projects/{c['pid']}/review-queue", {})),
    ("review", {"admin", "manager", "reviewer"}, lambda st, c, r: (
        "POST", f"/api/tasks/{c['submitted'][r]}/review", {"json": {"decision": "accept"}})),
    ("history of own task", {"admin", "manager", "annotator", "reviewer"},
     lambda st, c, r: ("GET", f"/api/tasks/{c['submitted']['admin']}/history", {})),
    ("dashboard", {"admin", "manager", "reviewer"},
     lambda st, c, r: ("GET", f"/api/projects/{c['pid']}/dashboard", {})),
    ("export", {"admin", "manager"}, lambda st, c, r: (
        "POST", f"/api/projects/{c['pid']}/export", {"json": {"format": "coco"}})),
]


def test_permission_matrix(studio, tmp_path):
    """Every role against every endpoint: allowed means the permission checks passed (the
    request may still be refused for its content), denied means 401/403/404."""
    st = studio
    ctx = setup_project(st, 2)
    pid = ctx["pid"]
    folder = tmp_path / "server-folder"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(blob_image(999)))
    ctx.update(folder=str(folder), schema=st.ok("admin", "GET", f"/api/projects/{pid}")["schema"],
               assigned=ctx["tasks"][0],
               image=st.ok("admin", "GET", f"/api/tasks/{ctx['tasks'][0]}")["image"]["id"])
    ctx["submitted"] = {r: _submitted_task(st, pid) for r in ROLES}
    ctx["fresh"] = {}
    for r in ROLES:
        tid = _assigned_task(st, pid)
        ids, segs = _disc_labels()
        st.ok("annotator", "PUT", f"/api/tasks/{tid}/annotation", json=labels_body(st, tid, ids, segs))
        ctx["fresh"][r] = tid
    results = {}
    for name, allowed, build in MATRIX:
        for role in ROLES:
            # a newly published guideline must be acknowledged before annotating again
            gv = st.ok("admin", "GET", f"/api/projects/{pid}")["guideline_version"]
            st.ok("annotator", "POST", f"/api/projects/{pid}/guidelines/{gv}/ack")
            method, url, kw = build(st, ctx, role)
            code = st.call(role, method, url, **kw).status_code
            results[(name, role)] = code
            if role in allowed:
                assert code not in DENIED, f"{name}: {role} should be allowed, got {code}"
                assert code < 500
            else:
                assert code in DENIED, f"{name}: {role} should be denied, got {code}"
            anon = st.call(None, method, url, **kw).status_code
            assert anon == 401, f"{name}: no credentials must give 401, got {anon}"
    assert len(results) == len(MATRIX) * len(ROLES)


def test_cookie_session_needs_csrf(studio):
    st = studio
    c = st.client
    r = c.post("/api/auth/login", json={"username": "admin", "password": "admin-pw-123"})
    assert r.status_code == 200
    body = {"name": "p", "schema": [{"id": 1, "name": "a"}]}
    assert c.post("/api/projects", json=body).status_code == 403  # cookie without CSRF header
    assert c.post("/api/projects", json=body,
                  headers={"X-CSRF-Token": "forged"}).status_code == 403
    ok = c.post("/api/projects", json=body, headers={"X-CSRF-Token": c.cookies["segflow_csrf"]})
    assert ok.status_code == 201
    assert c.get("/api/me").json()["username"] == "admin"  # safe methods need no token
    bad = c.post("/api/auth/login", json={"username": "admin", "password": "wrong"})
    assert bad.status_code == 401


def test_review_cycle_history_and_dashboard(studio):
    st = studio
    ctx = setup_project(st, 2)
    pid, tid = ctx["pid"], ctx["tasks"][0]
    ids, segs = _disc_labels()
    st.ok("annotator", "PUT", f"/api/tasks/{tid}/annotation", json=labels_body(st, tid, ids, segs))
    st.ok("annotator", "POST", f"/api/tasks/{tid}/submit")
    assert st.call("annotator", "POST", f"/api/tasks/{tid}/review",
                   json={"decision": "accept"}).status_code == 403  # nobody reviews own work
    assert st.call("reviewer", "POST", f"/api/tasks/{tid}/review",
                   json={"decision": "reject"}).status_code == 422  # rejecting needs a comment
    st.ok("reviewer", "POST", f"/api/tasks/{tid}/review", json={
        "decision": "reject", "comments": [{"text": "missed the <b>top</b> blob", "x": 50, "y": 20}]})
    nxt = st.ok("annotator", "GET", f"/api/projects/{pid}/next-task")
    assert nxt["id"] == tid and nxt["state"] == "rejected"  # back to its annotator first
    com = st.ok("annotator", "GET", f"/api/tasks/{tid}/comments")
    assert com[0]["text"] == "missed the <b>top</b> blob" and (com[0]["x"], com[0]["y"]) == (50, 20)
    ids2 = ids.copy()
    ids2[10:20, 40:60] = 3
    segs2 = [*segs, {"id": 3, "category_id": 2}]
    st.ok("annotator", "PUT", f"/api/tasks/{tid}/annotation", json=labels_body(st, tid, ids2, segs2))
    st.ok("annotator", "POST", f"/api/tasks/{tid}/submit")
    st.ok("reviewer", "POST", f"/api/tasks/{tid}/review", json={"decision": "accept"})
    hist = st.ok("reviewer", "GET", f"/api/tasks/{tid}/history")
    assert [h["version"] for h in hist] == [1, 2] and [h["segments"] for h in hist] == [2, 3]
    old = st.ok("reviewer", "GET", f"/api/tasks/{tid}/annotation?version=1")
    from segflow.studio.services.masks import decode_runs

    assert (decode_runs(old["runs"], 96, 128) == ids).all()  # full history kept exactly
    diff = st.call("reviewer", "GET", f"/api/tasks/{tid}/diff.png?a=1&b=2")
    assert diff.status_code == 200 and diff.content[:4] == b"\x89PNG"
    import io

    from PIL import Image

    d = np.asarray(Image.open(io.BytesIO(diff.content)).convert("RGB"))
    added = (d[..., 0] == 0) & (d[..., 1] == 220) & (d[..., 2] == 0)
    assert (added == (ids2 == 3)).all()  # green exactly where v2 added pixels
    dash = st.ok("manager", "GET", f"/api/projects/{pid}/dashboard")
    assert dash["states"]["accepted"] == 1 and dash["states"]["assigned"] == 1
    assert dash["rejection_rate"] == pytest.approx(0.5)
    assert dash["mean_seconds_per_task"] == pytest.approx(25.0)
    assert sum(dash["throughput"]["annotator"].values()) == 2
    png = st.call("manager", "GET", f"/api/projects/{pid}/dashboard.png")
    assert png.content[:4] == b"\x89PNG"


def test_conflicting_saves_give_409_and_lose_nothing(studio):
    st = studio
    ctx = setup_project(st, 1)
    tid = ctx["tasks"][0]
    ids, segs = _disc_labels()
    st.ok("annotator", "PUT", f"/api/tasks/{tid}/annotation", json=labels_body(st, tid, ids, segs, base=0))
    other = ids.copy()
    other[:] = 0
    r = st.call("annotator", "PUT", f"/api/tasks/{tid}/annotation",
                json=labels_body(st, tid, other, [], base=0))
    assert r.status_code == 409 and "conflict" in r.json()["detail"]
    got = st.ok("annotator", "GET", f"/api/tasks/{tid}/annotation")
    from segflow.studio.services.masks import decode_runs

    assert got["version"] == 1 and (decode_runs(got["runs"], 96, 128) == ids).all()
    # concurrent saves from the same base: exactly one wins
    codes = []
    bodies = [labels_body(st, tid, np.where(ids > 0, ids, 0) * (k % 2), segs if k % 2 else [], base=1)
              for k in range(6)]
    threads = [threading.Thread(target=lambda b=b: codes.append(
        st.call("annotator", "PUT", f"/api/tasks/{tid}/annotation", json=b).status_code))
        for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [409] * 5
    assert [h["version"] for h in st.ok("manager", "GET", f"/api/tasks/{tid}/history")] == [1, 2]


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b.update(runs=b["runs"][:-1]), "runs"),
    (lambda b: b.update(runs=[0, 5]), "runs"),
    (lambda b: b.update(segments=[{"id": 1, "category_id": 77}, {"id": 2, "category_id": 2}]),
     "category_id"),
    (lambda b: b.update(segments=[{"id": 1, "category_id": 2}]), "no entry in segments"),
    (lambda b: b.update(width=50), "width"),
    (lambda b: b.update(runs="not a list"), "runs"),
])
def test_malformed_masks_are_refused(studio, mutate, field):
    st = studio
    tid = setup_project(st, 1)["tasks"][0]
    body = labels_body(st, tid, *_disc_labels())
    mutate(body)
    r = st.call("annotator", "PUT", f"/api/tasks/{tid}/annotation", json=body)
    assert r.status_code == 422 and field in r.json()["detail"]
    assert st.ok("annotator", "GET", f"/api/tasks/{tid}")["version"] == 0  # nothing saved


def test_bad_uploads_and_names(studio, monkeypatch):
    st = studio
    pid = setup_project(st, 1)["pid"]
    r = st.call("manager", "POST", f"/api/projects/{pid}/images",
                files=[("files", ("notes.png", b"hello, not an image", "image/png"))])
    assert r.status_code == 400 and "notes.png" in r.json()["detail"]
    monkeypatch.setenv("SEGFLOW_MAX_PIXELS", "1000")
    r = st.call("manager", "POST", f"/api/projects/{pid}/images",
                files=[("files", ("big.png", png_bytes(blob_image(3)), "image/png"))])
    assert r.status_code == 400 and "big.png" in r.json()["detail"]
    monkeypatch.delenv("SEGFLOW_MAX_PIXELS")
    r = st.ok("manager", "POST", f"/api/projects/{pid}/images",
              files=[("files", ("../../etc/evil<script>.png", png_bytes(blob_image(5)), "image/png"))])
    t = st.ok("manager", "GET", f"/api/tasks/{r['task_ids'][0]}")
    assert t["image"]["filename"] == "evil_script_.png"
    data = st.app.state.data_dir
    assert not any("evil" in p.name for p in data.rglob("*"))  # stored by hash only
    # label names and guidelines are data, never markup
    bad = st.call("manager", "POST", "/api/projects", json={
        "name": "<script>alert(1)</script>", "schema": [{"id": 1, "name": "<img src=x onerror=alert(1)>"}]})
    assert bad.status_code == 201
    page = st.call("manager", "GET", f"/projects/{bad.json()['id']}")
    assert "<script>alert" not in page.text and "onerror" not in page.text
    g = st.ok("manager", "POST", f"/api/projects/{pid}/guidelines",
              json={"markdown": "hi <script>alert(1)</script>"})
    assert "<script>" not in g["html"] and "&lt;script&gt;" in g["html"]


def test_guidelines_gate_annotation_and_balanced_assignment(studio):
    st = studio
    ctx = setup_project(st, 1)
    pid = ctx["pid"]
    st.ok("manager", "POST", f"/api/projects/{pid}/guidelines", json={"markdown": "v2: new rule"})
    r = st.call("annotator", "GET", f"/api/projects/{pid}/next-task")
    assert r.status_code == 403 and "version 2" in r.json()["detail"]
    st.ok("annotator", "POST", f"/api/projects/{pid}/guidelines/2/ack")
    assert st.call("annotator", "GET", f"/api/projects/{pid}/next-task").status_code == 200
    files = [("files", (f"b{k}.png", png_bytes(blob_image(50 + k)), "image/png")) for k in range(7)]
    st.ok("manager", "POST", f"/api/projects/{pid}/images", files=files)
    assert st.ok("manager", "POST", f"/api/projects/{pid}/assign", json={"mode": "balanced"})["assigned"] == 7
    tasks = st.ok("manager", "GET", f"/api/projects/{pid}/tasks")
    open_ = [t["assignee"] for t in tasks if t["state"] == "assigned"]
    n1, n2 = open_.count("annotator"), open_.count("annotator2")
    assert n1 + n2 == 8 and abs(n1 - n2) <= 1
    mine = st.ok("annotator2", "GET", f"/api/projects/{pid}/tasks")
    assert {t["assignee"] for t in mine} == {"annotator2"}  # annotators see only their tasks


def test_prelabels_from_a_suggested_pipeline(studio):
    st = studio
    ctx = setup_project(st, 2)
    pid = ctx["pid"]
    r = st.ok("manager", "PUT", f"/api/projects/{pid}/prelabel?wait=60",
              json={"mode": "pipeline", "pipeline": "auto"})
    assert r["prelabel"]["pipeline"] and r["prelabel"]["reason"] and r["prelabelled"] == 2
    a = st.ok("annotator", "GET", f"/api/tasks/{ctx['tasks'][0]}/annotation")
    assert a["kind"] == "prelabel" and len(a["segments"]) >= 1
    from segflow.studio.services.masks import decode_runs

    got = decode_runs(a["runs"], 96, 128) > 0
    img = blob_image(0)
    truth = img[..., 0] > 100  # the discs
    assert (got & truth).sum() / (got | truth).sum() > 0.9
    bad = st.call("manager", "PUT", f"/api/projects/{pid}/prelabel?wait=60",
                  json={"mode": "pipeline", "pipeline": "no-such-pipeline"})
    assert bad.status_code == 400 and "no-such-pipeline" in bad.json()["detail"]


def test_assist_tools_return_regions(studio):
    st = studio
    tid = setup_project(st, 1)["tasks"][0]
    from segflow.studio.services.masks import decode_runs

    img = blob_image(0)
    truth = img[..., 0] > 100
    from skimage.measure import label

    lab = label(truth)
    y, x = np.argwhere(lab == 1)[len(np.argwhere(lab == 1)) // 2]
    for tool in ("threshold", "kmeans", "superpixel"):
        r = st.ok("annotator", "POST", f"/api/tasks/{tid}/assist",
                  json={"tool": tool, "point": [int(x), int(y)]})
        m = decode_runs(r["runs"], 96, 128).astype(bool)
        assert m[y, x] and r["pixels"] == m.sum()
        if tool != "superpixel":
            assert (m == (lab == 1)).mean() > 0.99, tool
    ys, xs = np.nonzero(lab == 1)
    box = [int(xs.min()) - 4, int(ys.min()) - 4, int(np.ptp(xs)) + 9, int(np.ptp(ys)) + 9]
    r = st.ok("annotator", "POST", f"/api/tasks/{tid}/assist", json={"tool": "grabcut", "box": box})
    m = decode_runs(r["runs"], 96, 128).astype(bool)
    assert (m & (lab == 1)).sum() / (m | (lab == 1)).sum() > 0.8
    r = st.call("annotator", "POST", f"/api/tasks/{tid}/assist",
                json={"tool": "threshold", "point": [500, 5]})
    assert r.status_code == 422 and "outside" in r.json()["detail"]


def test_dataset_import_review_export_round_trip(studio, tmp_path):
    """Labels imported from a COCO panoptic set, resaved unchanged, accepted and exported come
    back pixel for pixel; the export is a dataset version named by its content hash."""
    from segflow.formats import open_dataset
    from segflow.synth.export import export_synthetic
    from segflow.synth.retail import SCHEMA

    st = studio
    src = export_synthetic("retail", tmp_path / "src", n=2, seed=3, size=96, fmt="coco_panoptic",
                           progress=False)
    p = st.ok("admin", "POST", "/api/projects", json={
        "name": "retail", "task_type": "panoptic", "schema": SCHEMA.to_list()})
    pid = p["id"]
    st.ok("admin", "POST", f"/api/projects/{pid}/members",
          json={"user_ids": [st.ids["annotator"], st.ids["reviewer"]]})
    r = st.ok("admin", "POST", f"/api/projects/{pid}/import?wait=60", json={"path": str(src)})
    assert r == {"format": "coco_panoptic", "added": 2, "skipped_duplicates": 0, "failed": [],
                 "task_ids": r["task_ids"]} and len(r["task_ids"]) == 2
    st.ok("admin", "POST", f"/api/projects/{pid}/assign", json={"mode": "balanced"})
    for t in st.ok("annotator", "GET", f"/api/projects/{pid}/tasks"):
        a = st.ok("annotator", "GET", f"/api/tasks/{t['id']}/annotation")
        st.ok("annotator", "PUT", f"/api/tasks/{t['id']}/annotation", json={
            "base_version": a["version"], "width": a["width"], "height": a["height"],
            "runs": a["runs"], "segments": a["segments"]})
        st.ok("annotator", "POST", f"/api/tasks/{t['id']}/submit")
        st.ok("reviewer", "POST", f"/api/tasks/{t['id']}/review", json={"decision": "accept"})
    v1 = st.ok("admin", "POST", f"/api/projects/{pid}/export?wait=60", json={"format": "coco_panoptic"})
    v2 = st.ok("admin", "POST", f"/api/projects/{pid}/export?wait=60", json={"format": "coco_panoptic"})
    assert v1["content_hash"] == v2["content_hash"] and len(v1["content_hash"]) == 64
    from segflow.studio.tables import DatasetVersion

    with st.app.state.sessions() as s:
        out = s.get(DatasetVersion, v1["id"]).path
    a, b = open_dataset(src), open_dataset(out)
    assert len(a) == len(b) == 2
    for x, y in zip(a, b):
        assert (x.image() == y.image()).all()
        assert (x.panoptic.category_map() == y.panoptic.category_map()).all()
        assert len(x.panoptic.segments) == len(y.panoptic.segments)
    z = st.call("admin", "GET", v1["download"])
    assert z.status_code == 200 and z.content[:2] == b"PK"


def test_migrations_match_the_tables(studio):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from segflow.studio.tables import Base

    with studio.app.state.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_prelabels_from_a_trained_checkpoint(studio, tmp_path):
    from segflow.formats import open_dataset
    from segflow.predict.predictor import Predictor
    from segflow.synth.export import export_synthetic
    from segflow.synth.street import SCHEMA
    from segflow.train import parse_config
    from segflow.train.trainer import Trainer

    st = studio
    data = export_synthetic("street", tmp_path / "street", n=6, seed=4, size=64, progress=False)
    Trainer(parse_config({
        "name": "t", "out": str(tmp_path / "run"), "data": {"train": str(data), "val_fraction": 0.2},
        "model": {"name": "unet", "args": {"depth": 2, "base_width": 8}},
        "train": {"epochs": 2, "batch_size": 4}}), progress=False).fit()
    ck = tmp_path / "run" / "last.pt"
    pid = st.ok("admin", "POST", "/api/projects", json={
        "name": "street", "task_type": "panoptic", "schema": SCHEMA.to_list()})["id"]
    ds = open_dataset(data)
    files = [("files", (f"{k}.png", png_bytes(ds[k].image()), "image/png")) for k in range(2)]
    up = st.ok("admin", "POST", f"/api/projects/{pid}/images", files=files)
    st.ok("admin", "POST", f"/api/projects/{pid}/members", json={"user_ids": [st.ids["manager"]]})
    body = {"mode": "checkpoint", "checkpoint": str(ck)}
    r = st.call("manager", "PUT", f"/api/projects/{pid}/prelabel", json=body)
    assert r.status_code == 403  # a server path: admins only
    r = st.ok("admin", "PUT", f"/api/projects/{pid}/prelabel?wait=60", json=body)
    assert r["prelabelled"] == 2
    pred = Predictor(ck, device="cpu")
    from segflow.studio.services.masks import decode_runs

    for k, tid in enumerate(up["task_ids"]):
        a = st.ok("admin", "GET", f"/api/tasks/{tid}/annotation")
        ids = decode_runs(a["runs"], 64, 64)
        cat = np.zeros_like(ids)
        for s in a["segments"]:
            cat[ids == s["id"]] = s["category_id"]
        sem = pred.predict(ds[k].image())
        stuff = np.isin(sem, SCHEMA.stuff_ids)
        assert (cat[stuff] == sem[stuff]).all()  # stuff: the model's prediction exactly
        thing = np.isin(sem, SCHEMA.thing_ids)
        assert ((cat[thing] == sem[thing]) | (cat[thing] == 0)).all()  # things: split, tiny ones void
    bad = st.call("admin", "PUT", f"/api/projects/{pid}/prelabel?wait=60",
                  json={"mode": "checkpoint", "checkpoint": str(tmp_path / "nope.pt")})
    assert bad.status_code == 400 and "nope.pt" in bad.json()["detail"]


def test_openapi_documents_the_api(studio):
    spec = studio.client.get("/openapi.json").json()
    paths = spec["paths"]
    for p in ("/api/auth/login", "/api/auth/token", "/api/projects", "/api/projects/{pid}/images",
              "/api/projects/{pid}/import", "/api/projects/{pid}/prelabel", "/api/projects/{pid}/assign",
              "/api/tasks/{tid}/annotation", "/api/tasks/{tid}/review", "/api/tasks/{tid}/assist",
              "/api/projects/{pid}/export", "/api/projects/{pid}/dashboard"):
        assert p in paths, p
    assert "AnnotationIn" in spec["components"]["schemas"]
    assert "Content-Security-Policy" in studio.client.get("/login").headers
    assert studio.client.get("/docs").status_code == 200
