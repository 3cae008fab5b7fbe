"""The studio under hostile input (issue 11): no crash, no 500, a 4xx or 5xx with a reason."""

from __future__ import annotations

import errno
import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.studio.conftest import labels_body, setup_project

H, W = 96, 128


def raw(st, who, method, url, body: str | bytes, ctype: str = "application/json"):
    """A request with a body the test writes byte for byte (NaN, Infinity, text, forms)."""
    return st.client.request(method, url, content=body,
                             headers={**st.as_(who), "Content-Type": ctype})


def test_wrapping_run_lengths_do_not_crash_the_server(tmp_path):
    """Four lengths of 2^62 plus the image size sum to the image size in int64: numpy's repeat
    then wrote past its buffer (SIGSEGV). Run in a child process so a crash cannot take the
    test run with it."""
    code = textwrap.dedent(f"""
        import pathlib, sys
        sys.path.insert(0, {str(pathlib.Path(__file__).resolve().parents[2])!r})
        from tests.studio.conftest import make_studio, setup_project
        st = make_studio(pathlib.Path({str(tmp_path)!r}), None)
        tid = setup_project(st, 1)["tasks"][0]
        runs = [1, 2**62, 1, 2**62, 1, 2**62, 1, 2**62, 0, {H * W}]
        r = st.call("annotator", "PUT", f"/api/tasks/{{tid}}/annotation", json={{
            "base_version": 0, "width": {W}, "height": {H}, "runs": runs,
            "segments": [{{"id": 1, "category_id": 2}}]}})
        print("STATUS", r.status_code, r.json()["detail"])
        v = st.ok("annotator", "GET", f"/api/tasks/{{tid}}")["version"]
        print("VERSION", v)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"server process died (rc {p.returncode}): {p.stderr[-2000:]}"
    assert "STATUS 422 runs:" in p.stdout and "VERSION 0" in p.stdout, p.stdout + p.stderr[-2000:]


def test_decode_runs_checks_before_allocating():
    from segflow.studio.services.masks import MaskError, decode_runs

    for runs in ([1, 2**62] * 4 + [0, H * W], [2**63, H * W], [0, 2**63], [0, 2**64 + 5],
                 [-1, H * W], [2**31, H * W], [0, H * W + 1], [0, 0, 0, H * W], [0] * (2 * H * W + 2),
                 [0.5, H * W], ["a", H * W], [[0, H * W]]):
        with pytest.raises(MaskError, match="runs"):
            decode_runs(runs, H, W)
    ok = decode_runs([3, 10, 0, H * W - 10], H, W)  # a round trip still works
    assert ok.dtype == np.int32 and ok.sum() == 30 and ok.ravel()[9] == 3 and ok.ravel()[10] == 0


def test_ids_or_lengths_of_2_63_are_422(studio):
    st = studio
    tid = setup_project(st, 1)["tasks"][0]
    for runs in ([2**63, H * W], [0, 2**63], [2**64, H * W], [0, 2**63 - 1]):
        body = labels_body(st, tid, np.zeros((H, W), np.int32), [])
        body["runs"] = runs
        r = st.call("annotator", "PUT", f"/api/tasks/{tid}/annotation", json=body)
        assert r.status_code == 422 and r.json()["detail"].startswith("runs:"), r.text
    assert st.ok("annotator", "GET", f"/api/tasks/{tid}")["version"] == 0


ASSIST = [
    ('{"tool": "threshold", "point": [NaN, 3]}', "point"),
    ('{"tool": "kmeans", "point": [Infinity, 3]}', "point"),
    ('{"tool": "superpixel", "point": [3, -Infinity]}', "point"),
    ('{"tool": "grabcut", "box": [0, 0, Infinity, 30]}', "box"),
    ('{"tool": "grabcut", "box": [NaN, 0, 30, 30]}', "box"),
    ('{"tool": "grabcut", "box": [0, 0, 1e400, 30]}', "box"),
    ('{"tool": "threshold", "point": [1e300, 3]}', "point"),
    ('{"tool": "threshold", "point": [3, 3], "k": 9223372036854775808}', "k"),
]


def test_assist_with_non_finite_numbers_is_422(studio):
    st = studio
    tid = setup_project(st, 1)["tasks"][0]
    for body, field in ASSIST:
        r = raw(st, "annotator", "POST", f"/api/tasks/{tid}/assist", body)
        assert r.status_code == 422 and r.json()["detail"].startswith(field), (body, r.text)


def test_grabcut_box_over_the_whole_image_works(studio):
    """Dragging past every edge of the image gives a box over all of it: GrabCut then has no
    background sample (an OpenCV assertion, a 500). The outer frame is used as background."""
    from segflow.studio.services.masks import decode_runs
    from tests.studio.conftest import blob_image

    st = studio
    tid = setup_project(st, 1)["tasks"][0]
    truth = blob_image(0)[..., 0] > 100  # the bright discs are the objects
    for box in ([0, 0, W, H], [-50, -50, 10 * W, 10 * H], [-5000, -5000, 1e6, 1e6]):
        r = st.call("annotator", "POST", f"/api/tasks/{tid}/assist",
                    json={"tool": "grabcut", "box": box})
        assert r.status_code == 200, r.text
        m = decode_runs(r.json()["runs"], H, W).astype(bool)
        assert (m & truth).sum() / (m | truth).sum() > 0.8


NOT_JSON = [
    ("text/plain", "BODY"),
    ("application/x-www-form-urlencoded", "base_version=0&width=128"),
    ("multipart/form-data; boundary=xyz",
     "--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\nb\r\n--xyz--\r\n"),
    ("application/json", b"\xff\xfe not json"),
    ("application/json", "[1, 2, 3]"),
    ("application/json", ""),
]


def test_bodies_that_are_not_json_objects_are_422(studio):
    st = studio
    tid = setup_project(st, 1)["tasks"][0]
    for ctype, body in NOT_JSON:
        if body == "BODY":
            body = json.dumps(labels_body(st, tid, np.zeros((H, W), np.int32), []))
        r = raw(st, "annotator", "PUT", f"/api/tasks/{tid}/annotation", body, ctype)
        # 400 is FastAPI's own "error parsing the body" for a body that is not even JSON
        assert r.status_code == (400 if ctype == "application/json" and body[:1] == b"\xff"
                                 else 422), (ctype, body, r.text)
        assert "body" in r.json()["detail"].lower()
    assert st.ok("annotator", "GET", f"/api/tasks/{tid}")["version"] == 0


def test_seconds_not_finite_is_422_and_the_handler_survives(studio):
    """The validation-error handler echoed the input (NaN, bytes) and failed serialising it."""
    st = studio
    tid = setup_project(st, 1)["tasks"][0]
    for value in ("NaN", "Infinity", "-Infinity", "1e999", "-1"):
        body = json.dumps(labels_body(st, tid, np.zeros((H, W), np.int32), [])).replace(
            '"seconds": 12.5', f'"seconds": {value}')
        r = raw(st, "annotator", "PUT", f"/api/tasks/{tid}/annotation", body)
        assert r.status_code == 422 and r.json()["detail"].startswith("seconds"), r.text


def test_validation_detail_never_fails():
    from segflow.studio.handlers import validation_detail

    detail, errors = validation_detail([{"type": "x", "loc": ("body", b"\xff", 2), "msg": "bad",
                                         "input": float("nan"), "ctx": {"e": ValueError()}}])
    assert detail.startswith("\\xff") or "xff" in detail
    json.dumps(errors, allow_nan=False)  # what JSONResponse does
    assert validation_detail([]) == ("the request is not valid", [])
    assert validation_detail([object()])[0] == "the request is not valid"


URLS = ["/api/tasks/9223372036854775808", "/api/tasks/-1",
                                 "/api/tasks/1/annotation?version=9223372036854775807",
                                 "/api/tasks/1/diff.png?a=0&b=18446744073709551616",
                                 "/api/projects/2147483648", "/api/images/99999999999999999999",
                                 "/api/projects/1/tasks?state=nonsense"]
BODIES = [
    ("/api/projects/{pid}/members", {"user_ids": [2**63]}),
    ("/api/projects/{pid}/assign", {"mode": "manual", "user_ids": [1], "task_ids": [2**63]}),
    ("/api/projects/{pid}/guidelines", {"markdown": "x", "examples": [{"image_id": 2**63,
                                                                        "kind": "good"}]}),
    ("/api/projects", {"name": "p", "image_count": 2**63, "schema": [{"id": 1, "name": "a"}]}),
]


def test_parameters_and_body_integers_out_of_range_are_422(studio):
    st = studio
    pid = setup_project(st, 1)["pid"]
    for url in URLS:
        r = st.call("manager", "GET", url)
        assert r.status_code == 422, (url, r.text)
    for path, body in BODIES:
        r = st.call("manager", "POST", path.format(pid=pid), json=body)
        assert r.status_code == 422, (path, r.text)


def test_read_only_images_folder_is_a_503_with_a_reason(studio, monkeypatch):
    """The OS refusing a write (read-only disk, no permission) was a bare 500."""
    import tempfile

    from tests.studio.conftest import blob_image, png_bytes

    st = studio
    pid = setup_project(st, 1)["pid"]
    images = st.app.state.store.root

    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(images))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    r = st.call("manager", "POST", f"/api/projects/{pid}/images",
                files=[("files", ("a.png", png_bytes(blob_image(77)), "image/png"))])
    assert r.status_code == 503, r.text
    assert str(images) in r.json()["detail"] and "writable" in r.json()["detail"]


def test_full_or_read_only_exports_folder_is_a_clear_error(studio, monkeypatch):
    from pathlib import Path

    st = studio
    ctx = setup_project(st, 1)
    pid, tid = ctx["pid"], ctx["tasks"][0]
    ids = np.zeros((H, W), np.int32)
    ids[10:30, 10:30] = 1
    st.ok("annotator", "PUT", f"/api/tasks/{tid}/annotation",
          json=labels_body(st, tid, ids, [{"id": 1, "category_id": 2}]))
    st.ok("annotator", "POST", f"/api/tasks/{tid}/submit")
    st.ok("reviewer", "POST", f"/api/tasks/{tid}/review", json={"decision": "accept"})
    mkdir = Path.mkdir
    for code, err in ((503, errno.EACCES), (507, errno.ENOSPC)):
        def refuse(self, *a, err=err, **k):
            if "exports" in str(self):
                raise OSError(err, "refused", str(self))
            return mkdir(self, *a, **k)

        monkeypatch.setattr(Path, "mkdir", refuse)
        r = st.call("manager", "POST", f"/api/projects/{pid}/export", json={"format": "coco"})
        assert r.status_code == code, r.text
        assert "exports" in r.json()["detail"] and "retry" in r.json()["detail"]


def test_server_paths_with_control_characters_are_422(studio):
    """A NUL in a raster path reached os.path.realpath and answered 500; every server path
    (folder import, volume, raster, pre-label checkpoint) is now checked in the schema."""
    ctx = setup_project(studio, 1, task_type="semantic")
    pid = ctx["pid"]
    for method, url, body in (
            ("POST", f"/api/projects/{pid}/rasters", {"path": "/data/a\x00.tif"}),
            ("POST", f"/api/projects/{pid}/volumes", {"path": "/data/ct\x00.nii"}),
            ("POST", f"/api/projects/{pid}/import", {"path": "/data/\nset"}),
            ("PUT", f"/api/projects/{pid}/prelabel", {"mode": "checkpoint",
                                                      "checkpoint": "/m\x00.pt"})):
        r = studio.call("admin", method, url, json=body)
        assert r.status_code == 422, (url, r.status_code, r.text)
        assert "control characters" in r.json()["detail"], r.text
