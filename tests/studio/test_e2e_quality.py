"""Quality control end to end in a real headless Chromium (issue 9): a manager marks gold
images and sets the qualification; an annotator who paints badly fails and sees the error map,
retries, paints well, passes and then receives real work, among which a honeypot is scored;
two annotators disagree on an overlap image and the reviewer merges them; the dashboard shows
the annotator's quality and the pre-label edits. Screenshots go to out/test-artifacts/e2e/;
with SEGFLOW_DOCS_SHOTS=DIR the README pictures are written there too
(docs/quality_screenshots.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.studio.conftest import SCHEMA, png_bytes
from tests.studio.test_e2e import (  # noqa: F401  (fixtures)
    CHROMIUM,
    browser,
    brush_stroke,
    login,
    scene,
    server,
    shot,
    to_screen,
    wait_js,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
H, W = 240, 320
PW = {n: f"{n}-Quartz-lantern-97" for n in ("mgr", "annie", "bob", "senior", "rev")}


def disc_labels():
    """The scene's disc, (230, 70) r=30, as one blob object: the gold reference."""
    from segflow.studio.services.masks import encode_runs

    yy, xx = np.mgrid[:H, :W]
    ids = ((yy - 70) ** 2 + (xx - 230) ** 2 <= 30 * 30).astype(np.int32)
    return encode_runs(ids), [{"id": 1, "category_id": 2}]


class Api:
    def __init__(self, base: str, user: str, password: str):
        import httpx

        self.c = httpx.Client(base_url=base, timeout=120)
        r = self.c.post("/api/auth/token", json={"username": user, "password": password})
        assert r.status_code == 200, r.text
        self.c.headers["Authorization"] = f"Bearer {r.json()['token']}"

    def __call__(self, method: str, url: str, **kw):
        r = self.c.request(method, url, **kw)
        assert r.status_code < 300, (method, url, r.status_code, r.text)
        return r.json()

    def label(self, tid: int, runs, segments):
        v = self("GET", f"/api/tasks/{tid}")["version"]
        self("PUT", f"/api/tasks/{tid}/annotation", json={
            "base_version": v, "width": W, "height": H, "runs": runs, "segments": segments})
        return self("POST", f"/api/tasks/{tid}/submit")


def clear_objects(page) -> None:
    while page.locator("#instances li").count():
        page.locator("#instances li").first.locator("button.del").click()


def otsu_disc(page) -> None:
    page.click("#labels li[data-category='2']")
    page.click("#new-instance")
    page.click("[data-tool=a-threshold]")
    page.mouse.click(*to_screen(page, 230, 70))
    wait_js(page, "() => document.getElementById('status').textContent.includes('pixels')")


def submit_to_feedback(page, base: str, pid: int) -> None:
    page.click("#submit")
    page.wait_for_url(f"{base}/projects/{pid}/quality")
    wait_js(page, "() => document.getElementById('quality').dataset.ready === '1'")


def open_next(page, base: str, pid: int) -> dict:
    page.goto(f"{base}/projects/{pid}/quality")
    wait_js(page, "() => document.getElementById('quality').dataset.ready === '1'")
    page.click("#q-continue")
    page.wait_for_url("**/edit")
    wait_js(page, "() => !!(window.studio && window.studio.ready)")
    return page.evaluate("window.studio.task")


def docs_shot(locator, name: str) -> None:
    out = os.environ.get("SEGFLOW_DOCS_SHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        locator.screenshot(path=str(Path(out) / name))


def test_qualification_honeypot_overlap_dashboard_in_chromium(server, browser, tmp_path):  # noqa: F811
    app, base = server
    root = Api(base, "root", "root-pass-1")
    ids = {}
    for name, role in (("mgr", "manager"), ("annie", "annotator"), ("bob", "annotator"),
                       ("senior", "annotator"), ("rev", "reviewer")):
        ids[name] = root("POST", "/api/users", json={"username": name, "password": PW[name],
                                                     "role": role})["id"]
    api = {n: Api(base, n, PW[n]) for n in PW}
    pid = api["mgr"]("POST", "/api/projects", json={"name": "Discs QC", "task_type": "instance",
                                                    "schema": SCHEMA})["id"]
    api["mgr"]("POST", f"/api/projects/{pid}/members",
               json={"user_ids": [ids[n] for n in ("annie", "bob", "senior", "rev")]})
    api["mgr"]("POST", f"/api/projects/{pid}/guidelines",
               json={"markdown": "# Discs\nPaint the bright disc, edge to edge."})
    for n in ("annie", "bob", "senior", "rev"):
        api[n]("POST", f"/api/projects/{pid}/guidelines/1/ack")
    files = [("files", (f"{name}.png", png_bytes(scene(k)), "image/png"))
             for k, name in enumerate(("gold0", "gold1", "gold2", "work0", "work1"))]
    tasks = api["mgr"]("POST", f"/api/projects/{pid}/images", files=files)["task_ids"]
    pre = api["mgr"]("PUT", f"/api/projects/{pid}/prelabel?wait=60",
                     json={"mode": "pipeline", "pipeline": "auto", "class_id": 2})
    assert pre["prelabelled"] == 5
    # a senior annotator labels the future gold images, a reviewer accepts them
    gold_tasks = tasks[:3]
    api["mgr"]("POST", f"/api/projects/{pid}/assign", json={
        "mode": "manual", "user_ids": [ids["senior"]], "task_ids": gold_tasks})
    for t in gold_tasks:
        api["senior"].label(t, *disc_labels())
        api["rev"]("POST", f"/api/tasks/{t}/review", json={"decision": "accept"})

    # ---- 1. the manager sets gold images, the qualification and the pass mark ---------------
    mgr = login(browser, base, "mgr", PW["mgr"])
    mgr.goto(f"{base}/projects/{pid}/quality")
    wait_js(mgr, "() => document.getElementById('quality').dataset.ready === '1'")
    for t in gold_tasks:
        mgr.select_option("#gold-task", str(t))
        mgr.click("#gold-add")
        wait_js(mgr, "t => !document.querySelector(`#gold-task option[value='${t}']`)", t)
    wait_js(mgr, "() => document.querySelectorAll('#gold-list li').length === 3")
    gold_images = [api["mgr"]("GET", f"/api/tasks/{t}")["image"]["id"] for t in gold_tasks]
    for iid in gold_images[:2]:  # two in the qualification; the third is a honeypot
        mgr.check(f".q-image[value='{iid}']")
    mgr.select_option("#q-metric", "pq")
    mgr.fill("#q-pass", "0.8")
    mgr.fill("#q-attempts-n", "3")
    mgr.fill("#q-honeypot", "0.5")
    mgr.fill("#q-overlap", "1")
    mgr.fill("#q-threshold", "0.9")
    mgr.click("#q-save")
    wait_js(mgr, "() => document.getElementById('flash').textContent.includes('settings saved')")
    cfg = api["mgr"]("GET", f"/api/projects/{pid}/quality/settings")
    assert cfg["qualification"]["image_ids"] == gold_images[:2]
    assert cfg["qualification"]["pass_mark"] == 0.8 and cfg["honeypot_rate"] == 0.5
    shot(mgr, "q01-manager-gold-and-settings")
    api["mgr"]("PUT", f"/api/projects/{pid}/qualification/{ids['bob']}", json={"status": "passed"})

    # ---- 2. annie fails, sees the error map, retries, passes, then gets real work ----------
    ann = login(browser, base, "annie", PW["annie"])
    for k in range(2):
        t = open_next(ann, base, pid)
        assert t["qualification"] and t["image"]["id"] in gold_images[:2]
        clear_objects(ann)
        ann.click("#labels li[data-category='2']")
        brush_stroke(ann, 12, [(x, 180) for x in range(40, 120, 5)])  # not the disc
        submit_to_feedback(ann, base, pid)
        wait_js(ann, "n => document.querySelectorAll('#q-attempts figure.heat img.over').length === n",
                k + 1)
    wait_js(ann, "() => document.getElementById('q-state').dataset.status === 'pending'")
    assert "attempt 2 of 3" in ann.inner_text("#q-state")  # the next one
    text = ann.inner_text("#q-attempts")
    assert "missed" in text and "over-painted" in text
    shot(ann, "q02-annotator-failed-with-error-map")
    docs_shot(ann.locator("#my-qualification"), "quality-feedback.png")
    for _ in range(2):
        t = open_next(ann, base, pid)
        assert t["qualification"]
        clear_objects(ann)
        otsu_disc(ann)
        submit_to_feedback(ann, base, pid)
    wait_js(ann, "() => document.getElementById('q-state').dataset.status === 'passed'")
    shot(ann, "q03-annotator-passed")
    real = open_next(ann, base, pid)
    assert not real["qualification"] and real["id"] == tasks[3]  # real work, pre-labelled
    assert ann.evaluate("window.studio.version") == 1
    ann.click("#labels li[data-category='2']")
    ann.click("#new-instance")
    brush_stroke(ann, 10, [(x, 200) for x in range(150, 200, 5)])  # an edit of the pre-labels
    ann.click("#submit")
    ann.wait_for_url(f"{base}/projects/{pid}")

    # ---- 3. a honeypot, served among the real tasks, is scored silently --------------------
    hp = open_next(ann, base, pid)
    assert hp.keys() == real.keys() and not hp["qualification"]
    assert hp["image"]["id"] == gold_images[2] and hp["version"] == 1  # pre-labelled, too
    ann.click("#submit")
    ann.wait_for_url(f"{base}/projects/{pid}")  # no score, no feedback: like any task
    d = api["mgr"]("GET", f"/api/projects/{pid}/quality")
    annie = next(a for a in d["annotators"] if a["username"] == "annie")
    assert len(annie["honeypots"]) == 1 and annie["honeypots"][0]["score"] > 0.5

    # ---- 4. two annotators disagree on an overlap image; the reviewer merges them ----------
    copy = next(t for t in api["bob"]("GET", f"/api/projects/{pid}/tasks")
                if t["image"]["id"] == real["image"]["id"])
    from segflow.studio.services.masks import encode_runs

    small = np.zeros((H, W), np.int32)
    small[60:80, 220:240] = 1
    api["bob"].label(copy["id"], encode_runs(small), [{"id": 1, "category_id": 2}])
    ag = api["rev"]("GET", f"/api/tasks/{real['id']}/agreement")
    assert ag["status"] == "scored" and ag["flagged"] and ag["miou"] < 0.9
    rev = login(browser, base, "rev", PW["rev"])
    rev.goto(f"{base}/projects/{pid}")
    wait_js(rev, "id => !!document.querySelector(`#tasks a.review-link[href='/tasks/${id}/review']`)",
            real["id"])
    rev.click(f"#tasks a.review-link[href='/tasks/{real['id']}/review']")
    wait_js(rev, "() => document.getElementById('agreement').dataset.ready === '1'")
    assert "flagged" in rev.inner_text("#ag-state")
    wait_js(rev, "() => { const i = document.querySelector('#ag-fig img.over');"
                 " return !!i && i.complete && i.naturalWidth === 320; }")
    shot(rev, "q04-reviewer-overlap-heatmap")
    docs_shot(rev.locator("#agreement"), "quality-overlap.png")
    rev.click("#ag-majority")
    rev.wait_for_url(f"{base}/projects/{pid}")
    done = api["mgr"]("GET", f"/api/tasks/{real['id']}")
    assert done["state"] == "accepted" and done["reviewer"] == "rev"
    assert api["mgr"]("GET", f"/api/tasks/{real['id']}/history")[-1]["kind"] == "resolve"

    # ---- 5. the dashboard: the annotator's quality and the pre-label edits ----------------
    mgr.goto(f"{base}/projects/{pid}/quality")
    wait_js(mgr, "() => document.getElementById('quality').dataset.ready === '1'")
    wait_js(mgr, "() => document.querySelectorAll('#q-prelabels tbody tr').length === 1")
    row = mgr.inner_text("#q-people tr[data-user=annie]")
    assert "passed" in row and "1: mean" in row
    assert mgr.inner_text("#q-prelabels tbody").startswith(f"pipeline:{pre['prelabel']['pipeline']}")
    wait_js(mgr, "() => { const i = document.getElementById('q-chart');"
                 " return i.complete && i.naturalWidth > 0; }")
    shot(mgr, "q05-dashboard")
    docs_shot(mgr.locator("#q-overview"), "quality-dashboard.png")
    for page in (mgr, ann, rev):
        assert page.errors == []
