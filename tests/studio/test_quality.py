"""Quality control in the studio (issue 9): gold labels, the qualification with feedback and
retries, honeypots an annotator cannot tell from real work, overlap with agreement and the
reviewer's merge, pre-label edit rates, the quality dashboard, and a task list whose SQL
statement count does not grow with the number of tasks."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import event

from tests.studio.conftest import blob_image, labels_body, png_bytes, setup_project

H, W = 96, 128


def discs(shift: int = 0, both: bool = True):
    """Two blobs (class 2, things) as a label map and its segments; ``shift`` moves them."""
    ids = np.zeros((H, W), np.int32)
    yy, xx = np.mgrid[:H, :W]
    ids[(yy - 40) ** 2 + (xx - 50 - shift) ** 2 <= 100] = 1
    segs = [{"id": 1, "category_id": 2}]
    if both:
        ids[(yy - 60) ** 2 + (xx - 90 - shift) ** 2 <= 64] = 2
        segs.append({"id": 2, "category_id": 2})
    return ids, segs


def wire(ids, segs) -> dict:
    from segflow.studio.services.masks import encode_runs

    return {"width": W, "height": H, "runs": encode_runs(ids), "segments": segs}


def paint(st, who, tid, ids, segs):
    body = labels_body(st, tid, ids, segs, base=st.ok(who, "GET", f"/api/tasks/{tid}")["version"])
    st.ok(who, "PUT", f"/api/tasks/{tid}/annotation", json=body)
    return st.ok(who, "POST", f"/api/tasks/{tid}/submit")


def image_of(st, tid) -> int:
    return st.ok("manager", "GET", f"/api/tasks/{tid}")["image"]["id"]


def gold_project(st, n=4, *, pass_mark=0.9, attempts=2, **extra):
    """Images 0 and 1 gold (imported labels) and in the qualification; returns ids."""
    ctx = setup_project(st, n)
    pid = ctx["pid"]
    gold = [image_of(st, t) for t in ctx["tasks"][:2]]
    for iid in gold:
        st.ok("manager", "POST", f"/api/projects/{pid}/gold",
              json={"image_id": iid, "labels": wire(*discs())})
    st.ok("manager", "PUT", f"/api/projects/{pid}/quality/settings", json={
        "qualification": {"image_ids": gold, "metric": "pq", "pass_mark": pass_mark,
                          "attempts": attempts}, **extra})
    return {**ctx, "gold": gold}


def qualify(st, pid, who, ids, segs) -> dict:
    """One attempt: every qualification task painted with ``ids``; the last feedback."""
    fb = None
    while True:
        t = st.ok(who, "GET", f"/api/projects/{pid}/next-task")
        if not t["qualification"]:
            return fb
        fb = paint(st, who, t["id"], ids, segs)["feedback"]
        if fb["result"] is not None:
            return fb


def test_qualification_fail_feedback_retry_pass_then_real_work(studio):
    st = studio
    ctx = gold_project(st)
    pid = ctx["pid"]
    # the first annotator has real tasks but no qualification: they cannot work on them
    real = ctx["tasks"][2]
    r = st.call("annotator", "PUT", f"/api/tasks/{real}/annotation",
                json=labels_body(st, real, *discs(), base=0))
    assert r.status_code == 403 and "qualification" in r.json()["detail"]
    # nor can a manager hand real work to someone unqualified
    r = st.call("manager", "POST", f"/api/projects/{pid}/assign", json={
        "mode": "manual", "user_ids": [st.ids["annotator2"]], "task_ids": [ctx["tasks"][3]]})
    assert r.status_code == 400 and "qualification" in r.json()["detail"]

    t = st.ok("annotator2", "GET", f"/api/projects/{pid}/next-task")
    assert t["qualification"] and t["image"]["id"] in ctx["gold"]
    # labels the gold images would give away are nowhere: the task starts empty
    assert st.ok("annotator2", "GET", f"/api/tasks/{t['id']}/annotation")["runs"] == [0, H * W]
    bad = discs(shift=12, both=False)
    fb = paint(st, "annotator2", t["id"], *bad)["feedback"]
    assert fb["result"] is None and fb["tasks_left"] == 1
    s = fb["score"]
    # the score is the library's (segflow.quality), computed here independently
    from segflow.annotations import LabelSchema
    from segflow.quality import score_against_reference
    from segflow.studio.services.masks import pack, to_panoptic
    from tests.studio.conftest import SCHEMA

    schema = LabelSchema.from_list(SCHEMA)
    pan = lambda ids, segs: to_panoptic(segs, pack(ids, segs).runs, H, W, schema)  # noqa: E731
    ref = score_against_reference(pan(*bad), pan(*discs()), schema, task="instance", metric="pq")
    assert s["score"] == pytest.approx(ref.score) and s["score"] < 0.9
    assert s["detail"]["pixels"]["missed"] == ref.pixels["missed"] > 0
    heat = st.call("annotator2", "GET", s["heatmap"])
    assert heat.status_code == 200 and heat.content == ref.heatmap_png
    assert st.call("annotator", "GET", s["heatmap"]).status_code == 404  # someone else's
    fb = qualify(st, pid, "annotator2", *bad)
    assert fb["result"] == {"score": pytest.approx(ref.score), "passed": False,
                            "status": "pending", "attempts_left": 1}
    # retry: a second attempt, painted well
    fb = qualify(st, pid, "annotator2", *discs())
    assert fb["attempt"] == 2 and fb["result"]["passed"] and fb["result"]["score"] == 1.0
    # then real work: the project hands out its unassigned tasks on demand
    up = st.ok("manager", "POST", f"/api/projects/{pid}/images",
               files=[("files", ("new.png", png_bytes(blob_image(77)), "image/png"))])
    t = st.ok("annotator2", "GET", f"/api/projects/{pid}/next-task")
    assert not t["qualification"] and t["id"] == up["task_ids"][0]
    assert t["assignee"] == "annotator2"
    mine = st.ok("annotator2", "GET", f"/api/projects/{pid}/qualification")
    assert [m["status"] for m in mine] == ["passed"] and len(mine[0]["scores"]) == 4
    assert mine[0]["attempt"] == 2 and mine[0]["next_attempt"] == 3
    # managers see every attempt of everyone
    allq = {q["username"]: q for q in st.ok("manager", "GET",
                                            f"/api/projects/{pid}/qualification")}
    assert allq["annotator2"]["attempt"] == 2 and allq["annotator"]["status"] == "pending"


def test_attempts_run_out_and_a_manager_lets_them_retry(studio):
    st = studio
    ctx = gold_project(st, 2, attempts=1)
    pid = ctx["pid"]
    fb = qualify(st, pid, "annotator2", *discs(shift=20, both=False))
    assert fb["result"]["status"] == "failed" and fb["result"]["attempts_left"] == 0
    r = st.call("annotator2", "GET", f"/api/projects/{pid}/next-task")
    assert r.status_code == 403 and "attempts" in r.json()["detail"]
    uid = st.ids["annotator2"]
    st.ok("manager", "PUT", f"/api/projects/{pid}/qualification/{uid}", json={"status": "paused"})
    r = st.call("annotator2", "GET", f"/api/projects/{pid}/next-task")
    assert r.status_code == 403 and "paused" in r.json()["detail"]
    q = st.ok("manager", "PUT", f"/api/projects/{pid}/qualification/{uid}",
              json={"status": "pending"})
    assert q["status"] == "pending" and q["attempt"] == 0
    assert st.ok("annotator2", "GET", f"/api/projects/{pid}/next-task")["qualification"]
    for body, code in (({"status": "gone"}, 422), ({"status": "passed", "x": 1}, 422)):
        assert st.call("manager", "PUT", f"/api/projects/{pid}/qualification/{uid}",
                       json=body).status_code == code
    assert st.call("manager", "PUT", f"/api/projects/{pid}/qualification/{st.ids['reviewer']}",
                   json={"status": "paused"}).status_code == 404
    assert st.call("manager", "PUT", f"/api/projects/{pid}/qualification/{2**63}",
                   json={"status": "paused"}).status_code == 422


def test_honeypots_look_like_real_tasks_and_are_scored(studio):
    st = studio
    ctx = gold_project(st, 5, pass_mark=0.5, honeypot_rate=0.5)
    pid = ctx["pid"]
    # a third gold image, outside the qualification: the honeypot
    hp_image = image_of(st, ctx["tasks"][4])
    st.ok("manager", "POST", f"/api/projects/{pid}/gold",
          json={"image_id": hp_image, "labels": wire(*discs())})
    qualify(st, pid, "annotator2", *discs())
    st.ok("manager", "POST", f"/api/projects/{pid}/assign", json={
        "mode": "manual", "user_ids": [st.ids["annotator2"]], "task_ids": [ctx["tasks"][3]]})
    seen = []
    for _ in range(2):
        t = st.ok("annotator2", "GET", f"/api/projects/{pid}/next-task")
        seen.append(t)
        out = paint(st, "annotator2", t["id"], *discs(shift=3))
        assert "feedback" not in out and out["state"] == "submitted"
    real, hp = seen
    assert hp["image"]["id"] == hp_image and real["id"] == ctx["tasks"][3]
    # nothing in the API tells them apart: same keys, same kinds of values
    assert real.keys() == hp.keys() and not hp["qualification"]
    for k in ("state", "assignee", "reviewer", "untouched_prelabel", "version"):
        assert hp[k] == real[k] or k == "version"
    listed = {t["id"]: t for t in st.ok("annotator2", "GET", f"/api/projects/{pid}/tasks")}
    assert listed[hp["id"]].keys() == listed[real["id"]].keys()
    # gold labels and the gold list are out of an annotator's reach
    for url in (f"/api/projects/{pid}/gold", f"/api/projects/{pid}/quality/settings",
                f"/api/projects/{pid}/quality", f"/api/projects/{pid}/quality.png"):
        assert st.call("annotator2", "GET", url).status_code in (403, 404), url
    ann = st.ok("annotator2", "GET", f"/api/tasks/{hp['id']}/annotation")
    assert ann["runs"] != wire(*discs())["runs"]  # their own labels, not the reference
    # scored silently, visible to the manager
    d = st.ok("manager", "GET", f"/api/projects/{pid}/quality")
    me = next(a for a in d["annotators"] if a["username"] == "annotator2")
    assert len(me["honeypots"]) == 1 and me["honeypots"][0]["task_id"] == hp["id"]
    assert 0 < me["honeypots"][0]["score"] < 1
    mine = st.ok("annotator2", "GET", f"/api/projects/{pid}/qualification")[0]
    assert {s["kind"] for s in mine["scores"]} == {"qualification"}
    # and the honeypot is not a reviewer's work
    queue = st.ok("reviewer", "GET", f"/api/projects/{pid}/review-queue")
    assert hp["id"] not in {t["id"] for t in queue} and real["id"] in {t["id"] for t in queue}


def test_overlap_agreement_flag_and_merge(studio):
    st = studio
    ctx = setup_project(st, 1)
    pid = ctx["pid"]
    st.ok("manager", "PUT", f"/api/projects/{pid}/quality/settings",
          json={"overlap": {"rate": 1.0, "k": 2, "threshold": 0.9}})
    up = st.ok("manager", "POST", f"/api/projects/{pid}/images",
               files=[("files", ("o.png", png_bytes(blob_image(5)), "image/png"))])
    out = st.ok("manager", "POST", f"/api/projects/{pid}/assign", json={"mode": "balanced"})
    assert out == {"assigned": 1, "overlap": 1}
    tid = up["task_ids"][0]
    img = st.ok("manager", "GET", f"/api/tasks/{tid}")["image"]["id"]
    group = {t["assignee"]: t for t in st.ok("manager", "GET", f"/api/projects/{pid}/tasks")
             if t["image"]["id"] == img}
    assert group.keys() == {"annotator", "annotator2"}  # k = 2 annotators, independently
    t1, t2 = group["annotator2"], group["annotator"]  # balanced: the image's task to annotator2
    assert t1["id"] == tid
    a, b = discs(), discs(shift=6, both=False)
    paint(st, "annotator2", t1["id"], *a)
    assert st.ok("reviewer", "GET", f"/api/tasks/{tid}/agreement")["status"] == "waiting"
    r = st.call("reviewer", "POST", f"/api/tasks/{tid}/resolve", json={"method": "majority"})
    assert r.status_code == 409 and "not submitted" in r.json()["detail"]
    paint(st, "annotator", t2["id"], *b)
    ag = st.ok("reviewer", "GET", f"/api/tasks/{tid}/agreement")
    assert ag["status"] == "scored" and ag["flagged"]
    # the figure is the library's mean pairwise mIoU (void pixels count against the classes)
    from segflow.metrics.agreement import AgreementEvaluator

    def cat(ids):
        return np.where(ids > 0, 2, 3).astype(np.uint8)  # blob 2, unlabelled = void 3

    report = np.array([False, True, True, False])
    want = AgreementEvaluator(2, 4, report=report).update([cat(a[0]), cat(b[0])])[(0, 1)]["miou"]
    assert ag["miou"] == pytest.approx(want)
    png = st.call("reviewer", "GET", ag["heatmap"])
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert st.call("annotator", "GET", f"/api/tasks/{tid}/agreement").status_code in (403, 404)
    # bad decisions
    for body, code in (({"method": "pick"}, 422), ({"method": "pick", "task_id": 99999}, 422),
                       ({"method": "vote"}, 422), ({"method": "pick", "task_id": 2**63}, 422)):
        assert st.call("reviewer", "POST", f"/api/tasks/{tid}/resolve", json=body).status_code == code
    assert st.call("reviewer", "POST", f"/api/tasks/{t2['id']}/resolve",
                   json={"method": "majority"}).status_code == 409  # not the image's task
    assert st.call("reviewer", "POST", f"/api/tasks/{t2['id']}/review",
                   json={"decision": "accept"}).status_code == 409
    done = st.ok("reviewer", "POST", f"/api/tasks/{tid}/resolve", json={"method": "majority"})
    assert done["state"] == "accepted" and done["reviewer"] == "reviewer"
    hist = st.ok("manager", "GET", f"/api/tasks/{tid}/history")
    assert hist[-1]["kind"] == "resolve" and hist[-1]["author"] == "reviewer"
    assert st.ok("manager", "GET", f"/api/tasks/{t2['id']}")["state"] == "accepted"
    d = st.ok("manager", "GET", f"/api/projects/{pid}/quality")
    people = {p["username"]: p for p in d["annotators"]}
    assert people["annotator"]["agreement_mean"] == pytest.approx(want)
    # the merge is the library's consensus of the two versions
    from segflow.annotations import LabelSchema
    from segflow.metrics.consensus import panoptic_consensus
    from segflow.studio.services.masks import decode_runs, pack, to_panoptic
    from tests.studio.conftest import SCHEMA

    schema = LabelSchema.from_list(SCHEMA)
    pans = [to_panoptic(s_, pack(i_, s_).runs, H, W, schema) for i_, s_ in (a, b)]
    ref = panoptic_consensus(pans, schema, method="majority").category_map(3)
    got = st.ok("manager", "GET", f"/api/tasks/{tid}/annotation")
    gmap = decode_runs(got["runs"], H, W)
    cats = {s_["id"]: s_["category_id"] for s_ in got["segments"]}
    gcat = np.vectorize(lambda v: cats.get(v, 3))(gmap)
    assert np.array_equal(gcat, ref)
    for who, (ids_, _) in (("annotator2", a), ("annotator", b)):
        changed = np.mean(np.where(ids_ > 0, 2, 3) != ref)
        assert people[who]["reviewer_edit_rate"] == pytest.approx(changed)
    assert d["overlap_flags"] == [{"task_id": tid, "miou": pytest.approx(want)}]
    x = st.ok("manager", "POST", f"/api/projects/{pid}/export?wait=60", json={"format": "coco"})
    assert x["n_images"] == 1  # the image once, not once per annotator


def test_prelabel_edit_rate_per_source(studio):
    st = studio
    ctx = setup_project(st, 1)
    pid, tid = ctx["pid"], ctx["tasks"][0]
    cfg = st.ok("manager", "PUT", f"/api/projects/{pid}/prelabel?wait=60",
                json={"mode": "pipeline", "pipeline": "auto", "class_id": 2})["prelabel"]
    pre = st.ok("annotator", "GET", f"/api/tasks/{tid}/annotation")
    assert pre["kind"] == "prelabel"
    from segflow.quality import prelabel_edit_rate
    from segflow.studio.services.masks import decode_runs

    ids = decode_runs(pre["runs"], H, W).copy()
    ids[:10, :] = 0  # the annotator erases the top rows and adds an object
    nxt = max(s["id"] for s in pre["segments"]) + 1
    ids[80:90, 5:20] = nxt
    segs = [*pre["segments"], {"id": nxt, "category_id": 2}]
    paint(st, "annotator", tid, ids, segs)
    st.ok("reviewer", "POST", f"/api/tasks/{tid}/review", json={"decision": "accept"})
    d = st.ok("manager", "GET", f"/api/projects/{pid}/quality")
    [row] = d["prelabels"]
    before = np.where(decode_runs(pre["runs"], H, W) > 0, 2, 3)
    after = np.where(ids > 0, 2, 3)
    assert row["source"] == f"pipeline:{cfg['pipeline']}" and row["tasks"] == 1
    assert row["edit_rate_mean"] == pytest.approx(prelabel_edit_rate(before, after))
    assert row["objects_added"] == 1
    inc = (before == 2) | (after == 2)
    assert row["per_class"] == {"blob": pytest.approx(((before != after) & inc).sum() / inc.sum())}
    assert st.call("manager", "GET", f"/api/projects/{pid}/quality.png").content[:4] == b"\x89PNG"


def test_bad_quality_input(studio):
    st = studio
    ctx = setup_project(st, 1)
    pid, tid = ctx["pid"], ctx["tasks"][0]
    iid = image_of(st, tid)
    url = f"/api/projects/{pid}/quality/settings"
    for body, word in (
        ({"qualification": {"image_ids": [iid]}}, "no gold"),
        ({"qualification": {"image_ids": [2**63]}}, None),
        ('{"qualification": {"pass_mark": NaN}}', None),
        ('{"honeypot_rate": Infinity}', None),
        ({"qualification": {"pass_mark": 2}}, None),
        ({"qualification": {"attempts": 0}}, None),
        ({"honeypot_rate": -0.1}, None),
        ({"overlap": {"k": 1}}, None),
        ({"overlap": {"rate": "lots"}}, None),
        ({"surprise": 1}, None),
    ):
        kw = {"content": body, "headers": {**st.as_("manager"), "content-type":
                                           "application/json"}} if isinstance(body, str) else \
            {"json": body, "headers": st.as_("manager")}
        r = st.client.put(url, **kw)
        assert r.status_code == 422, (body, r.text)
        assert word is None or word in r.json()["detail"]
    sem = st.ok("manager", "POST", "/api/projects", json={
        "name": "s", "task_type": "semantic", "schema": [{"id": 1, "name": "a"}]})["id"]
    r = st.call("manager", "PUT", f"/api/projects/{sem}/quality/settings",
                json={"qualification": {"metric": "pq"}})
    assert r.status_code == 422 and "semantic" in r.json()["detail"]
    g = f"/api/projects/{pid}/gold"
    for body, code in (({"image_id": iid}, 422),  # neither task nor labels
                       ({"image_id": iid, "task_id": tid, "labels": wire(*discs())}, 422),
                       ({"image_id": iid, "task_id": tid}, 409),  # not accepted
                       ({"image_id": 99999, "labels": wire(*discs())}, 404),
                       ({"image_id": iid, "labels": {**wire(*discs()), "width": 5}}, 422),
                       ({"image_id": iid, "labels": {**wire(*discs()), "runs": [1, 2**63]}}, 422),
                       ({"image_id": iid, "labels": {**wire(*discs()), "segments": []}}, 422),
                       ({"image_id": iid, "labels": wire(np.zeros((H, W), np.int32), [])}, 422)):
        r = st.call("manager", "POST", g, json=body)
        assert r.status_code == code, (body, r.text)
        assert r.json()["detail"]
    st.ok("manager", "POST", g, json={"image_id": iid, "labels": wire(*discs())})
    st.ok("manager", "PUT", url, json={"qualification": {"image_ids": [iid]}})
    assert st.call("manager", "DELETE", f"{g}/{iid}").status_code == 409  # in use
    assert st.call("manager", "DELETE", f"{g}/99999").status_code == 404
    st.ok("manager", "PUT", url, json={})
    st.ok("manager", "DELETE", f"{g}/{iid}")
    assert st.ok("manager", "GET", g) == []
    assert st.call("manager", "GET", "/api/quality/scores/99999/heatmap.png").status_code == 404
    assert st.call("manager", "GET", f"/api/tasks/{tid}/agreement.png").status_code == 404
    assert st.ok("manager", "GET", f"/api/tasks/{tid}/agreement")["status"] == "none"


def test_task_list_takes_a_constant_number_of_statements(studio):
    """The task list reads the tasks, their images and their people in a fixed number of SQL
    statements: 1,000 tasks cost what 10 do (it was one query per task and per person)."""
    from segflow.studio.tables import Image, Task

    st = studio
    ctx = setup_project(st, 1)
    pid = ctx["pid"]
    engine = st.app.state.engine

    def add(n, start):
        with st.app.state.sessions() as s:
            imgs = [Image(project_id=pid, sha256=f"{start + k:064x}", ext="png",
                          filename=f"f{start + k}.png", width=W, height=H) for k in range(n)]
            s.add_all(imgs)
            s.flush()
            s.add_all([Task(project_id=pid, image_id=i.id, state="assigned",
                            assignee_id=st.ids["annotator" if k % 2 else "annotator2"],
                            reviewer_id=st.ids["reviewer"]) for k, i in enumerate(imgs)])
            s.commit()

    def count(who):
        n = [0]

        def seen(*_):
            n[0] += 1

        event.listen(engine, "before_cursor_execute", seen)
        try:
            tasks = st.ok(who, "GET", f"/api/projects/{pid}/tasks")
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        return n[0], tasks

    add(10, 0)
    small, tasks = count("manager")
    assert len(tasks) == 11
    assert {t["assignee"] for t in tasks} == {"annotator", "annotator2"}
    assert {t["reviewer"] for t in tasks} == {"reviewer", None}
    add(990, 10)
    big, tasks = count("manager")
    assert len(tasks) == 1001 and big == small, (small, big)
    assert small <= 12


def test_reviewer_fixes_then_accepts_as_their_own_version(studio):
    st = studio
    ctx = setup_project(st, 1)
    pid, tid = ctx["pid"], ctx["tasks"][0]
    ids, segs = discs()
    paint(st, "annotator", tid, ids, segs)
    fixed = ids.copy()
    fixed[40:50, 60:70] = 1  # a few pixels the annotator missed
    body = labels_body(st, tid, fixed, segs, base=1)
    for who, code in (("annotator", 409), ("annotator2", 404), ("reviewer", 200)):
        assert st.call(who, "PUT", f"/api/tasks/{tid}/annotation", json=body).status_code == code
    assert st.call("reviewer", "PUT", f"/api/tasks/{tid}/annotation",
                   json=body).status_code == 409  # base version 1 is stale now
    hist = st.ok("manager", "GET", f"/api/tasks/{tid}/history")
    assert [(h["kind"], h["author"]) for h in hist] == [("save", "annotator"), ("review", "reviewer")]
    done = st.ok("reviewer", "POST", f"/api/tasks/{tid}/review", json={"decision": "accept"})
    assert done["state"] == "accepted" and done["version"] == 2
    d = st.ok("manager", "GET", f"/api/projects/{pid}/quality")
    me = next(a for a in d["annotators"] if a["username"] == "annotator")
    changed = np.mean(np.where(ids > 0, 2, 3) != np.where(fixed > 0, 2, 3))
    assert me["reviewer_edit_rate"] == pytest.approx(changed) and changed > 0
    # a task not submitted is the annotator's alone
    other = _fresh_task(st, pid)
    r = st.call("reviewer", "PUT", f"/api/tasks/{other}/annotation",
                json=labels_body(st, other, ids, segs, base=0))
    assert r.status_code in (403, 404)


def _fresh_task(st, pid, who: str = "annotator") -> int:
    up = st.ok("manager", "POST", f"/api/projects/{pid}/images",
               files=[("files", ("fresh.png", png_bytes(blob_image(321)), "image/png"))])
    tid = up["task_ids"][0]
    st.ok("manager", "POST", f"/api/projects/{pid}/assign",
          json={"mode": "manual", "user_ids": [st.ids[who]], "task_ids": [tid]})
    return tid


def test_no_endpoint_gives_an_annotator_the_gold_labels(studio):
    """Every GET route of the app, with every id of the project filled in, as an annotator in
    the middle of their qualification: the reference labels appear in no answer, and the
    honeypot and a real task answer alike on every task route."""
    import itertools

    from tests.studio.test_api import app_routes

    st = studio
    ctx = gold_project(st, 4, pass_mark=0.5, honeypot_rate=0.5)
    pid = ctx["pid"]
    ref = wire(*discs(shift=2))  # a reference nobody paints: it can only leak
    hp_image = image_of(st, ctx["tasks"][3])
    for iid in (*ctx["gold"], hp_image):
        st.ok("manager", "POST", f"/api/projects/{pid}/gold", json={"image_id": iid, "labels": ref})
    qualify(st, pid, "annotator2", *discs(shift=3))  # passes (0.5) with feedback
    real = _fresh_task(st, pid, "annotator2")
    st.ok("annotator2", "GET", f"/api/projects/{pid}/next-task")  # adds the honeypot
    mine = st.ok("annotator2", "GET", f"/api/projects/{pid}/tasks")
    hp = next(t["id"] for t in mine if t["image"]["id"] == hp_image)
    tasks = [t["id"] for t in st.ok("manager", "GET", f"/api/projects/{pid}/tasks")]
    scores = [s["id"] for q in st.ok("manager", "GET", f"/api/projects/{pid}/qualification")
              for s in q["scores"]]
    values = {"pid": [pid], "tid": tasks, "iid": [*ctx["gold"], hp_image], "sid": scores,
              "uid": [st.ids["annotator2"]], "image_id": [*ctx["gold"], hp_image],
              "version": [1], "vid": [1], "jid": ["x"]}
    needle = ",".join(map(str, ref["runs"]))
    seen = 0
    for method, path in sorted(app_routes(st.app)):
        if method != "GET" or not path.startswith("/api/"):
            continue
        names = [p.split("}")[0] for p in path.split("{")[1:]]
        for combo in itertools.product(*(values.get(n, ["1"]) for n in names)):
            url = path
            for n, v in zip(names, combo):
                url = url.replace("{" + n + "}", str(v))
            if url.endswith("diff.png"):
                url += "?a=0&b=1"
            r = st.call("annotator2", "GET", url)
            assert r.status_code < 500, (url, r.text)
            seen += 1
            assert needle not in r.text, url
    assert seen > 50
    # the honeypot and a real task look alike on every task route
    for route in ("", "/annotation", "/history", "/comments", "/diff.png?a=0&b=1"):
        a = st.call("annotator2", "GET", f"/api/tasks/{hp}{route}")
        b = st.call("annotator2", "GET", f"/api/tasks/{real}{route}")
        assert a.status_code == b.status_code, route
        if a.headers["content-type"].startswith("application/json") and isinstance(a.json(), dict):
            assert a.json().keys() == b.json().keys(), route
    # the needle is found where labels are served: the annotator's own, painted as the reference
    st.ok("annotator2", "PUT", f"/api/tasks/{real}/annotation",
          json=labels_body(st, real, *discs(shift=2), base=0))
    assert needle in st.call("annotator2", "GET", f"/api/tasks/{real}/annotation").text
