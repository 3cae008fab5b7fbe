"""Huge georeferenced rasters in the studio (issue 15): the tile pyramid, label tiles saved
only when touched, GeoTIFF and GeoJSON exports with the raster's CRS and transform, and bad
input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.studio.conftest import setup_project

CRS = "EPSG:32633"
ORIGIN = (500000.0, 4100000.0)
PIXEL = 0.5  # metres


def scene_block(row: int, col: int, h: int, w: int) -> np.ndarray:
    """Pixels [row:row+h, col:col+w] of a synthetic aerial scene of any size: fields in a
    checkerboard of 600 px squares, with a road every 2,000 px (made window by window, so a
    20,000 x 20,000 raster never sits in memory)."""
    y = np.arange(row, row + h)
    x = np.arange(col, col + w)
    odd = ((y // 600) % 2 == 1)[:, None] ^ ((x // 600) % 2 == 1)[None, :]  # no h x w int64 temps
    v = np.where(odd, np.uint8(140), np.uint8(70))
    v[y % 2000 < 24] = 220
    v[:, x % 2000 < 24] = 220
    return np.stack([v, (v * 0.8).astype(np.uint8), (v // 2).astype(np.uint8)])


def write_raster(path, width: int, height: int, *, crs=CRS, block_rows: int = 1024) -> None:
    """A 3-band uint8 GeoTIFF, tiled and compressed, written in bands of ``block_rows`` rows."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    prof = dict(driver="GTiff", width=width, height=height, count=3, dtype="uint8",
                crs=crs, transform=from_origin(*ORIGIN, PIXEL, PIXEL), tiled=True,
                blockxsize=512, blockysize=512, compress="deflate", BIGTIFF="IF_SAFER")
    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(path, "w", **prof) as ds:
        for row in range(0, height, block_rows):
            h = min(block_rows, height - row)
            ds.write(scene_block(row, 0, h, width), window=Window(0, row, width, h))


def raster_task(st, tmp_path, width=1500, height=1100, name="scene.tif", **kw) -> tuple[int, int]:
    ctx = setup_project(st, 1, task_type="semantic")
    pid = ctx["pid"]
    path = tmp_path / name
    write_raster(path, width, height, **kw)
    r = st.ok("admin", "POST", f"/api/projects/{pid}/rasters?wait=60", json={"path": str(path)})
    st.ok("manager", "POST", f"/api/projects/{pid}/assign",
          json={"mode": "manual", "user_ids": [st.ids["annotator"]], "task_ids": [r["task_id"]]})
    return pid, r["task_id"]


def runs(a):
    from segflow.studio.services.masks import encode_runs

    return encode_runs(np.asarray(a, np.int32))


@pytest.fixture(autouse=True)
def _needs_geo():
    pytest.importorskip("rasterio")
    pytest.importorskip("geopandas")


def test_pyramid_tiles_save_and_exports(studio, tmp_path):
    import io

    import rasterio
    from PIL import Image
    from rasterio.features import rasterize
    from shapely.geometry import shape

    st = studio
    pid, tid = raster_task(st, tmp_path)
    info = st.ok("annotator", "GET", f"/api/tasks/{tid}/raster")
    assert (info["width"], info["height"], info["levels"]) == (1500, 1100, 4)  # 1500/256 -> 2^3
    assert info["label_tiles"] == [3, 3] and info["epsg"] == 32633
    # level 0 is the raster itself; level 3 is the whole raster in one tile, averaged
    def tile(level, tx, ty):
        r = st.ok("annotator", "GET", f"/api/tasks/{tid}/raster/tiles/{level}/{tx}/{ty}.png")
        return np.asarray(Image.open(io.BytesIO(r.content)))

    t = tile(0, 1, 4)  # the bottom edge: rows 1024..1099
    assert t.shape == (76, 256, 3)
    assert np.array_equal(t, scene_block(1024, 256, 76, 256).transpose(1, 2, 0))
    top = tile(3, 0, 0)
    assert top.shape == (138, 188, 3)
    # paint across two label tiles; only those two are stored
    a = np.zeros((512, 512), np.int32)
    a[100:300, 400:512] = 1
    b = np.zeros((512, 512), np.int32)
    b[100:300, 0:50] = 1
    body = {"base_version": 0, "segments": [{"id": 1, "category_id": 2}],
            "tiles": [{"tx": 0, "ty": 0, "runs": runs(a)}, {"tx": 1, "ty": 0, "runs": runs(b)},
                      {"tx": 2, "ty": 2, "runs": runs(np.zeros((1100 - 1024, 1500 - 1024)))}]}
    r = st.ok("annotator", "PUT", f"/api/tasks/{tid}/raster/labels", json=body)
    assert r == {"version": 1, "segments": 1, "chunks_written": 2}
    from segflow.studio.services.masks import decode_runs

    d = st.ok("annotator", "GET", f"/api/tasks/{tid}/raster/labels/1/0")
    assert np.array_equal(decode_runs(d["runs"], d["height"], d["width"]), b)
    assert st.ok("annotator", "GET", f"/api/tasks/{tid}/raster")["segments"][0]["area"] == 200 * 162
    # a later save changes one tile: the areas add the stored tiles' counts to the new ones
    b2 = b.copy()
    b2[300:310, 0:50] = 1
    r2 = st.ok("annotator", "PUT", f"/api/tasks/{tid}/raster/labels", json={
        **body, "base_version": 1, "tiles": [{"tx": 1, "ty": 0, "runs": runs(b2)}]})
    assert r2["chunks_written"] == 1
    assert st.ok("annotator", "GET", f"/api/tasks/{tid}/raster")["segments"][0]["area"] == 200 * 162 + 500
    assert st.ok("annotator", "GET", f"/api/tasks/{tid}/raster/labels/1/0?version=1")["runs"] == runs(b)
    r3 = st.ok("annotator", "PUT", f"/api/tasks/{tid}/raster/labels", json={
        **body, "base_version": 2, "tiles": [{"tx": 1, "ty": 0, "runs": runs(b)}]})
    assert r3["version"] == 3
    with st.app.state.sessions() as s:
        from sqlalchemy import func, select

        from segflow.studio.tables import LabelChunk

        assert s.scalar(select(func.count()).select_from(LabelChunk).where(LabelChunk.task_id == tid)) == 4
    # GeoTIFF: class ids at the painted pixels, the raster's CRS and transform
    tif = tmp_path / "labels.tif"
    tif.write_bytes(st.ok("annotator", "GET", f"/api/tasks/{tid}/raster/export.tif").content)
    want = np.zeros((1100, 1500), np.uint8)
    want[100:300, 400:562] = 2
    with rasterio.open(tif) as ds, rasterio.open(tmp_path / "scene.tif") as src:
        assert ds.crs == src.crs and ds.transform == src.transform and ds.nodata == 0
        got = ds.read(1)
    assert np.array_equal(got, want)
    # GeoJSON: the polygons rasterised back give the mask; area in m^2
    gj = json.loads(st.ok("annotator", "GET", f"/api/tasks/{tid}/raster/export.geojson").content)
    with rasterio.open(tmp_path / "scene.tif") as src:
        back = rasterize([(shape(f["geometry"]), 2) for f in gj["features"]], out_shape=(1100, 1500),
                         transform=src.transform, dtype="uint8")
    assert np.array_equal(back, want)
    assert abs(sum(f["properties"]["area_m2"] for f in gj["features"]) - 200 * 162 * PIXEL**2) < 1e-6
    wgs = json.loads(st.ok("annotator", "GET", f"/api/tasks/{tid}/raster/export.geojson",
                           params={"to_crs": "EPSG:4326"}).content)
    x, y = wgs["features"][0]["geometry"]["coordinates"][0][0]
    assert 14 < x < 16 and 36 < y < 38  # UTM 33N, near 15 E, 37 N


BAD = [
    ("/api/tasks/{tid}/raster/tiles/4/0/0.png", 422, "levels 0..3"),
    ("/api/tasks/{tid}/raster/tiles/0/6/0.png", 422, "x is 0..5"),
    ("/api/tasks/{tid}/raster/tiles/0/0/5.png", 422, "y is 0..4"),
    ("/api/tasks/{tid}/raster/tiles/65/0/0.png", 422, ""),
    ("/api/tasks/{tid}/raster/tiles/0/nan/0.png", 422, ""),
    ("/api/tasks/{tid}/raster/tiles/0/9223372036854775808/0.png", 422, ""),
    ("/api/tasks/{tid}/raster/labels/3/0", 422, "x is 0..2"),
    ("/api/tasks/{tid}/raster/labels/0/-1", 422, ""),
    ("/api/tasks/{tid}/raster/labels/0/0?version=9", 404, "no version"),
    ("/api/tasks/{tid}/raster/export.geojson?to_crs=EPSG:abc", 422, ""),
]


def test_bad_raster_requests(studio, tmp_path):
    st = studio
    pid, tid = raster_task(st, tmp_path)
    for url, code, text in BAD:
        r = st.call("annotator", "GET", url.format(tid=tid))
        assert r.status_code == code and text in r.text, (url, r.status_code, r.text)
    put = lambda tiles: st.call("annotator", "PUT", f"/api/tasks/{tid}/raster/labels", json={  # noqa: E731
        "base_version": 0, "segments": [{"id": 1, "category_id": 2}], "tiles": tiles})
    for tiles, text in [([{"tx": 3, "ty": 0, "runs": [0, 1]}], "out of range"),
                        ([{"tx": 2, "ty": 0, "runs": [1, 512 * 512]}], "tiles[0] (2,0, 476x512)"),
                        ([{"tx": 0, "ty": 0, "runs": [1, 2**62, 1, 2**62]}], "lengths")]:
        r = put(tiles)
        assert r.status_code == 422 and text in r.text, r.text
    assert st.ok("annotator", "GET", f"/api/tasks/{tid}")["version"] == 0
    for body, text in [({"path": str(tmp_path / "scene.tif"), "bands": [4, 3, 2]}, "out of range"),
                       ({"path": str(tmp_path / "scene.tif"), "bands": [0]}, ""),
                       ({"path": str(tmp_path / "nope.tif")}, "no such file"),
                       ({"path": str(tmp_path / "scene.tif")}, "already image")]:
        r = st.call("admin", "POST", f"/api/projects/{pid}/rasters?wait=60", json=body)
        assert r.status_code in (400, 422) and text in r.text, r.text
    bad = tmp_path / "corrupt.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 64)
    r = st.call("admin", "POST", f"/api/projects/{pid}/rasters?wait=60", json={"path": str(bad)})
    assert r.status_code == 400 and "corrupt.tif" in r.text


def test_raster_without_crs_is_labelled_in_pixels(studio, tmp_path):
    st = studio
    _, tid = raster_task(st, tmp_path, 600, 400, name="plain.tif", crs=None)
    info = st.ok("annotator", "GET", f"/api/tasks/{tid}/raster")
    assert info["crs"] is None and "no CRS" in info["notes"][0]


def matrix_raster(st, c) -> int:
    """For the permission matrix (test_api.py): a raster task of the matrix's project, assigned
    to ``annotator`` (made once, kept in the matrix's context ``c``)."""
    if "raster" not in c:
        from pathlib import Path

        path = Path(c["folder"]).parent / "matrix-scene.tif"
        write_raster(path, 700, 600)
        c["raster_path"] = str(path)
        r = st.ok("admin", "POST", f"/api/projects/{c['pid']}/rasters?wait=60",
                  json={"path": str(path)})
        st.ok("manager", "POST", f"/api/projects/{c['pid']}/assign", json={
            "mode": "manual", "user_ids": [st.ids["annotator"]], "task_ids": [r["task_id"]]})
        c["raster"] = r["task_id"]
    return c["raster"]


def matrix_raster_save(st, c) -> dict:
    tid = matrix_raster(st, c)
    return {"json": {"base_version": st.ok("admin", "GET", f"/api/tasks/{tid}")["version"],
                     "segments": [], "tiles": []}}
