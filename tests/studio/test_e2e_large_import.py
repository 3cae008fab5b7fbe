"""An admin adds a volume and a georeferenced raster from the project page (no API call by
hand): the form picks the kind, rasters take optional bands, and the new tasks appear in the
project's task list and open in their viewers. Wrong paths and bands get one line in the
page and add nothing."""

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
from tests.studio.test_raster_studio import write_raster

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (make test installs it)")
nib = pytest.importorskip("nibabel")
pytest.importorskip("rasterio")


def _task_rows(page) -> int:
    return page.evaluate("() => document.querySelectorAll('#tasks tbody tr').length")


def test_admin_adds_a_volume_and_a_raster_from_the_project_page(server, browser, tmp_path):  # noqa: F811
    from fastapi.testclient import TestClient

    app, base = server
    c = TestClient(app)
    h = {"Authorization": "Bearer " + c.post("/api/auth/token", json={
        "username": "root", "password": "root-pass-1"}).json()["token"]}
    pid = c.post("/api/projects", headers=h, json={
        "name": "large items", "task_type": "semantic",
        "schema": [{"id": 1, "name": "organ", "color": [230, 60, 60], "hotkey": "o"}]}).json()["id"]
    vol = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(0, 20, (40, 32, 12)).astype(np.float32),
                             np.diag([0.8, 0.8, 2.5, 1.0])), str(vol))
    tif = tmp_path / "map.tif"
    write_raster(tif, 700, 500)

    page = login(browser, base, "root", "root-pass-1")
    page.goto(f"{base}/projects/{pid}")
    wait_js(page, "() => document.getElementById('p-title').textContent.length > 0")
    assert page.is_hidden("#large-bands")  # bands belong to rasters only
    page.select_option("#large-kind", "volume")
    page.fill("#large-path", str(vol))
    page.click("#large-add")
    flash_ok(page, "volume added as task")
    assert "40 x 32 x 12 voxels" in page.text_content("#flash")
    wait_js(page, "() => document.querySelectorAll('#tasks tbody tr').length === 1")

    page.select_option("#large-kind", "raster")
    assert page.is_visible("#large-bands")
    page.fill("#large-path", str(tif))
    page.fill("#large-bands", "3, 2, 1")
    page.click("#large-add")
    flash_ok(page, "raster added as task")
    assert "700 x 500 px" in page.text_content("#flash")
    wait_js(page, "() => document.querySelectorAll('#tasks tbody tr').length === 2")
    shot(page, "project-large-items")

    tasks = c.get(f"/api/projects/{pid}/tasks", headers=h).json()
    kinds = {}
    for t in tasks:
        for kind in ("volume", "raster"):
            if c.get(f"/api/tasks/{t['id']}/{kind}", headers=h).status_code == 200:
                kinds[kind] = t["id"]
    assert set(kinds) == {"volume", "raster"}
    assert c.get(f"/api/tasks/{kinds['volume']}/volume", headers=h).json()["shape"] == [40, 32, 12]
    info = c.get(f"/api/tasks/{kinds['raster']}/raster", headers=h).json()
    assert (info["width"], info["height"]) == (700, 500)

    # mistakes: one line in the page, nothing added
    page.select_option("#large-kind", "volume")
    page.fill("#large-path", str(tmp_path / "missing.nii.gz"))
    page.click("#large-add")
    wait_js(page, "() => /missing\\.nii\\.gz/.test(document.getElementById('flash').textContent)")
    assert "\n" not in page.text_content("#flash").strip()
    page.select_option("#large-kind", "raster")
    page.fill("#large-path", str(tif))
    page.fill("#large-bands", "0")
    page.click("#large-add")
    flash_ok(page, "bands: give 1 or 3 band numbers")
    page.fill("#large-bands", "9")
    page.click("#large-add")
    wait_js(page, "() => /band/.test(document.getElementById('flash').textContent) && "
                  "!/raster added/.test(document.getElementById('flash').textContent)")
    assert len(c.get(f"/api/projects/{pid}/tasks", headers=h).json()) == 2
    assert _task_rows(page) == 2
    assert not page.errors, page.errors
