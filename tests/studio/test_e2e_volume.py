"""The volume slice viewer in a real headless Chromium (issue 14): scroll through slices, paint
two slices with the brush, interpolate between them, save, reload, and get the same voxels,
on every slice and in the NIfTI export; then the reviewer sees them and accepts.
Screenshots go to out/test-artifacts/e2e/."""

from __future__ import annotations

import numpy as np
import pytest

from tests.studio.test_e2e import (  # noqa: F401  (browser, server: fixtures)
    CHROMIUM,
    browser,
    flash_ok,
    login,
    server,
    shot,
    wait_js,
)

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (make test installs it)")
nib = pytest.importorskip("nibabel")
PASSWORD = "kiwi-lantern-97-otter"
SHAPE = (64, 56, 16)


def _volume_task(app, tmp_path):
    from fastapi.testclient import TestClient

    c = TestClient(app)
    h = {"Authorization": "Bearer " + c.post("/api/auth/token", json={
        "username": "root", "password": "root-pass-1"}).json()["token"]}
    users = {}
    for name, role in (("vol-ann", "annotator"), ("vol-rev", "reviewer")):
        users[name] = c.post("/api/users", headers=h, json={"username": name, "password": PASSWORD,
                                                             "role": role}).json()["id"]
    pid = c.post("/api/projects", headers=h, json={
        "name": "organs", "task_type": "semantic",
        "schema": [{"id": 1, "name": "liver", "color": [230, 60, 60], "hotkey": "l"}]}).json()["id"]
    c.post(f"/api/projects/{pid}/members", headers=h, json={"user_ids": list(users.values())})
    rng = np.random.default_rng(0)
    arr = rng.normal(0, 20, SHAPE).astype(np.float32)
    arr[20:44, 16:40, 4:12] += 120
    aff = np.diag([0.7, 0.7, 2.0, 1.0])
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(arr, aff), str(path))
    r = c.post(f"/api/projects/{pid}/volumes", headers=h, json={"path": str(path)})
    assert r.status_code == 201, r.text
    tid = r.json()["task_id"]
    c.post(f"/api/projects/{pid}/assign", headers=h, json={
        "mode": "manual", "user_ids": [users["vol-ann"]], "task_ids": [tid]})
    return c, h, pid, tid, aff


def _planes(page, lo, hi):
    return {k: page.evaluate("k => window.studio.planeRuns(2, k)", k) for k in range(lo, hi + 1)}


def _stroke(page, pts, size=10):
    page.click("[data-tool=brush]")
    page.evaluate(f"window.studio.size = {size}")
    page.mouse.move(*page.evaluate("p => window.studio.toScreen(p[0], p[1])", pts[0]))
    page.mouse.down()
    for p in pts[1:]:
        page.mouse.move(*page.evaluate("p => window.studio.toScreen(p[0], p[1])", p))
    page.mouse.up()


def test_slice_viewer_paint_interpolate_save_reload(server, browser, tmp_path):  # noqa: F811
    from segflow.studio.services.masks import decode_runs

    app, base = server
    c, h, pid, tid, aff = _volume_task(app, tmp_path)
    page = login(browser, base, "vol-ann", PASSWORD)
    page.goto(f"{base}/tasks/{tid}/edit")
    wait_js(page, "() => !!(window.studio && window.studio.ready)")
    assert page.evaluate("[window.studio.axis, window.studio.index]") == [2, SHAPE[2] // 2]
    # scroll: the wheel moves through the axial slices
    page.mouse.move(*page.evaluate("() => window.studio.toScreen(30, 30)"))
    for _ in range(4):
        page.mouse.wheel(0, -120)
        page.wait_for_timeout(150)
    wait_js(page, "() => window.studio.index === 4")
    # paint slice 4, then slice 10, with the brush
    _stroke(page, [(24, 20), (36, 22), (38, 32)])
    for _ in range(6):
        page.keyboard.press("ArrowUp")
        page.wait_for_timeout(100)
    wait_js(page, "() => window.studio.index === 10")
    _stroke(page, [(18, 14), (40, 16), (44, 36), (22, 38)], size=14)
    shot(page, "volume-painted")
    page.click("#interpolate")
    flash_ok(page, "interpolated 5 slices")
    before = _planes(page, 0, SHAPE[2] - 1)
    filled = [int((decode_runs(before[k], SHAPE[1], SHAPE[0]) > 0).sum()) for k in range(SHAPE[2])]
    assert all(filled[k] > 50 for k in range(4, 11)), filled  # painted and interpolated
    assert sum(filled[:4]) + sum(filled[11:]) == 0, filled
    page.click("#save")
    flash_ok(page, "saved version 1")
    # reload: the same voxels, on every axial slice
    page.reload()
    wait_js(page, "() => !!(window.studio && window.studio.ready)")
    after = _planes(page, 0, SHAPE[2] - 1)
    assert after == before
    # the coronal view shows the same voxels (it reads across the slices)
    page.click("[data-axis='1']")
    wait_js(page, "() => window.studio.axis === 1")
    shot(page, "volume-coronal")
    vol = np.zeros(SHAPE, np.int32)
    for k, r in before.items():
        vol[:, :, k] = decode_runs(r, SHAPE[1], SHAPE[0])[::-1].T
    j = page.evaluate("window.studio.index")
    cor = decode_runs(page.evaluate("j => window.studio.planeRuns(1, j)", j), SHAPE[2], SHAPE[0])
    assert np.array_equal(cor, vol[:, j, :].T[::-1])
    # the NIfTI export holds those voxels (class ids) with the scan's affine
    out = tmp_path / "labels.nii.gz"
    out.write_bytes(c.get(f"/api/tasks/{tid}/volume/export.nii.gz", headers=h).content)
    img = nib.load(str(out))
    assert np.allclose(img.affine, aff)
    assert np.array_equal(np.asarray(img.dataobj) > 0, vol > 0)
    assert not page.errors, page.errors
    # submit; the reviewer sees the same voxels and accepts
    page.click("#submit")
    page.wait_for_url(f"{base}/projects/{pid}")
    rp = login(browser, base, "vol-rev", PASSWORD)
    rp.goto(f"{base}/tasks/{tid}/review")
    wait_js(rp, "() => !!(window.studio && window.studio.ready)")
    assert _planes(rp, 0, SHAPE[2] - 1) == before
    shot(rp, "volume-review")
    rp.click("#accept")
    rp.wait_for_url(f"{base}/projects/{pid}")
    assert c.get(f"/api/tasks/{tid}", headers=h).json()["state"] == "accepted"
    assert not rp.errors, rp.errors
