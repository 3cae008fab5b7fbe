"""Request bodies are capped: 413 with the limit and the option that raises it, before the
body is read when Content-Length says so, and while reading when it does not (chunked);
nothing from a refused request is stored."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segflow.errors import SegflowError
from tests.studio.conftest import blob_image, labels_body, make_studio, png_bytes, setup_project


@pytest.fixture
def small(tmp_path, monkeypatch):
    import segflow.studio.app as appmod

    real = appmod.create_app
    monkeypatch.setattr(appmod, "create_app",
                        lambda *a, **kw: real(*a, max_upload_mb=1, max_body_mb=0.25, **kw))
    st = make_studio(tmp_path, None)
    yield st
    st.app.state.jobs.shutdown()
    st.app.state.engine.dispose()


def _noisy(seed: int, shape=(96, 128)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (*shape, 3), dtype=np.uint8)


def test_a_json_body_over_the_cap_is_413_and_saves_nothing(small):
    ids = setup_project(small, 1)
    tid = ids["tasks"][0]
    before = small.ok("annotator", "GET", f"/api/tasks/{tid}")["version"]
    lab = np.zeros((96, 128), np.int32)
    body = labels_body(small, tid, lab, [])
    body["runs"] = body["runs"] + [0] * 200_000  # ~600 KB of JSON, over 0.25 MiB
    r = small.call("annotator", "PUT", f"/api/tasks/{tid}/annotation", json=body)
    assert r.status_code == 413, r.text
    assert "--max-body-mb" in r.json()["detail"] and "0.25 MiB" in r.json()["detail"]
    assert small.ok("annotator", "GET", f"/api/tasks/{tid}")["version"] == before
    # a body under the cap still saves
    ok = small.call("annotator", "PUT", f"/api/tasks/{tid}/annotation",
                    json=labels_body(small, tid, lab, []))
    assert ok.status_code == 200, ok.text


def test_a_chunked_body_without_content_length_is_cut_off_at_the_cap(small):
    ids = setup_project(small, 1)
    tid = ids["tasks"][0]
    before = small.ok("annotator", "GET", f"/api/tasks/{tid}")["version"]
    head = b'{"base_version": %d, "width": 128, "height": 96, "segments": [], "runs": [0' % before

    def chunks():
        yield head
        for _ in range(100):
            yield b", 0" * 5000  # 15 KB a chunk, 1.5 MB in all

        yield b"]}"

    r = small.client.request("PUT", f"/api/tasks/{tid}/annotation", content=chunks(),
                             headers={**small.as_("annotator"), "Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    assert "limit of 0.25 MiB" in r.json()["detail"]
    assert small.ok("annotator", "GET", f"/api/tasks/{tid}")["version"] == before


def test_an_upload_over_its_cap_is_413_and_adds_no_image(small):
    ids = setup_project(small, 1)
    pid = ids["pid"]
    n0 = len(small.ok("manager", "GET", f"/api/projects/{pid}/tasks"))
    big = [("files", (f"n{k}.png", png_bytes(_noisy(k, (400, 400))), "image/png")) for k in range(3)]
    r = small.call("manager", "POST", f"/api/projects/{pid}/images", files=big)  # ~1.4 MB
    assert r.status_code == 413, r.text
    assert "--max-upload-mb" in r.json()["detail"]
    assert len(small.ok("manager", "GET", f"/api/projects/{pid}/tasks")) == n0
    # the upload cap, not the JSON one, applies to forms: 0.5 MB of images is fine
    fine = [("files", ("ok.png", png_bytes(_noisy(9, (400, 400))), "image/png"))]
    assert small.call("manager", "POST", f"/api/projects/{pid}/images", files=fine).status_code == 201
    small.ok("manager", "POST", f"/api/projects/{pid}/images",
             files=[("files", ("b.png", png_bytes(blob_image(3)), "image/png"))])
    # a form sent to any other route has the JSON cap: 0.5 MB is over it
    r = small.call("manager", "POST", f"/api/projects/{pid}/guidelines", files=fine)
    assert r.status_code == 413 and "--max-body-mb" in r.json()["detail"], r.text


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, 2.0**63, "12"])
def test_caps_that_are_not_positive_sizes_are_refused_in_one_line(tmp_path, bad):
    from segflow.studio.app import create_app

    with pytest.raises(SegflowError, match="max-body-mb"):
        create_app(None, tmp_path / "d", max_body_mb=bad)
