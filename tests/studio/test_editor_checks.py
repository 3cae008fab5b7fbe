"""Studio checks behind the editor, on SQLite and PostgreSQL: class hotkeys that would collide
with the editor's tool keys, untouched pre-labels flagged for review, GrabCut on small boxes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.studio.conftest import png_bytes, setup_project


@pytest.mark.parametrize("key, tool", [("b", "Brush"), ("P", "Polygon"), ("e", "Eraser"),
                                       ("f", "Fill"), ("n", "New object"), ("[", "smaller")])
def test_class_hotkeys_may_not_take_tool_keys(studio, key, tool):
    st = studio
    schema = [{"id": 1, "name": "bottle", "hotkey": key}, {"id": 2, "name": "can", "hotkey": "c"}]
    r = st.call("manager", "POST", "/api/projects", json={"name": "p", "schema": schema})
    assert r.status_code == 422, r.text
    d = r.json()["detail"]
    assert d.startswith("schema:") and repr(key) in d and tool in d and "bottle" in d


def test_hotkeys_unique_ignoring_case_and_the_demo_keeps_clear(studio):
    st = studio
    r = st.call("manager", "POST", "/api/projects", json={"name": "p", "schema": [
        {"id": 1, "name": "a", "hotkey": "x"}, {"id": 2, "name": "b", "hotkey": "X"}]})
    assert r.status_code == 422 and "unique" in r.json()["detail"]
    ok = st.call("manager", "POST", "/api/projects", json={"name": "p", "schema": [
        {"id": 1, "name": "a", "hotkey": "x"}, {"id": 2, "name": "b", "hotkey": "2"}]})
    assert ok.status_code == 201
    from segflow.studio.services.workflow import EDITOR_KEYS

    pid = ok.json()["id"]
    brief = {"name": "p", "schema": [{"id": 1, "name": "a", "hotkey": "p"}]}
    assert st.call("manager", "PUT", f"/api/projects/{pid}/brief", json=brief).status_code == 422
    assert set(EDITOR_KEYS) >= {"b", "e", "p", "f", "n"}  # the demo's classes avoid these


def test_untouched_prelabels_are_flagged(studio):
    """Pre-labels resaved and submitted with no human edit are flagged in the API (and the
    review page shows it); an edit clears the flag."""
    from segflow.studio.services.masks import decode_runs

    st = studio
    ctx = setup_project(st, 2)
    pid, (t1, t2) = ctx["pid"], ctx["tasks"]
    st.ok("manager", "PUT", f"/api/projects/{pid}/prelabel?wait=60", json={"mode": "pipeline",
                                                                           "pipeline": "auto"})
    assert st.ok("annotator", "GET", f"/api/tasks/{t1}")["untouched_prelabel"] is True
    for tid, edit in ((t1, False), (t2, True)):
        a = st.ok("annotator", "GET", f"/api/tasks/{tid}/annotation")
        runs = a["runs"]
        if edit:  # one pixel moved to another segment
            ids = decode_runs(runs, a["height"], a["width"])
            ids[0, 0] = a["segments"][0]["id"]
            from segflow.studio.services.masks import encode_runs

            runs = encode_runs(ids)
        r = st.ok("annotator", "PUT", f"/api/tasks/{tid}/annotation", json={
            "base_version": a["version"], "width": a["width"], "height": a["height"],
            "runs": runs, "segments": a["segments"]})
        assert r["untouched_prelabel"] is (not edit)
        st.ok("annotator", "POST", f"/api/tasks/{tid}/submit")
    queue = {t["id"]: t["untouched_prelabel"] for t in
             st.ok("reviewer", "GET", f"/api/projects/{pid}/review-queue")}
    assert queue == {t1: True, t2: False}
    # a task never pre-labelled is not flagged
    up = st.ok("manager", "PUT", f"/api/projects/{pid}/prelabel", json={"mode": "none"})
    assert up["prelabelled"] == 0
    page = st.call("reviewer", "GET", f"/tasks/{t1}/review")
    assert 'id="untouched"' in page.text


@pytest.fixture(scope="module")
def shelf(tmp_path_factory):
    from segflow.formats import open_dataset
    from segflow.synth.export import export_synthetic

    out = export_synthetic("retail", tmp_path_factory.mktemp("shelf") / "s", n=1, seed=7,
                           size=384, fmt="coco_panoptic", progress=False)
    it = open_dataset(out)[0]
    return it.image(), it.panoptic


def test_grabcut_finds_a_small_object_among_look_alikes(shelf):
    """Small cans next to identical ones: whole-image colour models gave 0 pixels."""
    from segflow.segment.grabcut import grabcut
    from segflow.studio.services.assist import grabcut_region

    img, pan = shelf
    for sid in (12, 21):
        m = pan.seg_ids == sid
        ys, xs = np.nonzero(m)
        box = [int(xs.min()) - 3, int(ys.min()) - 3, int(np.ptp(xs)) + 7, int(np.ptp(ys)) + 7]
        assert grabcut(img, box).sum() == 0  # the library default: nothing, silently
        got = grabcut_region(img, box)
        assert (got & m).sum() / (got | m).sum() > 0.85, sid


def test_grabcut_says_when_it_finds_nothing(studio):
    st = studio
    ctx = setup_project(st, 1)
    flat = np.full((96, 128, 3), 77, np.uint8)
    up = st.ok("manager", "POST", f"/api/projects/{ctx['pid']}/images",
               files=[("files", ("flat.png", png_bytes(flat), "image/png"))])
    tid = up["task_ids"][0]
    st.ok("manager", "POST", f"/api/projects/{ctx['pid']}/assign",
          json={"mode": "manual", "user_ids": [st.ids["annotator"]], "task_ids": [tid]})
    r = st.call("annotator", "POST", f"/api/tasks/{tid}/assist",
                json={"tool": "grabcut", "box": [40, 30, 20, 20]})
    assert r.status_code == 422 and "found no object" in r.json()["detail"]
