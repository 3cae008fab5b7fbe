"""Preprocessing ops against OpenCV, SciPy and scikit-image."""

import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage import exposure, measure
from skimage import morphology as skm

from segflow import ops
from segflow.errors import ParameterError


def test_grayscale_bt601(samples):
    rgb = samples["astronaut"]
    g = ops.grayscale(rgb)
    assert np.array_equal(g, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    ref = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(g - ref).max() <= 1.0
    rgba = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    assert np.array_equal(ops.grayscale(rgba), g)
    assert ops.grayscale(samples["camera"]) is not None


def test_normalize_methods(samples):
    img = samples["moon"]
    mm = ops.normalize(img, "minmax")
    assert np.allclose(mm, exposure.rescale_intensity(img.astype(np.float32), out_range=(0, 1)),
                       atol=1e-6)
    lo, hi = np.percentile(img, [2, 98])
    pc = ops.normalize(img, "percentile", low=2, high=98)
    ref = exposure.rescale_intensity(img.astype(np.float32), in_range=(lo, hi), out_range=(0, 1))
    assert np.allclose(pc, ref, atol=1e-6)
    z = ops.normalize(img, "zscore")
    assert abs(z.mean()) < 1e-4 and abs(z.std() - 1) < 1e-4
    u8 = ops.normalize(img, "minmax", dtype="uint8")
    assert u8.dtype == np.uint8 and u8.min() == 0 and u8.max() == 255
    assert (ops.normalize(np.full((4, 4), 3, np.uint8)) == 0).all()


def test_clahe_matches_opencv(samples):
    img = samples["moon"]
    ref = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(img)
    assert np.array_equal(ops.clahe(img), ref)
    col = ops.clahe(samples["astronaut"])
    assert col.shape == samples["astronaut"].shape and col.dtype == np.uint8


def test_gaussian_blur_matches_scipy(samples):
    img = samples["camera"].astype(np.float32)
    got = ops.blur(img, "gaussian", sigma=2.0)
    ref = ndimage.gaussian_filter(img, 2.0, mode="mirror", truncate=3.0)
    assert np.abs(got - ref).max() < 0.5
    u8 = ops.blur(samples["camera"], "gaussian", sigma=2.0)
    assert u8.dtype == np.uint8 and np.abs(u8.astype(np.float32) - ref).max() < 1.5  # fixed-point


def test_median_blur_matches_scipy(samples):
    img = samples["camera"]
    got = ops.blur(img, "median", ksize=5)
    ref = ndimage.median_filter(img, size=5, mode="nearest")
    assert np.array_equal(got[2:-2, 2:-2], ref[2:-2, 2:-2])


def test_bilateral_preserves_edges():
    img = np.zeros((40, 40), np.uint8)
    img[:, 20:] = 200
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 5, img.shape), 0, 255).astype(np.uint8)
    out = ops.blur(noisy, "bilateral", sigma=3, sigma_color=30)
    assert out[:, 17].mean() < 20 and out[:, 22].mean() > 180  # edge kept
    assert out[:, 5:15].std() < noisy[:, 5:15].std()  # flat part smoothed


def test_blur_bad_params():
    with pytest.raises(ParameterError):
        ops.blur(np.zeros((5, 5), np.uint8), "median", ksize=4)
    with pytest.raises(ParameterError):
        ops.blur(np.zeros((5, 5), np.uint8), "boxy")


def _binary(samples):
    img = samples["coins"]
    return (img > 107).astype(np.uint8)


def test_open_close_match_scipy(samples):
    # Away from the image border (the mask is framed by background) OpenCV and SciPy agree
    # exactly for the same structuring element.
    m = np.pad(_binary(samples), 10)
    for r in (1, 2, 4):
        se = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)).astype(bool)
        assert np.array_equal(ops.open(m, radius=r).astype(bool), ndimage.binary_opening(m, se))
        assert np.array_equal(ops.close(m, radius=r).astype(bool), ndimage.binary_closing(m, se))


def test_fill_holes_matches_scipy(samples):
    m = _binary(samples)
    assert np.array_equal(ops.fill_holes(m).astype(bool), ndimage.binary_fill_holes(m))


@pytest.mark.parametrize("conn,skconn", [(4, 1), (8, 2)])
def test_remove_small_objects_matches_skimage(samples, conn, skconn):
    m = _binary(samples).astype(bool)
    got = ops.remove_small_objects(m, min_size=50, connectivity=conn)
    ref = skm.remove_small_objects(m, max_size=49, connectivity=skconn)
    assert np.array_equal(got.astype(bool), ref)


@pytest.mark.parametrize("conn,skconn", [(4, 1), (8, 2)])
def test_label_matches_skimage(samples, conn, skconn):
    m = _binary(samples)
    ref = measure.label(m, connectivity=skconn)
    assert np.array_equal(ops.label(m, connectivity=conn, raster_order=True), ref)
    fast = ops.label(m, connectivity=conn)
    # Same objects, possibly numbered differently: the pairs (fast, ref) form a bijection.
    pairs = np.unique(np.stack([fast.ravel(), ref.ravel()]), axis=1)
    assert pairs.shape[1] == ref.max() + 1
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def test_regions_match_regionprops(samples):
    img = samples["coins"]
    lab = measure.label(_binary(samples))
    got = ops.regions(lab, img)
    ref = measure.regionprops(lab, intensity_image=img)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        y0, x0, y1, x1 = r.bbox
        assert g.label == r.label
        assert g.bbox == [x0, y0, x1 - x0, y1 - y0]
        assert g.area == r.area
        assert np.allclose(g.centroid, [r.centroid[1], r.centroid[0]], atol=1e-9)
        assert np.isclose(g.mean_intensity, r.intensity_mean, atol=1e-9)


def test_regions_colour_and_band_boundaries():
    # Objects straddling the 1024-row band boundary are measured as a whole.
    lab = np.zeros((2100, 30), np.int32)
    lab[1000:1100, 5:10] = 1
    lab[2050:2100, 0:30] = 3
    img = np.random.default_rng(1).integers(0, 255, (2100, 30, 3)).astype(np.uint8)
    got = ops.regions(lab, img)
    ref = measure.regionprops(lab, intensity_image=img)
    assert [g.label for g in got] == [1, 3]
    for g, r in zip(got, ref):
        assert g.area == r.area
        assert np.allclose(g.mean_intensity, r.intensity_mean)
        assert np.allclose(g.centroid[::-1], r.centroid)


def test_apply_mask(samples):
    img = samples["astronaut"]
    m = np.zeros(img.shape[:2], np.uint8)
    m[100:200, 50:80] = 1
    out = ops.apply_mask(img, m)
    assert np.array_equal(out[100:200, 50:80], img[100:200, 50:80])
    assert out.sum() == img[100:200, 50:80].astype(np.int64).sum()
    with pytest.raises(ParameterError, match="differs"):
        ops.apply_mask(img, m[:10])


def test_draw_overlay_tints_only_foreground(samples):
    img = samples["camera"]
    m = np.zeros(img.shape, np.uint8)
    m[10:20, 10:20] = 1
    out = ops.draw_overlay(img, m, boxes=[[100, 100, 50, 40]], show_ids=False)
    assert out.shape == (*img.shape, 3)
    assert np.array_equal(out[300:, 300:, 0], img[300:, 300:])  # untouched
    assert not np.array_equal(out[15, 15], [img[15, 15]] * 3)  # tinted
    assert tuple(out[100, 120]) == (255, 255, 0)  # box edge
