"""The tiled raster viewer in a real headless Chromium (issue 15): open a large GeoTIFF, zoom in
with the wheel, paint across a label-tile edge, save, reload and get the same labels; the
browser loads only pyramid tiles (never the raster), the save stores only the touched tiles,
and the GeoTIFF export keeps the raster's CRS and transform. The 20,000 x 20,000 raster of the
issue runs as a slow test; a 3,000 x 2,000 one in the quick suite.
Screenshots go to out/test-artifacts/e2e/."""

from __future__ import annotations

import resource
import time

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
PASSWORD = "kiwi-lantern-97-otter"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _raster_task(app, path, name):
    from fastapi.testclient import TestClient

    c = TestClient(app)
    h = {"Authorization": "Bearer " + c.post("/api/auth/token", json={
        "username": "root", "password": "root-pass-1"}).json()["token"]}
    uid = c.post("/api/users", headers=h, json={"username": name, "password": PASSWORD,
                                                "role": "annotator"}).json()["id"]
    pid = c.post("/api/projects", headers=h, json={
        "name": f"map {name}", "task_type": "semantic",
        "schema": [{"id": 1, "name": "building", "color": [240, 80, 40], "hotkey": "u"}]}).json()["id"]
    c.post(f"/api/projects/{pid}/members", headers=h, json={"user_ids": [uid]})
    t0 = time.monotonic()
    r = c.post(f"/api/projects/{pid}/rasters?wait=60", headers=h, json={"path": str(path)})
    while r.status_code == 202:  # a large raster's preview takes a while: poll the job
        time.sleep(1)
        r = c.get(r.json()["job"]["url"], headers=h)
        if r.json().get("state") == "done":
            r.status_code, body = 200, r.json()["result"]
            break
        assert r.json().get("state") in ("queued", "running"), r.text
    else:
        assert r.status_code == 200, r.text
        body = r.json()
    tid = body["task_id"]
    c.post(f"/api/projects/{pid}/assign", headers=h, json={
        "mode": "manual", "user_ids": [uid], "task_ids": [tid]})
    return c, h, pid, tid, time.monotonic() - t0


def _zoom_in_at(page, x, y, until=1.0):
    """Wheel-zoom about raster point (x, y) until the scale reaches ``until``."""
    for _ in range(80):
        if page.evaluate("window.studio.scale") >= until:
            return
        page.mouse.move(*page.evaluate("p => window.studio.toScreen(p[0], p[1])", [x, y]))
        page.mouse.wheel(0, -240)
        page.wait_for_timeout(40)
    raise AssertionError("the wheel did not zoom in")


def _paint_save_reload(server, browser, tmp_path, width, height, name):  # noqa: F811
    import rasterio
    from rasterio.windows import Window

    from segflow.studio.services.masks import decode_runs

    app, base = server
    path = tmp_path / f"{name}.tif"
    t0, rss0 = time.monotonic(), _rss_mb()
    write_raster(path, width, height, block_rows=512)
    made = time.monotonic() - t0
    c, h, pid, tid, imported = _raster_task(app, path, name)
    page = login(browser, base, name, PASSWORD)
    page.goto(f"{base}/tasks/{tid}/edit")
    wait_js(page, "() => !!(window.studio && window.studio.ready)")
    info = page.evaluate("window.studio.info")
    top = info["levels"] - 1
    wait_js(page, "() => window.studio.stats.tiles > 0")
    scale = page.evaluate("window.studio.scale")  # fitted: the level that fits the zoom
    assert page.evaluate("window.studio.level") == min(top, int(np.floor(np.log2(1 / scale)))) > 0
    shot(page, f"tiles-{name}-fit")
    # zoom in with the wheel around a label-tile corner, and paint across its edges
    C = info["label_tile"]
    cx, cy = 2 * C, 2 * C
    _zoom_in_at(page, cx, cy)
    assert page.evaluate("window.studio.level") == 0
    page.evaluate("p => window.studio.zoomTo(window.studio.scale, p[0], p[1])", [cx, cy])  # centre it
    wait_js(page, "() => window.studio.labelsReady()", timeout=60)
    page.click("[data-tool=brush]")
    page.evaluate("window.studio.size = 30")
    pts = [(cx - 60, cy - 20), (cx + 60, cy - 10), (cx + 40, cy + 50), (cx - 50, cy + 40)]
    page.mouse.move(*page.evaluate("p => window.studio.toScreen(p[0], p[1])", pts[0]))
    page.mouse.down()
    for p in pts[1:]:
        page.mouse.move(*page.evaluate("p => window.studio.toScreen(p[0], p[1])", p), steps=5)
    page.mouse.up()
    shot(page, f"tiles-{name}-painted")
    touched = [(1, 1), (2, 1), (1, 2), (2, 2)]
    before = {t: page.evaluate("t => window.studio.labelRuns(t[0], t[1])", list(t)) for t in touched}
    painted = {t: decode_runs(r, C, C) for t, r in before.items()}
    assert all(m.any() for m in painted.values())  # the stroke crossed into all four tiles
    page.click("#save")
    flash_ok(page, "saved version 1 (4 tiles stored)")
    stats = page.evaluate("window.studio.stats")
    # the browser loads the tiles of the views it showed, whatever the raster's size: on the way
    # from the fitted view to 111% (the viewport is ~800 x 750), under 8 megapixels in all
    assert stats["pixels"] < 8e6, stats
    page.reload()
    wait_js(page, "() => !!(window.studio && window.studio.ready)")
    page.evaluate("p => window.studio.zoomTo(1, p[0], p[1])", [cx, cy])
    wait_js(page, "() => window.studio.labelsReady()", timeout=60)
    after = {t: page.evaluate("t => window.studio.labelRuns(t[0], t[1])", list(t)) for t in touched}
    assert after == before
    assert not page.errors, page.errors
    # the GeoTIFF export: the raster's georeferencing, the painted pixels as class 1
    out = tmp_path / f"{name}-labels.tif"
    out.write_bytes(c.get(f"/api/tasks/{tid}/raster/export.tif", headers=h).content)
    with rasterio.open(out) as ds, rasterio.open(path) as src:
        assert ds.crs == src.crs and ds.transform == src.transform
        assert (ds.width, ds.height) == (width, height)
        got = ds.read(1, window=Window(C, C, 2 * C, 2 * C))
    want = np.zeros((2 * C, 2 * C), np.uint8)
    for (tx, ty), m in painted.items():
        want[(ty - 1) * C:ty * C, (tx - 1) * C:tx * C] = (m > 0)
    assert np.array_equal(got, want)
    return {"made_s": made, "import_s": imported, "rss_growth_mb": _rss_mb() - rss0,
            "client_pixels": stats["pixels"], "page": page, "c": c, "h": h, "pid": pid, "tid": tid,
            "before": before, "centre": (cx, cy)}


def test_tiled_raster_zoom_paint_save(server, browser, tmp_path):  # noqa: F811
    r = _paint_save_reload(server, browser, tmp_path, 3000, 2000, "small")
    assert r["rss_growth_mb"] < 600, {k: r[k] for k in ("made_s", "import_s", "rss_growth_mb")}
    # submit; a reviewer sees the same label tiles in the tiled review view and accepts
    app, base = server
    c, h, pid, tid = r["c"], r["h"], r["pid"], r["tid"]
    r["page"].click("#submit")
    r["page"].wait_for_url(f"{base}/projects/{pid}")
    uid = c.post("/api/users", headers=h, json={"username": "map-rev", "password": PASSWORD,
                                                "role": "reviewer"}).json()["id"]
    c.post(f"/api/projects/{pid}/members", headers=h, json={"user_ids": [uid]})
    rp = login(browser, base, "map-rev", PASSWORD)
    rp.goto(f"{base}/tasks/{tid}/review")
    wait_js(rp, "() => !!(window.studio && window.studio.ready)")
    rp.evaluate("p => window.studio.zoomTo(1, p[0], p[1])", list(r["centre"]))
    wait_js(rp, "() => window.studio.labelsReady()", timeout=60)
    for t, runs in r["before"].items():
        assert rp.evaluate("t => window.studio.labelRuns(t[0], t[1])", list(t)) == runs
    shot(rp, "tiles-small-review")
    rp.click("#accept")
    rp.wait_for_url(f"{base}/projects/{pid}")
    assert c.get(f"/api/tasks/{tid}", headers=h).json()["state"] == "accepted"
    assert not rp.errors, rp.errors


@pytest.mark.slow
def test_tiled_raster_20k_zoom_paint_save(server, browser, tmp_path):  # noqa: F811
    """The issue's 20,000 x 20,000 raster (3 bands, 1.2 GB of pixels), written tiled and
    compressed in bands of rows: the test process grows by well under the 1.5 GB goal."""
    r = _paint_save_reload(server, browser, tmp_path, 20_000, 20_000, "big")
    print({k: r[k] for k in ("made_s", "import_s", "rss_growth_mb", "client_pixels")})
    assert r["rss_growth_mb"] < 1500, r
    assert r["import_s"] < 600, r
