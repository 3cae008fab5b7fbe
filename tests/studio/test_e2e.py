"""End to end in a real headless Chromium (Debian's /usr/bin/chromium driven by Playwright):
admin sets up a project, an annotator paints (brush, polygon, an assist tool) and submits, a
reviewer rejects with a pinned comment, the annotator fixes it, the reviewer accepts, and the
COCO export holds exactly the painted pixels. Screenshots go to out/test-artifacts/e2e/."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.studio.conftest import png_bytes

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update"]
SHOTS = Path(__file__).resolve().parents[2] / "out" / "test-artifacts" / "e2e"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (make test installs it)")


def scene(seed: int) -> np.ndarray:
    """320x240: dark background, a bright disc (for the Otsu assist) at (230, 70) r=30."""
    rng = np.random.default_rng(seed)
    img = rng.integers(30, 60, (240, 320, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:240, :320]
    img[(yy - 70) ** 2 + (xx - 230) ** 2 <= 30 * 30] = (230, 210, 90)
    return img


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from segflow.studio import security
    from segflow.studio.app import create_app
    from segflow.studio.tables import User

    app = create_app(None, tmp_path_factory.mktemp("studio"))
    with app.state.sessions() as s:
        s.add(User(username="root", password_hash=security.hash_password("root-pass-1"),
                   role="admin"))
        s.commit()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield app, f"http://127.0.0.1:{port}"
    srv.should_exit = True
    th.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        yield b
        b.close()


def login(browser, base: str, user: str, password: str):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/login")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#login")
    page.wait_for_url(f"{base}/")
    page.errors = errors
    return page


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def to_screen(page, x: float, y: float) -> tuple[float, float]:
    return tuple(page.evaluate("""([x, y]) => {
        const r = document.getElementById('canvas').getBoundingClientRect(), S = window.studio;
        return [r.left + S.ox + x * S.scale, r.top + S.oy + y * S.scale]; }""", [x, y]))


def wait_js(page, fn: str, arg=None, timeout: float = 20.0) -> None:
    """Poll a JS function until it returns true. (Playwright's wait_for_function evaluates
    strings inside the page, which the studio's Content-Security-Policy forbids; evaluate()
    goes through the DevTools protocol instead, so the CSP stays on in these tests.)"""
    end = time.monotonic() + timeout
    while not page.evaluate(fn, arg):
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {fn} ({arg})")
        time.sleep(0.05)


def brush_stroke(page, size: int, points) -> None:
    """Pick the brush and drag it through image-coordinate ``points``."""
    page.click("[data-tool=brush]")
    page.evaluate(f"window.studio.size = {size}")
    page.mouse.move(*to_screen(page, *points[0]))
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(*to_screen(page, x, y))
    page.mouse.up()


def flash_ok(page, text: str) -> None:
    wait_js(page, "t => document.getElementById('flash').textContent.includes(t)", text)


def open_editor(page, base: str, pid: int) -> None:
    page.goto(f"{base}/projects/{pid}")
    page.click("#next-task")
    page.wait_for_url("**/edit")
    wait_js(page, "() => !!(window.studio && window.studio.ready)")


def test_annotate_review_export_in_chromium(server, browser, tmp_path):
    app, base = server
    # ---- admin: users, project with schema, guidelines, members, images, assignment ----------
    admin = login(browser, base, "root", "root-pass-1")
    for name, role in (("annie", "annotator"), ("rev", "reviewer")):
        admin.fill("#u-name", name)
        admin.fill("#u-pass", f"{name}-pass-1")
        admin.select_option("#u-role", role)
        admin.click("#create-user")
        flash_ok(admin, "user created")
    admin.fill("#p-name", "Blobs <b>e2e</b>")
    admin.select_option("#p-type", "instance")
    admin.fill("#p-goals", "Segment every blob")
    admin.click("#create-project")
    admin.wait_for_url("**/projects/*")
    pid = int(admin.url.rsplit("/", 1)[1])
    from playwright.sync_api import expect

    # shown as text, not markup; the page fills the title from the API after loading, so wait
    expect(admin.locator("#p-title")).to_have_text("Blobs <b>e2e</b>")
    for name in ("annie", "rev"):
        admin.select_option("#m-user", label=f"{name} ({'annotator' if name == 'annie' else 'reviewer'})")
        admin.click("#add-member")
        wait_js(admin, "n => document.getElementById('member-list').textContent.includes(n)", name)
    files = []
    for k in range(2):
        f = tmp_path / f"scene{k}.png"
        f.write_bytes(png_bytes(scene(k)))
        files.append(str(f))
    admin.set_input_files("#files", files)
    admin.click("#do-upload")
    flash_ok(admin, "2 images added")
    admin.fill("#g-text", "# Blobs\n\nPaint **every** blob, edges included.")
    wait_js(admin, "() => document.querySelectorAll('#gx-image option').length === 2")
    admin.fill("#gx-caption", "the disc, edge to edge")
    admin.click("#gx-add")
    admin.click("#g-publish")
    flash_ok(admin, "guidelines published")
    wait_js(admin, "() => document.querySelectorAll('#g-examples figure.good').length === 1")
    admin.click("#assign")
    flash_ok(admin, "2 tasks assigned")
    wait_js(admin, "() => document.querySelectorAll('#tasks tbody tr[data-state=assigned]').length === 2")
    shot(admin, "01-admin-project")

    # ---- annotator: guidelines, brush, polygon, assist, save, submit -------------------------
    ann = login(browser, base, "annie", "annie-pass-1")
    ann.goto(f"{base}/projects/{pid}")
    ann.click("#ack")
    flash_ok(ann, "acknowledged")
    open_editor(ann, base, pid)
    tid = ann.evaluate("window.studio.task.id")
    wait_js(ann, "() => document.querySelectorAll('#guideline figure.good img').length === 1")
    assert "edge to edge" in ann.inner_text("#guideline")
    ann.click("#labels li[data-category='2']")
    brush_stroke(ann, 10, [(x, 150) for x in range(40, 121, 5)])
    ann.click("#new-instance")  # the polygon is a second object
    ann.click("[data-tool=polygon]")
    for x, y in ((150, 160), (210, 160), (210, 220), (150, 220)):
        ann.mouse.click(*to_screen(ann, x, y))
    ann.keyboard.press("Enter")
    ann.click("#new-instance")
    ann.click("[data-tool=a-threshold]")
    ann.mouse.click(*to_screen(ann, 230, 70))
    wait_js(ann, "() => document.getElementById('status').textContent.includes('pixels')")
    labels = np.array(ann.evaluate("Array.from(window.studio.labels)"), np.int64).reshape(240, 320)
    assert labels[150, 80] == 1 and labels[150, 20] == 0  # brush stroke, nothing beyond it
    assert (labels[165:215, 155:205] == 2).all() and labels[225, 180] == 0  # polygon
    yy, xx = np.mgrid[:240, :320]
    disc = (yy - 70) ** 2 + (xx - 230) ** 2 <= 30 * 30
    assert ((labels == 3) == disc).all()  # Otsu region = the disc exactly
    ann.keyboard.press("Control+z")  # undo and redo the assist
    assert ann.evaluate("window.studio.labels[70 * 320 + 230]") == 0
    ann.keyboard.press("Control+y")
    assert ann.evaluate("window.studio.labels[70 * 320 + 230]") == 3
    ann.click("#save")
    flash_ok(ann, "saved version 1")
    shot(ann, "02-annotator-painted")
    ann.click("#submit")
    ann.wait_for_url(f"{base}/projects/{pid}")

    # ---- reviewer: reject with a pinned comment --------------------------------------------------
    rev = login(browser, base, "rev", "rev-pass-1")
    rev.goto(f"{base}/projects/{pid}")
    rev.click("#ack")
    rev.click(f"tr[data-task='{tid}'] a.review-link")
    rev.wait_for_url("**/review")
    wait_js(rev, "() => !!(window.studio && window.studio.ready)")
    rev.mouse.click(*to_screen(rev, 80, 150))
    rev.fill("#comment-text", "The stroke should cover the whole <i>bar</i>, up to x=140.")
    rev.click("#add-comment")
    shot(rev, "03-reviewer-comment")
    rev.click("#reject")
    rev.wait_for_url(f"{base}/projects/{pid}")

    # ---- annotator fixes -----------------------------------------------------------------------
    open_editor(ann, base, pid)
    assert ann.evaluate("window.studio.task.id") == tid
    assert "up to x=140" in ann.inner_text("#comments")
    assert ann.evaluate("window.studio.pins.length") == 1
    ann.click("#instances li[data-segment='1'] span")  # continue object 1
    brush_stroke(ann, 12, [(x, 150) for x in range(120, 141, 5)])
    ann.keyboard.press("Control+s")
    flash_ok(ann, "saved version 2")
    final = np.array(ann.evaluate("Array.from(window.studio.labels)"), np.int64).reshape(240, 320)
    segments = ann.evaluate("window.studio.segments")
    assert final[150, 138] == 1
    shot(ann, "04-annotator-fixed")
    ann.click("#submit")
    ann.wait_for_url(f"{base}/projects/{pid}")

    # ---- reviewer accepts; admin exports COCO ---------------------------------------------------
    rev.goto(f"{base}/tasks/{tid}/review")
    wait_js(rev, "() => !!(window.studio && window.studio.ready)")
    rev.click("#history li:last-child a")
    wait_js(rev, "() => !document.getElementById('diff').hidden && document.getElementById('diff').complete")
    shot(rev, "05-reviewer-diff")
    rev.click("#accept")
    rev.wait_for_url(f"{base}/projects/{pid}")
    admin.goto(f"{base}/projects/{pid}")
    admin.select_option("#x-format", "coco")
    admin.click("#export")
    flash_ok(admin, "exported 1 images as coco")
    shot(admin, "06-admin-exported")
    for p in (admin, ann, rev):
        assert p.errors == [], p.errors

    from pycocotools.coco import COCO

    from segflow.studio.tables import DatasetVersion

    with app.state.sessions() as s:
        dv = s.query(DatasetVersion).one()
    js = next(Path(dv.path).glob("annotations/instances_*.json"))
    coco = COCO(str(js))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == 3 and {a["category_id"] for a in anns} == {2}
    # each browser segment is exactly one exported object, pixel for pixel
    want = sorted((final == s["id"]).sum() for s in segments if (final == s["id"]).any())
    got = sorted(int(coco.annToMask(a).sum()) for a in anns)
    assert got == want
    for s in segments:
        m = final == s["id"]
        if m.any():
            assert any((coco.annToMask(a).astype(bool) == m).all() for a in anns), s
    union = np.zeros((240, 320), bool)
    for a in anns:
        union |= coco.annToMask(a).astype(bool)
    assert (union == (final > 0)).all()


def test_large_panoptic_image_paints_and_saves(server, browser):
    """A 4000x3000 image in a panoptic project: the editor loads it, shows the unlabelled
    pixels, paints, undoes, and the saved labels equal the browser's exactly."""
    app, base = server
    from fastapi.testclient import TestClient

    c = TestClient(app)
    tok = c.post("/api/auth/token", json={"username": "root", "password": "root-pass-1"}).json()["token"]
    h = {"Authorization": f"Bearer {tok}"}
    c.post("/api/users", headers=h, json={"username": "big", "password": "big-pass-1",
                                          "role": "annotator"})
    uid = next(u["id"] for u in c.get("/api/users", headers=h).json() if u["username"] == "big")
    pid = c.post("/api/projects", headers=h, json={
        "name": "big", "task_type": "panoptic",
        "schema": [{"id": 1, "name": "ground", "hotkey": "g"},
                   {"id": 2, "name": "thing", "isthing": True, "hotkey": "t"}]}).json()["id"]
    c.post(f"/api/projects/{pid}/members", headers=h, json={"user_ids": [uid]})
    yy, xx = np.mgrid[:3000, :4000]
    img = np.stack([(xx // 16) % 256, (yy // 12) % 256, np.full_like(xx, 90)], -1).astype(np.uint8)
    c.post(f"/api/projects/{pid}/images", headers=h,
           files=[("files", ("big.png", png_bytes(img), "image/png"))])
    c.post(f"/api/projects/{pid}/assign", headers=h, json={"mode": "balanced"})
    page = login(browser, base, "big", "big-pass-1")
    open_editor(page, base, pid)
    assert page.evaluate("[window.studio.W, window.studio.H]") == [4000, 3000]
    assert "12000000 px" in page.inner_text("#show-unlabelled")
    page.keyboard.press("g")  # hotkey: the stuff class
    page.click("[data-tool=fill]")
    page.mouse.click(*to_screen(page, 100, 100))  # bucket: all 12 MP become ground
    assert "(0 px)" in page.inner_text("#show-unlabelled")
    page.keyboard.press("t")
    brush_stroke(page, 80, [(x, 1500) for x in range(1000, 3001, 100)])
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+y")
    page.keyboard.press("Control+s")
    flash_ok(page, "saved version 1")
    shot(page, "07-large-image")
    runs = page.evaluate("window.studio.encodeRuns()")
    a = c.get(f"/api/tasks/{page.evaluate('window.studio.task.id')}/annotation", headers=h).json()
    assert a["runs"] == runs and len(a["segments"]) == 2
    from segflow.studio.services.masks import decode_runs

    ids = decode_runs(runs, 3000, 4000)
    assert ids[1500, 2000] == 2 and ids[100, 100] == 1 and ids[1500, 3100] == 1
    assert page.errors == []
