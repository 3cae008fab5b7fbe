"""Pages in a real headless Chromium (the pattern and fixtures of test_e2e.py): the review page
of a panoptic project, hotkeys refused by the project form, guidelines published while an
annotator edits, the overlay after assist and fill, and untouched pre-labels shown in review.
Screenshots go to out/test-artifacts/e2e/."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.studio.conftest import png_bytes
from tests.studio.test_e2e import (  # noqa: F401  (browser, server: fixtures)
    CHROMIUM,
    browser,
    brush_stroke,
    flash_ok,
    login,
    open_editor,
    scene,
    server,
    shot,
    to_screen,
    wait_js,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (make test installs it)")
PASSWORD = "kiwi-lantern-97-otter"
_n = itertools.count()


def _client(app):
    from fastapi.testclient import TestClient

    c = TestClient(app)
    tok = c.post("/api/auth/token", json={"username": "root", "password": "root-pass-1"}).json()
    return c, {"Authorization": f"Bearer {tok['token']}"}


def _annotation_project(app, *, task_type="instance", images=1) -> dict:
    """A fresh annotator with acknowledged guidelines and ``images`` scenes assigned."""
    c, h = _client(app)
    k = next(_n)
    name = f"ann{k}"
    uid = c.post("/api/users", headers=h, json={"username": name, "password": PASSWORD,
                                                "role": "annotator"}).json()["id"]
    pid = c.post("/api/projects", headers=h, json={
        "name": f"p{k}", "task_type": task_type,
        "schema": [{"id": 1, "name": "ground", "hotkey": "g"},
                   {"id": 2, "name": "blob", "isthing": True, "hotkey": "t"}]}).json()["id"]
    c.post(f"/api/projects/{pid}/members", headers=h, json={"user_ids": [uid]})
    c.post(f"/api/projects/{pid}/guidelines", headers=h, json={"markdown": "# v1\nPaint blobs."})
    files = [("files", (f"s{k}-{i}.png", png_bytes(scene(100 * k + i)), "image/png"))
             for i in range(images)]
    tids = c.post(f"/api/projects/{pid}/images", headers=h, files=files).json()["task_ids"]
    c.post(f"/api/projects/{pid}/assign", headers=h, json={"mode": "balanced"})
    tu = c.post("/api/auth/token", json={"username": name, "password": PASSWORD}).json()["token"]
    c.post(f"/api/projects/{pid}/guidelines/1/ack", headers={"Authorization": f"Bearer {tu}"})
    return {"c": c, "h": h, "pid": pid, "tids": tids, "name": name}


def test_review_page_of_the_demo_panoptic_project(server, browser):  # noqa: F811
    """It failed with "Cannot set properties of null (setting 'hidden')" and loaded no history,
    comments or diff. Untouched pre-labels are flagged there."""
    app, base = server
    from segflow.studio.services.demo import DEMO_PASSWORD, seed_demo

    with app.state.sessions() as s:
        info = seed_demo(s, app.state.store, n_images=2)
    c, _ = _client(app)
    ha = {"Authorization": "Bearer " + c.post("/api/auth/token", json={
        "username": "annie", "password": DEMO_PASSWORD}).json()["token"]}
    pid = info["project_id"]
    c.post(f"/api/projects/{pid}/guidelines/1/ack", headers=ha)
    tid = c.get(f"/api/projects/{pid}/tasks", headers=ha).json()[0]["id"]
    a = c.get(f"/api/tasks/{tid}/annotation", headers=ha).json()
    r = c.put(f"/api/tasks/{tid}/annotation", headers=ha, json={
        "base_version": a["version"], "width": a["width"], "height": a["height"],
        "runs": a["runs"], "segments": a["segments"]})  # the pre-labels, unchanged
    assert r.json()["untouched_prelabel"] is True
    assert c.post(f"/api/tasks/{tid}/submit", headers=ha).status_code == 200
    rev = login(browser, base, "rev", DEMO_PASSWORD)
    rev.goto(f"{base}/tasks/{tid}/review")
    wait_js(rev, "() => !!(window.studio && window.studio.ready)")
    assert rev.evaluate("document.querySelectorAll('#history li').length") == 2  # pre-label, save
    assert rev.is_visible("#untouched") and "nobody edited" in rev.inner_text("#untouched")
    rev.click("#history li:last-child a")
    wait_js(rev, "() => !document.getElementById('diff').hidden && document.getElementById('diff').complete")
    shot(rev, "10-review-panoptic-untouched")
    assert rev.errors == [], rev.errors


def test_project_form_refuses_a_hotkey_of_a_tool(server, browser):  # noqa: F811
    app, base = server
    admin = login(browser, base, "root", "root-pass-1")
    admin.fill("#p-name", "hotkeys")
    admin.fill("#classes tbody tr:nth-child(2) .c-key", "b")
    admin.click("#create-project")
    flash_ok(admin, "Brush tool")
    assert "'b'" in admin.inner_text("#flash") and admin.url == f"{base}/"
    shot(admin, "11-hotkey-refused")


def test_new_guidelines_while_editing_are_acknowledged_in_place_and_edits_saved(server, browser):  # noqa: F811
    app, base = server
    ctx = _annotation_project(app)
    c, h, pid = ctx["c"], ctx["h"], ctx["pid"]
    page = login(browser, base, ctx["name"], PASSWORD)
    open_editor(page, base, pid)
    tid = page.evaluate("window.studio.task.id")
    page.click("#labels li[data-category='2']")
    brush_stroke(page, 8, [(x, 150) for x in range(40, 121, 5)])
    c.post(f"/api/projects/{pid}/guidelines", headers=h,
           json={"markdown": "# v2\nInclude the **shadow** of each blob."})
    page.click("#save")
    wait_js(page, "() => !document.getElementById('g-gate').hidden")
    assert "shadow" in page.inner_text("#g-gate") and "version 2" in page.inner_text("#g-gate")
    shot(page, "12-guidelines-gate")
    page.click("#g-gate-ack")
    flash_ok(page, "saved version 1")
    assert page.is_hidden("#g-gate")
    a = c.get(f"/api/tasks/{tid}/annotation", headers=h).json()
    assert a["version"] == 1 and a["runs"] == page.evaluate("window.studio.encodeRuns()")
    from segflow.studio.services.masks import decode_runs

    assert decode_runs(a["runs"], 240, 320)[150, 80] == 1  # the stroke made before v2
    assert page.errors == [], page.errors


def test_overlay_has_no_stale_rectangle_after_assist_or_fill(server, browser):  # noqa: F811
    """The overlay draws the current segment opaque (255) and others at 215; when the current
    segment changed, only the edit's rectangle was redrawn, leaving a lighter rectangle."""
    app, base = server
    ctx = _annotation_project(app)
    page = login(browser, base, ctx["name"], PASSWORD)
    open_editor(page, base, ctx["pid"])
    page.click("#labels li[data-category='2']")
    brush_stroke(page, 4, [(x, 45) for x in range(150, 301, 5)])  # crosses the disc's box
    page.click("#new-instance")
    page.click("[data-tool=a-threshold]")
    page.mouse.click(*to_screen(page, 230, 70))
    wait_js(page, "() => document.getElementById('status').textContent.includes('pixels')")
    alpha = lambda x, y: page.evaluate(f"window.studio.overlayPixel({x}, {y})")[3]  # noqa: E731
    labels = lambda: np.array(page.evaluate("Array.from(window.studio.labels)")).reshape(240, 320)  # noqa: E731
    lab = labels()
    assert lab[45, 160] == lab[45, 205] == 1 and lab[70, 230] == 2
    assert alpha(160, 45) == alpha(205, 45) == 215  # segment 1, outside and inside the box
    assert alpha(230, 70) == 255  # the current segment
    page.click("#new-instance")
    page.click("[data-tool=fill]")
    page.mouse.click(*to_screen(page, 230, 70))  # refill the disc as a third object
    assert labels()[70, 230] == 3
    assert alpha(160, 45) == alpha(205, 45) == 215 and alpha(230, 70) == 255
    shot(page, "13-overlay-after-assist-fill")
    assert page.errors == [], page.errors


def test_admin_deactivates_a_user_and_reads_the_audit_log(server, browser):  # noqa: F811
    app, base = server
    c, h = _client(app)
    c.post("/api/users", headers=h, json={"username": "leaver", "password": PASSWORD,
                                          "role": "annotator"})
    tok = c.post("/api/auth/token", json={"username": "leaver", "password": PASSWORD}).json()["token"]
    c.post("/api/auth/token", json={"username": "leaver", "password": "wrong-guess-1"})
    admin = login(browser, base, "root", "root-pass-1")
    admin.click("li[data-user=leaver] .u-active")
    flash_ok(admin, "leaver deactivated")
    wait_js(admin, "() => !!document.querySelector('li[data-user=leaver]')"
                   "?.textContent.includes('deactivated')")
    assert c.get("/api/me", headers={"Authorization": f"Bearer {tok}"}).status_code == 401
    admin.click("#nav-audit")
    admin.wait_for_url(f"{base}/audit")
    wait_js(admin, "() => document.querySelectorAll('#audit tr[data-kind=user_deactivated]').length === 1")
    row = admin.inner_text("#audit tr[data-kind=user_deactivated]")
    assert "leaver" in row and "root" in row
    admin.select_option("#a-kind", "login_failed")
    wait_js(admin, """() => { const rows = [...document.querySelectorAll('#audit tbody tr')];
        return rows.length > 0 && rows.every((r) => r.dataset.kind === 'login_failed'); }""")
    assert "wrong password" in admin.inner_text("#audit tbody")
    shot(admin, "14-audit-log")
    assert admin.errors == [], admin.errors
