"""segflow vectorize: polygons that rasterise back to the mask, merged across windows, with
classes and areas; GeoTIFF -> predict -> GeoJSON end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from segflow.errors import SegflowError
from segflow.geo import GeoWarning
from segflow.geo.vector import vectorize, vectorize_to_file, write_vectors
from tests.geo.conftest import CRS, affine, needs_geo, one_line, read_tif, segflow, write_tif

pytestmark = needs_geo


def rasterize_back(gdf, shape, transform):
    from rasterio.features import rasterize

    return rasterize(zip(gdf.geometry, gdf.class_id), out_shape=shape, transform=transform,
                     fill=255, dtype="uint8")


def mean_iou(a, b, ids):
    return np.mean([((a == k) & (b == k)).sum() / ((a == k) | (b == k)).sum() for k in ids])


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("geo") / "aerial"
    segflow("data", "synth", "aerial", "-n", 1, "--size", 256, "--seed", 3, "--format", "geotiff",
            "-o", root, check=0)
    return root


def test_synth_geotiff_is_georeferenced(synth_set):
    from segflow.synth import synthesize

    mask, crs, tr, nodata = read_tif(synth_set / "semantic" / "aerial_3_00000.tif")
    img, crs2, tr2, _ = read_tif(synth_set / "images" / "aerial_3_00000.tif")
    s = synthesize("aerial", seed=3, index=0, size=256)
    np.testing.assert_array_equal(mask, s.semantic.ids)
    np.testing.assert_array_equal(img, s.image[..., 0])
    assert crs.to_string() == crs2.to_string() == "EPSG:32632" and tr == tr2 and tr.a == 0.5
    assert nodata == 255
    assert json.loads((synth_set / "schema.json").read_text())["crs"] == "EPSG:32632"


@pytest.mark.parametrize("window", [4096, 37])  # one window, and 49 windows to merge across
def test_polygons_rasterise_back_to_the_mask(synth_set, tmp_path, window):
    path = synth_set / "semantic" / "aerial_3_00000.tif"
    mask, crs, tr, _ = read_tif(path)
    gdf, notes = vectorize(path, window=window)
    import geopandas as gpd

    for suffix in (".geojson", ".gpkg"):  # streamed to the file == in memory
        n, crs, _ = vectorize_to_file(path, tmp_path / f"s{suffix}", window=window)
        streamed = gpd.read_file(tmp_path / f"s{suffix}")
        assert n == len(streamed) == len(gdf) and crs.to_string() == CRS
        assert sorted(streamed.area_px) == sorted(gdf.area_px)
        assert sorted(streamed.segment_id) == list(range(1, n + 1))
    back = gpd.read_file(write_vectors(gdf, tmp_path / "v.geojson"))
    assert back.crs.to_string() == CRS and notes == []
    np.testing.assert_array_equal(rasterize_back(back, mask.shape, tr), mask)
    # one polygon per 4-connected segment of a class: count them with OpenCV
    import cv2

    n = sum(cv2.connectedComponents((mask == k).astype(np.uint8), connectivity=4)[0] - 1
            for k in np.unique(mask))
    assert len(back) == n
    assert set(back.class_name) <= {"field", "forest", "water", "road", "building"}
    np.testing.assert_allclose(back.area_m2, back.area_px * 0.25)  # 0.5 m pixels
    np.testing.assert_allclose(back.area_m2, back.geometry.area)  # projected CRS in metres
    assert back.area_px.sum() == mask.size


def test_holes_are_kept_and_windows_merge(tmp_path):
    m = np.zeros((90, 120), np.uint8)
    m[10:80, 10:110] = 1
    m[30:60, 40:70] = 0  # a hole, cut by the window borders at 32 and 64
    m[40:50, 50:60] = 2  # an island in the hole
    src = write_tif(tmp_path / "m.tif", m, nodata=255)
    gdf, _ = vectorize(src, window=32, skip=[0])
    ring = gdf[gdf.class_id == 1]
    assert len(ring) == 1 and len(ring.geometry.iloc[0].interiors) == 1
    assert ring.area_px.iloc[0] == 70 * 100 - 30 * 30
    assert gdf[gdf.class_id == 2].area_px.tolist() == [100.0]
    # with --simplify the polygons are simpler but still cover the mask
    simple, _ = vectorize(src, window=32, skip=[0], simplify=1.0)
    back = rasterize_back(simple, m.shape, affine())
    assert mean_iou(np.where(m == 0, 255, m), back, [1, 2]) >= 0.99


def test_geographic_crs_areas_are_equal_area_and_say_so(tmp_path):
    from pyproj import Geod
    from rasterio.transform import from_origin

    m = np.zeros((100, 100), np.uint8)
    m[20:70, 10:90] = 1
    src = write_tif(tmp_path / "m.tif", m, crs="EPSG:4326",
                    transform=from_origin(9.0, 47.0, 0.0001, 0.0001), nodata=255)
    gdf, notes = vectorize(src, skip=[0])
    assert any("geographic" in n and "equal-area" in n for n in notes)
    geodesic = abs(Geod(ellps="WGS84").geometry_area_perimeter(gdf.geometry.iloc[0])[0])
    assert gdf.area_m2.iloc[0] == pytest.approx(geodesic, rel=1e-4)


def test_no_crs_is_pixel_coordinates_with_a_warning(tmp_path):
    m = np.zeros((40, 50), np.uint8)
    m[5:20, 5:30] = 3
    src = write_tif(tmp_path / "m.tif", m, crs=None)
    with pytest.warns(GeoWarning, match="no CRS"):
        gdf, _ = vectorize(src, skip=[0])
    assert gdf.geometry.iloc[0].bounds == (5.0, 5.0, 30.0, 20.0)
    assert gdf.area_px.tolist() == [375.0] and gdf.area_m2.isna().all()
    with pytest.raises(SegflowError, match="cannot be reprojected"), pytest.warns(GeoWarning):
        vectorize(src, to_crs="EPSG:4326")


def test_vectorize_errors_are_one_line(tmp_path, synth_set):
    path = synth_set / "semantic" / "aerial_3_00000.tif"
    assert "unknown vector format" in one_line(segflow("vectorize", path, "-o", tmp_path / "x.shp"))
    for kw, needle in (({"to_crs": "EPSG:99999999"}, "not a CRS"),
                       ({"simplify": float("nan")}, "--simplify"),
                       ({"simplify": float("inf")}, "--simplify")):
        with pytest.raises(SegflowError, match=needle):
            vectorize(path, **kw)
    with pytest.raises(SegflowError, match="no such file"):
        vectorize(tmp_path / "nope.tif")
    not_a_mask = write_tif(tmp_path / "rgb.tif", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SegflowError, match="one band of integer class ids"):
        vectorize(not_a_mask)


def _tiny_checkpoint(path):
    import torch

    from segflow.models import create_model
    from segflow.synth.aerial import SCHEMA
    from segflow.train import checkpoint as ckpt

    torch.manual_seed(0)
    args = {"num_classes": 6, "depth": 2, "base_width": 4}
    model = create_model("unet", **args)
    with torch.no_grad():  # a fixed colour rule, so the prediction has several classes
        for p in model.parameters():
            p.mul_(3)
    return ckpt.save(path, model={"name": "unet", "args": args}, state_dict=model.state_dict(),
                     schema={"classes": SCHEMA.to_list(), "ignore_index": 255}, task="semantic")


def test_geotiff_predict_geojson_round_trip(tmp_path, synth_set):
    """GeoTIFF -> predict --tile -> GeoJSON: polygons rasterise back with IoU >= 0.99; CRS,
    transform and nodata identical; the windowed prediction equals the in-memory tiled one."""
    import geopandas as gpd

    from segflow.geo.predict import predict_raster
    from segflow.predict.predictor import Predictor

    ck = _tiny_checkpoint(tmp_path / "ck.pt")
    import rasterio

    with rasterio.open(synth_set / "images" / "aerial_3_00000.tif") as ds:
        rgb = ds.read().transpose(1, 2, 0)[:160, :200].copy()
    rgb[:40, :50] = 0  # a nodata corner
    src = write_tif(tmp_path / "scene.tif", rgb, nodata=0)
    invalid = (rgb == 0).any(axis=2)

    pr = Predictor(ck, device="cpu")
    # what `segflow predict CK scene.tif --tile 64 --overlap 16` runs (in process: one torch import)
    written, failures = pr.run([src], tmp_path / "pred", tile=64, overlap=16, progress=False)
    assert failures == [] and written == [str(tmp_path / "pred" / "scene_mask.tif")]
    mask, crs2, tr2, nodata = read_tif(tmp_path / "pred" / "scene_mask.tif")
    assert crs2.to_string() == CRS and tr2 == affine() and nodata == 255
    assert ((mask == 255) == invalid).all()  # nodata pixels are exactly the ignore pixels

    ref = pr.predict(rgb, tile=64, overlap=16)
    assert (mask[~invalid] == ref[~invalid]).all()
    predict_raster(pr, src, tmp_path / "blocks", tile=64, overlap=16, block=96)  # 6 blocks
    np.testing.assert_array_equal(read_tif(tmp_path / "blocks" / "scene_mask.tif")[0], mask)

    segflow("vectorize", tmp_path / "pred" / "scene_mask.tif", "-o", tmp_path / "p.geojson",
            check=0)
    back = gpd.read_file(tmp_path / "p.geojson")
    ids = np.unique(mask[mask != 255])
    assert len(ids) >= 2, "the test model should predict several classes"
    assert mean_iou(mask, rasterize_back(back, mask.shape, tr2), ids) >= 0.99
    assert set(back.class_name) <= {"field", "forest", "water", "road", "building"}
