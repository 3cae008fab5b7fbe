"""Heavy studio work leaves the request (issue 11): pre-labels, imports and exports run as jobs
with progress; imports add what they can and report the rest; /docs works offline."""

from __future__ import annotations

import io
import re
import struct
import time
import zlib

import numpy as np
import pytest

from tests.studio.conftest import blob_image, png_bytes, setup_project


def png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header claims w x h grey pixels, with a tiny (wrong) IDAT: enough for every
    check that reads only the header."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def big_striped_png(w: int = 10000, h: int = 9990) -> bytes:
    """A ~100-megapixel 1-bit PNG of ~12 kB (as in the issue): black and white bands, every row
    after the first stored as 'same as above' (PNG filter 2), so the data compresses ~1000:1."""
    row = np.packbits((np.arange(w) // 500) % 2 == 0).tobytes()
    comp = zlib.compressobj(9)
    rest = b"\2" + b"\0" * len(row)
    parts = [comp.compress(b"\0" + row)] + [comp.compress(rest * 1000) for _ in range((h - 1) // 1000)]
    parts += [comp.compress(rest * ((h - 1) % 1000)), comp.flush()]

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


def stored_files(st) -> set[str]:
    return {p.name.split(".")[0] for p in st.app.state.store.root.rglob("*") if p.is_file()}


def test_folder_import_skips_an_unreadable_tiff_and_leaves_no_orphans(studio, tmp_path):
    from PIL import Image

    st = studio
    pid = setup_project(st, 1)["pid"]
    folder = tmp_path / "incoming"
    (folder / "sub").mkdir(parents=True)
    for k in range(3):
        (folder / f"ok{k}.png").write_bytes(png_bytes(blob_image(300 + k)))
    buf = io.BytesIO()
    Image.fromarray(blob_image(400)).save(buf, format="TIFF")
    (folder / "sub" / "broken.tif").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 3])
    before = stored_files(st)
    r = st.ok("admin", "POST", f"/api/projects/{pid}/import?wait=60", json={"path": str(folder)})
    assert r["format"] == "images" and r["added"] == 3 and len(r["task_ids"]) == 3
    assert [f["file"] for f in r["failed"]] == ["sub/broken.tif"], r["failed"]
    assert "broken.tif" in r["failed"][0]["error"]
    with st.app.state.sessions() as s:
        from sqlalchemy import select

        from segflow.studio.tables import Image as Img

        shas = set(s.scalars(select(Img.sha256)))
    assert stored_files(st) - before == shas - before and stored_files(st) <= shas  # no orphans


def test_upload_reports_bad_files_and_keeps_good_ones(studio):
    st = studio
    pid = setup_project(st, 1)["pid"]
    r = st.call("manager", "POST", f"/api/projects/{pid}/images", files=[
        ("files", ("good.png", png_bytes(blob_image(501)), "image/png")),
        ("files", ("bad.png", b"not an image", "image/png"))])
    assert r.status_code == 201, r.text
    assert r.json()["added"] == 1 and r.json()["failed"][0]["file"] == "bad.png"
    r = st.call("manager", "POST", f"/api/projects/{pid}/images",
                files=[("files", ("bad.png", b"not an image", "image/png"))])
    assert r.status_code == 400 and "bad.png" in r.json()["detail"]


def test_upload_over_the_pixel_cap_says_so(studio):
    """Pillow's own bomb check (at 179 MP) ran first and answered 'not an image'."""
    st = studio
    pid = setup_project(st, 1)["pid"]
    for w, h in ((14000, 14000), (10001, 10000)):
        r = st.call("manager", "POST", f"/api/projects/{pid}/images",
                    files=[("files", ("huge.png", png_header_only(w, h), "image/png"))])
        assert r.status_code == 400, r.text
        assert "pixel cap" in r.json()["detail"] and "huge.png" in r.json()["detail"], r.text


@pytest.mark.slow
def test_a_100_megapixel_image_is_prelabelled_outside_the_request(tmp_path):
    """A 10000x9990 PNG of a few kB took ~10 s of pre-labelling inside the upload request."""
    from tests.studio.conftest import make_studio

    st = make_studio(tmp_path, None)
    pid = setup_project(st, 1)["pid"]
    r = st.ok("manager", "PUT", f"/api/projects/{pid}/prelabel?wait=60",
              json={"mode": "pipeline", "pipeline": "otsu"})
    assert r["prelabelled"] == 1
    data = big_striped_png()
    assert len(data) < 30_000
    t0 = time.perf_counter()
    up = st.ok("manager", "POST", f"/api/projects/{pid}/images",
               files=[("files", ("big.png", data, "image/png"))])
    answered = time.perf_counter() - t0
    job = up["prelabel_job"]
    assert job["kind"] == "prelabel" and job["state"] in ("queued", "running")
    tid = up["task_ids"][0]
    assert st.ok("manager", "GET", f"/api/tasks/{tid}")["version"] == 0  # not pre-labelled yet
    seen = []
    while True:
        j = st.ok("manager", "GET", job["url"])
        seen.append(j["state"])
        if j["state"] in ("done", "failed"):
            break
        time.sleep(0.2)
    worked = time.perf_counter() - t0
    assert j["state"] == "done" and j["result"]["prelabelled"] == 1, j
    assert j["done"] == j["total"] == 1
    assert st.ok("manager", "GET", f"/api/tasks/{tid}")["version"] == 1
    assert answered < worked  # the request answered before the work was done
    assert st.call("annotator2", "GET", job["url"]).status_code == 404  # not their job
    st.app.state.engine.dispose()


def test_jobs_answer_202_and_can_be_polled(studio, monkeypatch):
    from segflow.studio.services import workflow

    st = studio
    pid = setup_project(st, 2)["pid"]
    release = __import__("threading").Event()
    real = workflow.apply_prelabels

    def slow(*a, **k):
        release.wait(30)
        return real(*a, **k)

    monkeypatch.setattr(workflow, "apply_prelabels", slow)
    r = st.call("manager", "PUT", f"/api/projects/{pid}/prelabel?wait=0",
                json={"mode": "pipeline", "pipeline": "otsu"})
    assert r.status_code == 202 and r.json()["job"]["state"] in ("queued", "running"), r.text
    url = r.json()["job"]["url"]
    assert re.fullmatch(r"/api/jobs/[0-9a-f]{32}", url)
    assert st.ok("manager", "GET", url)["state"] in ("queued", "running")
    release.set()
    j = st.app.state.jobs.wait(url.rsplit("/", 1)[1], 60)
    assert j["state"] == "done" and j["result"]["prelabelled"] == 2
    assert st.ok("admin", "GET", url)["result"]["prelabelled"] == 2
    assert st.call("reviewer", "GET", url).status_code == 404
    assert st.call("manager", "GET", "/api/jobs/not-a-job").status_code == 422
    assert st.call("manager", "GET", "/api/jobs/" + "0" * 32).status_code == 404


def test_docs_work_offline(studio):
    """Swagger UI came from a CDN: /docs was blank without internet access."""
    st = studio
    r = st.client.get("/docs")
    assert r.status_code == 200 and "SwaggerUIBundle" in r.text
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", r.text)
    refs += re.findall(r"""url:\s*["']([^"']+)["']""", r.text)
    assert refs and not [u for u in refs if re.match(r"(?i)^(https?:)?//", u)], refs
    for u in refs:  # every asset the page needs is served by the studio itself
        a = st.client.get(u)
        assert a.status_code == 200 and len(a.content) > 100, u
    assert "http" not in r.headers["content-security-policy"]
    assert st.client.get("/redoc").status_code == 404  # ReDoc also needed a CDN


def test_submit_refuses_a_closure_for_params(studio):
    # the old closure form of submit reached the database and failed there as a 500 (the raster
    # import still used it after the move to Huey); now it is refused where the mistake is
    jobs = studio.app.state.jobs
    with pytest.raises(TypeError, match="params must be a JSON dict"):
        jobs.submit("noop", lambda progress: {}, project_id=None, user_id=None)
    assert jobs.submit("noop", {}, project_id=None, user_id=None)["state"] in (
        "queued", "running", "done")
