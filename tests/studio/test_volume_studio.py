"""Volumes in the studio (issue 14): import, planes on three axes, saving planes as chunks,
interpolation, the NIfTI export with the scan's affine, review, and bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.studio.conftest import setup_project


@pytest.fixture(autouse=True)
def _needs_nibabel():
    pytest.importorskip("nibabel")

SHAPE = (40, 36, 12)
AFFINE = np.array([[-0.8, 0, 0, 30.0], [0, 0.9, 0, -20.0], [0, 0, 2.5, 7.0], [0, 0, 0, 1]])


def write_scan(path, seed=0):
    import nibabel as nib

    rng = np.random.default_rng(seed)
    arr = rng.normal(40, 10, SHAPE).astype(np.float32)
    arr[10:30, 8:28, 3:9] += 300
    img = nib.Nifti1Image(arr, AFFINE)
    img.set_sform(AFFINE, code=1)
    nib.save(img, str(path))
    return arr


def volume_task(st, tmp_path, seed=0) -> tuple[int, int]:
    """A project with one volume task assigned to ``annotator``: (project id, task id)."""
    ctx = setup_project(st, 1, task_type="semantic")
    pid = ctx["pid"]
    path = tmp_path / f"scan{seed}.nii.gz"
    write_scan(path, seed)
    r = st.ok("admin", "POST", f"/api/projects/{pid}/volumes", json={"path": str(path)})
    st.ok("manager", "POST", f"/api/projects/{pid}/assign",
          json={"mode": "manual", "user_ids": [st.ids["annotator"]], "task_ids": [r["task_id"]]})
    return pid, r["task_id"]


def runs(a):
    from segflow.studio.services.masks import encode_runs

    return encode_runs(np.asarray(a, np.int32))


def plane(st, tid, axis, index, who="annotator", **q):
    from segflow.studio.services.masks import decode_runs

    d = st.ok(who, "GET", f"/api/tasks/{tid}/volume/labels/{axis}/{index}", params=q)
    return decode_runs(d["runs"], d["height"], d["width"])


def test_volume_planes_save_reload_export(studio, tmp_path):
    st = studio
    pid, tid = volume_task(st, tmp_path)
    info = st.ok("annotator", "GET", f"/api/tasks/{tid}/volume")
    assert info["shape"] == list(SHAPE) and info["version"] == 0
    assert np.allclose(info["spacing"], [0.8, 0.9, 2.5])
    assert [p["slices"] for p in info["planes"]] == list(SHAPE)
    png = st.ok("annotator", "GET", f"/api/tasks/{tid}/volume/planes/2/5.png",
                params={"level": 40, "width": 400})
    from PIL import Image

    im = np.asarray(Image.open(io.BytesIO(png.content)))
    assert im.shape == (SHAPE[1], SHAPE[0])  # axial: J rows, I columns
    # paint an axial plane and a sagittal plane, save, and read the voxels back on every axis
    ax = np.zeros((SHAPE[1], SHAPE[0]), np.int32)
    ax[5:15, 10:20] = 1
    sag = np.zeros((SHAPE[2], SHAPE[1]), np.int32)
    sag[2:4, 3:9] = 1
    body = {"base_version": 0, "segments": [{"id": 1, "category_id": 2}],
            "planes": [{"axis": 2, "index": 5, "runs": runs(ax)},
                       {"axis": 0, "index": 33, "runs": runs(sag)}]}
    r = st.ok("annotator", "PUT", f"/api/tasks/{tid}/volume/labels", json=body)
    assert r["version"] == 1 and r["chunks_written"] == 3  # k=5 and the two k the sagittal touches
    want = np.zeros(SHAPE, np.int32)
    want[:, :, 5] = ax[::-1].T
    want[33, :, :] = np.where(sag[::-1].T > 0, 1, want[33, :, :])
    for axis in range(3):
        for index in (0, 5, 33 % SHAPE[axis], SHAPE[axis] - 1):
            got = plane(st, tid, axis, index)
            assert np.array_equal(got, np.take(want, index, axis=axis).T[::-1]), (axis, index)
    # the areas are the voxels of the whole volume
    assert st.ok("annotator", "GET", f"/api/tasks/{tid}/volume")["segments"][0]["area"] == int(want.sum())
    # a second save touching nothing writes no chunk but still a version
    r2 = st.ok("annotator", "PUT", f"/api/tasks/{tid}/volume/labels",
               json={**body, "base_version": 1, "planes": body["planes"][:1]})
    assert r2 == {"version": 2, "segments": 1, "chunks_written": 0}
    # an old base version: 409, nothing overwritten
    assert st.call("annotator", "PUT", f"/api/tasks/{tid}/volume/labels", json=body).status_code == 409
    # the export is the voxels, with the scan's affine
    import nibabel as nib

    out = tmp_path / "labels.nii.gz"
    out.write_bytes(st.ok("annotator", "GET", f"/api/tasks/{tid}/volume/export.nii.gz").content)
    img = nib.load(str(out))
    assert np.allclose(img.affine, AFFINE)
    assert np.array_equal(np.asarray(img.dataobj), want * 2)  # class ids (category 2)
    # version 0 is empty; submit and review as for an image
    assert not plane(st, tid, 2, 5, version=0).any()
    st.ok("annotator", "POST", f"/api/tasks/{tid}/submit")
    assert np.array_equal(plane(st, tid, 2, 5, who="reviewer"), ax)
    st.ok("reviewer", "POST", f"/api/tasks/{tid}/review", json={"decision": "accept"})
    assert st.call("annotator", "PUT", f"/api/tasks/{tid}/volume/labels",
                   json={**body, "base_version": 2}).status_code == 409


def test_interpolation_between_discs(studio, tmp_path):
    """Concentric discs of radius 4 and 12 four slices apart: the slices between are discs of
    radius 6, 8, 10 (the blend of the signed distances |p - c| - r is exactly that disc); a
    segment on one plane only is not carried over."""
    st = studio
    _, tid = volume_task(st, tmp_path)
    h, w = SHAPE[1], SHAPE[0]
    yy, xx = np.mgrid[:h, :w]
    a = ((yy - 18) ** 2 + (xx - 12) ** 2 <= 16).astype(np.int32)
    b = ((yy - 18) ** 2 + (xx - 12) ** 2 <= 144).astype(np.int32)
    b[0:3, 30:33] = 2
    r = st.ok("annotator", "POST", f"/api/tasks/{tid}/volume/interpolate",
              json={"a": {"axis": 2, "index": 2, "runs": runs(a)},
                    "b": {"axis": 2, "index": 6, "runs": runs(b)}})
    from segflow.studio.services.masks import decode_runs

    assert [p["index"] for p in r["planes"]] == [3, 4, 5]
    for k, p in enumerate(r["planes"], 1):
        got = decode_runs(p["runs"], h, w)
        rad = 4 + 2 * k
        disc = (yy - 18) ** 2 + (xx - 12) ** 2 < rad * rad
        assert set(np.unique(got).tolist()) == {0, 1}
        assert (got.astype(bool) != disc).sum() <= 2 * np.pi * rad * 0.5, k  # boundary pixels


BAD_PLANE_REQUESTS = [
    ("/api/tasks/{tid}/volume/labels/2/12", 422),           # out of range (12 slices: 0..11)
    ("/api/tasks/{tid}/volume/labels/3/0", 422),            # no axis 3
    ("/api/tasks/{tid}/volume/labels/2/9223372036854775808", 422),
    ("/api/tasks/{tid}/volume/labels/2/-1", 422),
    ("/api/tasks/{tid}/volume/planes/2/1.png?level=nan", 422),
    ("/api/tasks/{tid}/volume/planes/2/1.png?width=0", 422),
    ("/api/tasks/{tid}/volume/planes/2/1.png?width=inf", 422),
    ("/api/tasks/{tid}/volume/planes/1/99.png", 422),
    ("/api/tasks/{tid}/volume/labels/2/1?version=5", 404),
]


def test_bad_plane_requests_get_a_reason(studio, tmp_path):
    st = studio
    _, tid = volume_task(st, tmp_path)
    for url, code in BAD_PLANE_REQUESTS:
        r = st.call("annotator", "GET", url.format(tid=tid))
        assert r.status_code == code, (url, r.text)
        assert r.json()["detail"]


def test_bad_saves_and_imports(studio, tmp_path):
    st = studio
    pid, tid = volume_task(st, tmp_path)
    ok = np.zeros((SHAPE[1], SHAPE[0]), np.int32)
    ok[1, 1] = 1
    seg = [{"id": 1, "category_id": 2}]

    def put(planes, segments=seg):
        return st.call("annotator", "PUT", f"/api/tasks/{tid}/volume/labels",
                       json={"base_version": 0, "segments": segments, "planes": planes})

    for planes, segments, want in [
        ([{"axis": 2, "index": 12, "runs": runs(ok)}], seg, "out of range"),
        ([{"axis": 1, "index": 0, "runs": runs(ok)}], seg, "coronal plane 0 (40x12): runs"),  # wrong size
        ([{"axis": 2, "index": 0, "runs": [1, 5]}], seg, "cover"),
        ([{"axis": 2, "index": 0, "runs": [1, 2**62, 1, 2**62]}], seg, "lengths"),
        ([{"axis": 2, "index": 0, "runs": runs(ok)}], [], "no entry in segments"),
        ([{"axis": 2, "index": 0, "runs": runs(ok)}], [{"id": 1, "category_id": 9}], "schema"),
    ]:
        r = put(planes, segments)
        assert r.status_code == 422 and want in r.text, (want, r.status_code, r.text)
    assert st.ok("annotator", "GET", f"/api/tasks/{tid}")["version"] == 0  # nothing written
    r = st.call("annotator", "POST", f"/api/tasks/{tid}/volume/interpolate",
                json={"a": {"axis": 2, "index": 1, "runs": runs(ok)},
                      "b": {"axis": 2, "index": 2, "runs": runs(ok)}})
    assert r.status_code == 422 and "planes between" in r.text
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"\x1f\x8b not a nifti")
    for path in (broken, tmp_path / "missing.nii.gz"):
        r = st.call("admin", "POST", f"/api/projects/{pid}/volumes", json={"path": str(path)})
        assert r.status_code == 400 and str(path.name) in r.json()["detail"], r.text
    again = st.call("admin", "POST", f"/api/projects/{pid}/volumes",
                    json={"path": str(tmp_path / "scan0.nii.gz")})
    assert again.status_code == 400 and "already image" in again.text
    # an image task is not a volume
    img_task = st.ok("admin", "GET", f"/api/projects/{pid}/tasks")[0]["id"]
    assert st.call("admin", "GET", f"/api/tasks/{img_task}/volume").status_code == 404
    # pre-labels skip the volume (they read images from the image store: it failed the job)
    r = st.ok("manager", "PUT", f"/api/projects/{pid}/prelabel?wait=60",
              json={"mode": "pipeline", "pipeline": "auto"})
    assert r["prelabelled"] == 1
    assert st.ok("admin", "GET", f"/api/tasks/{tid}")["version"] == 0


def test_project_export_beside_a_volume(studio, tmp_path):
    """A project's dataset export holds its images; its accepted volumes are exported per task
    as NIfTI (the export read them from the image store and failed)."""
    from tests.studio.conftest import labels_body

    st = studio
    pid, tid = volume_task(st, tmp_path)
    img_task = st.ok("admin", "GET", f"/api/projects/{pid}/tasks")[0]["id"]
    ids = np.zeros((96, 128), np.int32)
    ids[10:20, 10:20] = 1
    seg = [{"id": 1, "category_id": 2}]
    st.ok("annotator", "PUT", f"/api/tasks/{img_task}/annotation", json=labels_body(st, img_task, ids, seg))
    ax = np.zeros((SHAPE[1], SHAPE[0]), np.int32)
    ax[3:5, 3:5] = 1
    st.ok("annotator", "PUT", f"/api/tasks/{tid}/volume/labels", json={
        "base_version": 0, "segments": seg, "planes": [{"axis": 2, "index": 1, "runs": runs(ax)}]})
    for t in (img_task, tid):
        st.ok("annotator", "POST", f"/api/tasks/{t}/submit")
        st.ok("reviewer", "POST", f"/api/tasks/{t}/review", json={"decision": "accept"})
    r = st.ok("manager", "POST", f"/api/projects/{pid}/export?wait=60", json={"format": "coco"})
    assert r["n_images"] == 1


def matrix_volume(st, c) -> int:
    """For the permission matrix (test_api.py): a volume task of the matrix's project, assigned
    to ``annotator`` (made once, kept in the matrix's context ``c``)."""
    if "volume" not in c:
        from pathlib import Path

        path = Path(c["folder"]).parent / "matrix-scan.nii.gz"
        write_scan(path, 7)
        c["volume_path"] = str(path)
        r = st.ok("admin", "POST", f"/api/projects/{c['pid']}/volumes", json={"path": str(path)})
        st.ok("manager", "POST", f"/api/projects/{c['pid']}/assign", json={
            "mode": "manual", "user_ids": [st.ids["annotator"]], "task_ids": [r["task_id"]]})
        c["volume"] = r["task_id"]
    return c["volume"]


def matrix_volume_save(st, c) -> dict:
    tid = matrix_volume(st, c)
    return {"json": {"base_version": st.ok("admin", "GET", f"/api/tasks/{tid}")["version"],
                     "segments": [], "planes": []}}


def matrix_interpolate(st, c) -> dict:
    z = runs(np.zeros((SHAPE[1], SHAPE[0]), np.int32))
    return {"json": {"a": {"axis": 2, "index": 0, "runs": z}, "b": {"axis": 2, "index": 3, "runs": z}}}


def test_dicom_series_opens_with_ct_windows(studio, tmp_path):
    """A DICOM series (made with pydicom, files shuffled) opens with its slice order, spacing
    and the CT window presets; the export has the series' affine; a series with a missing slice
    is refused with one line and adds nothing."""
    pytest.importorskip("pydicom")
    from PIL import Image

    from segflow.volume.display import CT_WINDOWS, apply_window
    from segflow.volume.io import read_volume
    from tests.test_volume_io import _dicom_series

    st = studio
    pid = setup_project(st, 1, task_type="semantic")["pid"]
    rng = np.random.default_rng(2)
    vol = rng.integers(-1000, 1500, (7, 12, 10)).astype(np.int16)
    _dicom_series(tmp_path / "ct", vol, order=[3, 0, 6, 1, 5, 2, 4])
    r = st.ok("admin", "POST", f"/api/projects/{pid}/volumes", json={"path": str(tmp_path / "ct")})
    ref = read_volume(tmp_path / "ct")
    assert r["shape"] == [10, 12, 7] and np.allclose(r["spacing"], (0.9, 0.7, 2.5))
    tid = r["task_id"]
    info = st.ok("admin", "GET", f"/api/tasks/{tid}/volume")
    assert info["modality"] == "CT"
    assert {k: tuple(v) for k, v in info["presets"].items() if k != "default"} == {
        k: CT_WINDOWS[k] for k in ("lung", "soft_tissue", "bone")}
    lv, wd = CT_WINDOWS["bone"]
    png = st.ok("admin", "GET", f"/api/tasks/{tid}/volume/planes/2/3.png", params={"level": lv, "width": wd})
    got = np.asarray(Image.open(io.BytesIO(png.content)))
    assert np.array_equal(got, apply_window(ref.array[:, :, 3], lv, wd).T[::-1])
    nii = tmp_path / "out.nii.gz"
    nii.write_bytes(st.ok("admin", "GET", f"/api/tasks/{tid}/volume/export.nii.gz").content)
    import nibabel as nib

    assert np.allclose(nib.load(str(nii)).affine, ref.affine)
    _dicom_series(tmp_path / "gap", vol, drop=(3,))
    before = len(st.ok("admin", "GET", f"/api/projects/{pid}/tasks"))
    bad = st.call("admin", "POST", f"/api/projects/{pid}/volumes", json={"path": str(tmp_path / "gap")})
    assert bad.status_code == 400 and "\n" not in bad.json()["detail"], bad.text
    assert len(st.ok("admin", "GET", f"/api/projects/{pid}/tasks")) == before
