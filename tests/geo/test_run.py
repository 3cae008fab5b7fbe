"""Pipelines on GeoTIFFs: windowed equals whole, georeferencing and nodata kept, bad input named."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from segflow.errors import ConfigError, SegflowError
from segflow.geo import GeoWarning
from segflow.geo.raster import GeoRaster
from segflow.geo.run import run_raster
from segflow.pipeline import parse_pipeline
from segflow.pipeline.runner import apply_pipeline
from tests.geo.conftest import CRS, affine, needs_geo, one_line, read_tif, scene, segflow, write_tif

pytestmark = needs_geo

PIPES = {
    "otsu": ["grayscale", {"blur": {"sigma": 2}}, {"threshold": {"method": "otsu"}},
             {"open": {"radius": 2}}, {"close": {"radius": 1}}],
    "yen": ["grayscale", {"blur": {"method": "median", "ksize": 5}},
            {"threshold": {"method": "yen", "invert": True}}],
    "multi_otsu": ["grayscale", {"blur": {"sigma": 1.5}},
                   {"threshold": {"method": "multi_otsu", "classes": 3}}],
    "adaptive": ["grayscale", {"threshold": {"method": "adaptive_gaussian", "block_size": 31}}],
}


@pytest.mark.parametrize("name", list(PIPES))
def test_windowed_run_equals_the_in_memory_pipeline(tmp_path, name):
    img = scene(700, 900, seed=1)
    src = write_tif(tmp_path / "s.tif", img)
    spec = parse_pipeline({"name": name, "steps": PIPES[name]})
    ref = apply_pipeline(spec, img)  # the ordinary whole-image run: the reference
    r = run_raster(spec, src, tmp_path / "w", windowed=True, window=256)  # 12 windows
    mask, crs, tr, nodata = read_tif(tmp_path / "w" / "s_mask.tif")
    np.testing.assert_array_equal(mask, ref.mask)
    assert r.threshold == ref.threshold
    assert crs.to_string() == CRS and tr == affine() and nodata == 255
    assert any("12 windows" in n for n in r.notes)


def test_whole_mode_writes_georeferenced_objects_too(tmp_path):
    img = scene(300, 400, seed=2)
    src = write_tif(tmp_path / "s.tif", img)
    spec = parse_pipeline({"steps": PIPES["otsu"] + ["label", "regions"]})
    ref = apply_pipeline(spec, img)
    r = run_raster(spec, src, tmp_path / "o")
    names = sorted(p.split("/")[-1] for p in r.outputs)
    assert names == ["s_instances.tif", "s_mask.tif", "s_overlay.png", "s_regions.json"]
    ids, crs, tr, _ = read_tif(tmp_path / "o" / "s_instances.tif")
    np.testing.assert_array_equal(ids, ref.labels)
    assert crs.to_string() == CRS and tr == affine() and r.n_objects == int(ref.labels.max())


def test_nodata_is_ignore_and_left_out_of_the_threshold(tmp_path):
    img = scene(400, 520, seed=3)
    img[:, :130] = 0  # a nodata margin, as at the edge of a satellite scene
    img[300:, 400:] = 0
    src = write_tif(tmp_path / "s.tif", img, nodata=0)
    invalid = (img == 0).any(axis=2)  # GDAL: nodata per band; a pixel with any band nodata is out
    spec = parse_pipeline({"steps": ["grayscale", {"threshold": {"method": "otsu"}}]})
    from segflow import ops

    gray = ops.grayscale(img)
    level = ops.threshold_value(gray[~invalid][None], "otsu")  # valid pixels only
    expected = (gray > level).astype(np.uint8)
    expected[invalid] = 255
    for windowed in (False, True):
        r = run_raster(spec, src, tmp_path / str(windowed), windowed=windowed, window=256)
        mask, crs, tr, nodata = read_tif(tmp_path / str(windowed) / "s_mask.tif")
        assert r.threshold == level and nodata == 255
        np.testing.assert_array_equal(mask, expected)
        assert crs.to_string() == CRS and tr == affine()


def test_cli_run_and_segment_keep_the_georeferencing(tmp_path):
    img = scene(300, 300, seed=4)
    src = write_tif(tmp_path / "s.tif", img)
    # --max-pixels below the raster's size: read by windows.
    segflow("--max-pixels", 20000, "run", "otsu", src, "-o", tmp_path / "run",
            check=0)
    segflow("segment", "otsu", src, "-o", tmp_path / "seg", check=0)
    ref = apply_pipeline(parse_pipeline({"steps": ["grayscale", {"blur": {"sigma": 1}},
                                                   {"threshold": {"method": "otsu"}}]}), img).mask
    for d in ("run", "seg"):
        mask, crs, tr, nodata = read_tif(tmp_path / d / "s_mask.tif")
        assert crs.to_string() == CRS and tr == affine() and nodata == 255
        if d == "run":
            np.testing.assert_array_equal(mask, ref)
    assert (tmp_path / "seg" / "s_instances.tif").exists()


def test_a_step_that_needs_the_whole_raster_is_named(tmp_path):
    src = write_tif(tmp_path / "s.tif", scene(100, 100))
    spec = parse_pipeline({"steps": ["grayscale", "threshold", "fill_holes"]})
    with pytest.raises(SegflowError, match=r"step 3 \(fill_holes\) needs the whole raster"):
        run_raster(spec, src, tmp_path / "o", windowed=True)


def test_bands_and_percentile_stretch_of_16_bit_data(tmp_path):
    rng = np.random.default_rng(5)
    data = rng.gamma(2.0, 900.0, (120, 150, 4)).astype(np.uint16)
    src = write_tif(tmp_path / "s.tif", data)
    with GeoRaster(src, {"bands": [4, 3, 2]}) as r:
        img, valid = r.read_all()
    assert valid is None and img.shape == (120, 150, 3) and img.dtype == np.uint8
    for c, b in enumerate([4, 3, 2]):  # 150x120 is under the decimation size: exact percentiles
        x = data[..., b - 1].astype(np.float64)
        lo, hi = np.percentile(x, [2, 98])
        ref = (np.clip((x - lo) * (255 / (hi - lo)), 0, 255) + 0.5).astype(np.uint8)
        assert np.abs(img[..., c].astype(int) - ref).max() <= 1  # float32 vs float64 rounding
        assert img[..., c].min() == 0 and img[..., c].max() == 255
    with GeoRaster(src, {"bands": [2], "stretch": (0, 100)}) as r:
        g, _ = r.read(10, 20, 30, 40)
    x = data[..., 1].astype(np.float64)
    ref = (np.clip((x - x.min()) * (255 / (x.max() - x.min())), 0, 255) + 0.5).astype(np.uint8)
    assert np.abs(g.astype(int) - ref[10:40, 20:60]).max() <= 1


def test_percentiles_come_from_a_decimated_read(tmp_path, monkeypatch):
    from segflow.geo import raster as geo_raster

    monkeypatch.setattr(geo_raster, "STATS_PIXELS", 1000)  # force decimation on a small raster
    small = np.random.default_rng(6).integers(0, 4000, (25, 38), dtype=np.uint16)
    data = np.kron(small, np.ones((8, 8), np.uint16))  # 8x8 blocks: any decimated pixel tells
    src = write_tif(tmp_path / "s.tif", data)
    seen = []
    with GeoRaster(src) as r:
        real = r.ds.read

        def spy(*a, **k):
            seen.append(k.get("out_shape"))
            return real(*a, **k)

        r.ds.read = spy
        lo, hi = r.levels()[0]
    assert seen == [(1, 25, 38)]  # 1/8 of each side: never the full raster
    assert (lo, hi) == tuple(np.percentile(small, [2, 98]))


def test_band_out_of_range_is_one_line(tmp_path):
    src = write_tif(tmp_path / "s.tif", scene(64, 64))
    pipe = tmp_path / "p.yaml"
    pipe.write_text("raster: {bands: [4, 3, 2]}\nsteps: [grayscale, threshold]\n")
    p = segflow("run", pipe, src, "-o", tmp_path / "o", "--json")  # JSON: only the failure on stderr
    assert p.returncode == 1
    line = one_line(p)
    assert "band(s) 4 out of range" in line and "3 band(s), numbered 1..3" in line
    with pytest.raises(ConfigError, match="raster.bands"):
        parse_pipeline({"raster": {"bands": [0, 1, 2]}, "steps": ["threshold"]})
    with pytest.raises(ConfigError, match="raster.bands"):
        parse_pipeline({"raster": {"bands": [1, 2]}, "steps": ["threshold"]})


def test_a_raster_without_crs_warns_and_runs_in_pixel_coordinates(tmp_path):
    from segflow.io import pixel_limit

    img = scene(200, 200, seed=7)
    src = write_tif(tmp_path / "plain.tif", img, crs=None)
    spec = parse_pipeline({"steps": ["grayscale", "threshold"]})
    with pytest.warns(GeoWarning, match="no CRS; processed in pixel coordinates"):
        r = run_raster(spec, src, tmp_path / "o", windowed=True, window=128)
    mask, crs, tr, _ = read_tif(tmp_path / "o" / "plain_mask.tif")
    assert crs is None and tr.is_identity
    np.testing.assert_array_equal(mask, apply_pipeline(spec, img).mask)
    assert any("no CRS" in n for n in r.notes)
    # A plain TIFF within the pixel cap keeps the ordinary reader (no warning, PNG masks) ...
    from segflow.pipeline.runner import run_image

    with warnings.catch_warnings():
        warnings.simplefilter("error", GeoWarning)
        out = run_image(spec, src, tmp_path / "plain")
    assert out.outputs[0].endswith("plain_mask.png")
    # ... and over the cap it is read by windows rather than refused.
    with pixel_limit(10_000), pytest.warns(GeoWarning):
        out = run_image(spec, src, tmp_path / "big")
    assert out.outputs[0].endswith("plain_mask.tif")


def _corrupt_one_tile(path, row_block=1, col_block=1):
    import rasterio

    with rasterio.open(path) as ds:
        off = int(ds.get_tag_item(f"BLOCK_OFFSET_{col_block}_{row_block}", "TIFF", bidx=1))
        size = int(ds.get_tag_item(f"BLOCK_SIZE_{col_block}_{row_block}", "TIFF", bidx=1))
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(b"\xff" * size)


def test_a_corrupt_tile_is_named_with_its_window_and_file(tmp_path):
    src = write_tif(tmp_path / "s.tif", scene(512, 512), block=128)
    _corrupt_one_tile(src, 2, 3)  # the tile at rows 256..383, cols 384..511
    spec = parse_pipeline({"steps": ["grayscale", {"threshold": {"method": "fixed", "value": 100}}]})
    with pytest.raises(SegflowError) as e:
        run_raster(spec, src, tmp_path / "o", windowed=True, window=128)
    msg = str(e.value)
    assert str(src) in msg and "window 11 (rows 256..383, cols 384..511)" in msg
    assert "corrupt" in msg and "\n" not in msg
    assert not (tmp_path / "o" / "s_mask.tif").exists()  # no half-written mask
    with pytest.raises(SegflowError) as e:  # read at once: the bad tile is found and named
        run_raster(spec, src, tmp_path / "o", windowed=False)
    assert str(src) in str(e.value) and "tile 2,3 (rows 256..383, cols 384..511)" in str(e.value)


def test_missing_geo_extra_is_one_line(monkeypatch, tmp_path):
    import sys

    from segflow.geo import require

    monkeypatch.setitem(sys.modules, "rasterio", None)
    with pytest.raises(SegflowError, match=r"pip install 'segflow\[geo\]'"):
        require("rasterio")


def test_a_cloud_optimized_geotiff_with_16_bit_bands(tmp_path):
    import rasterio

    rng = np.random.default_rng(8)
    data = (scene(600, 700, seed=8).astype(np.uint16) * 40 + rng.integers(0, 40, (600, 700, 3))
            ).astype(np.uint16)
    src = tmp_path / "cog.tif"
    with rasterio.open(src, "w", driver="COG", width=700, height=600, count=3, dtype="uint16",
                       crs=CRS, transform=affine(), overview_count=2) as ds:
        ds.write(data.transpose(2, 0, 1))
    with rasterio.open(src) as ds:
        assert ds.overviews(1)  # a real COG, with overviews for the stretch
    spec = parse_pipeline({"raster": {"bands": [3, 2, 1]},
                           "steps": ["grayscale", {"blur": {"sigma": 1}}, "threshold"]})
    r = run_raster(spec, src, tmp_path / "w", windowed=True, window=256)
    with GeoRaster(src, spec.raster) as g:
        whole, _ = g.read_all()  # the same stretch, read at once
    np.testing.assert_array_equal(read_tif(tmp_path / "w" / "cog_mask.tif")[0],
                                  apply_pipeline(spec, whole).mask)
    assert r.threshold is not None


def test_bands_option_errors():
    from segflow.geo.options import parse_bands

    assert parse_bands("4,3,2") == [4, 3, 2] and parse_bands("[1]") == [1] and parse_bands(None) is None
    for bad, needle in (("4,x", "expected band numbers"), ("0,1,2", "start at 1"),
                        ("1,2", "1 band"), ("1,2,3,4", "at most 3")):
        with pytest.raises(ConfigError, match=needle):
            parse_bands(bad)


def test_huge_band_numbers_are_out_of_range(tmp_path):
    from segflow.errors import ImageReadError

    src = write_tif(tmp_path / "s.tif", scene(32, 32))
    with pytest.raises(ImageReadError, match="out of range"):
        GeoRaster(src, {"bands": [2**63, 1, 1]})
