"""Automatic thresholds against scikit-image and OpenCV, on sample and random images."""

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from skimage import filters

from segflow.ops import threshold, threshold_value
from tests.conftest import GREY_SAMPLES

SK = {
    "otsu": filters.threshold_otsu,
    "triangle": filters.threshold_triangle,
    "li": filters.threshold_li,
    "yen": filters.threshold_yen,
}
CV = {"otsu": cv2.THRESH_OTSU, "triangle": cv2.THRESH_TRIANGLE}


def _grey(samples, name):
    img = samples[name]
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


@pytest.mark.parametrize("method", list(SK))
@pytest.mark.parametrize("name", GREY_SAMPLES + ("astronaut", "coffee"))
def test_matches_skimage_on_samples(samples, name, method):
    img = _grey(samples, name)
    assert abs(threshold_value(img, method) - SK[method](img)) <= 1.0


@pytest.mark.parametrize("method", list(CV))
@pytest.mark.parametrize("name", GREY_SAMPLES)
def test_matches_opencv_8bit(samples, name, method):
    img = _grey(samples, name)
    t_cv, m_cv = cv2.threshold(img, 0, 1, cv2.THRESH_BINARY | CV[method])
    r = threshold(img, method)
    assert abs(r.threshold - t_cv) <= 1.0
    assert np.array_equal(r.mask, (img > r.threshold).astype(np.uint8))



random_u8 = arrays(np.uint8, st.tuples(st.integers(4, 40), st.integers(4, 40)),
                   elements=st.integers(0, 255))


@settings(max_examples=60, deadline=None)
@given(img=random_u8)
def test_otsu_random_images(img):
    if img.min() == img.max():
        assert threshold_value(img, "otsu") == img.min()
        return
    t = threshold_value(img, "otsu")
    for ref in (filters.threshold_otsu(img), cv2.threshold(img, 0, 1, cv2.THRESH_OTSU)[0]):
        # Two splits can tie exactly in between-class variance (e.g. a flat image with a few
        # outliers on both sides); the references then break the tie differently.
        assert abs(t - ref) <= 1.0 or _between_class_variance(img, t) == pytest.approx(
            _between_class_variance(img, ref), rel=1e-9)


def _between_class_variance(img, t) -> float:
    lo, hi = img[img <= t].astype(float), img[img > t].astype(float)
    if not lo.size or not hi.size:
        return 0.0
    w = lo.size / img.size
    return w * (1 - w) * (lo.mean() - hi.mean()) ** 2


def test_otsu_tie_between_two_splits():
    """Found by hypothesis: the splits at 64 and at 145 tie; segflow takes OpenCV's (145),
    scikit-image the other (64)."""
    img = np.full((4, 6), 145, np.uint8)
    img[0, :4] = [228, 34, 254, 64]
    assert threshold_value(img, "otsu") == cv2.threshold(img, 0, 1, cv2.THRESH_OTSU)[0] == 145
    assert _between_class_variance(img, 145) == pytest.approx(_between_class_variance(img, 64))


@settings(max_examples=60, deadline=None)
@given(img=random_u8, method=st.sampled_from(["triangle", "li", "yen"]))
def test_other_methods_random_images(img, method):
    if img.min() == img.max():
        return
    assert abs(threshold_value(img, method) - SK[method](img)) <= 1.0


@settings(max_examples=30, deadline=None)
@given(lo=st.integers(0, 30000), hi=st.integers(31000, 65535), seed=st.integers(0, 2**16))
def test_otsu_16bit(lo, hi, seed):
    rng = np.random.default_rng(seed)
    img = np.where(rng.random((30, 30)) > 0.5, hi, lo).astype(np.int64)
    img = np.clip(img + rng.normal(0, 500, img.shape), 0, 65535).astype(np.uint16)
    assert abs(threshold_value(img, "otsu") - filters.threshold_otsu(img)) <= 1.0


def test_multi_otsu_matches_skimage(samples):
    img = samples["camera"]
    r = threshold(img, "multi_otsu", classes=3)
    ref = filters.threshold_multiotsu(img, classes=3)
    assert np.allclose(r.threshold, ref, atol=1)
    # Same convention as the binary methods: class i+1 starts strictly above level i.
    assert np.array_equal(r.mask, np.digitize(img, bins=ref, right=True))


def test_fixed_and_invert(samples):
    img = samples["coins"]
    r = threshold(img, "fixed", value=100)
    assert r.threshold == 100 and np.array_equal(r.mask, (img > 100).astype(np.uint8))
    inv = threshold(img, "otsu", invert=True)
    assert np.array_equal(inv.mask, (img <= inv.threshold).astype(np.uint8))
    f = img.astype(np.float32) / 255
    rf = threshold(f, "fixed", value=0.5)
    assert np.array_equal(rf.mask, (f > 0.5).astype(np.uint8))


@pytest.mark.parametrize("method,cvm", [("adaptive_mean", cv2.ADAPTIVE_THRESH_MEAN_C),
                                        ("adaptive_gaussian", cv2.ADAPTIVE_THRESH_GAUSSIAN_C)])
def test_adaptive_matches_opencv(samples, method, cvm):
    img = samples["page"]
    r = threshold(img, method, block_size=35, offset=10)
    ref = cv2.adaptiveThreshold(img, 1, cvm, cv2.THRESH_BINARY, 35, 10)
    assert np.array_equal(r.mask, ref)


def test_adaptive_float_matches_skimage(samples):
    img = samples["page"].astype(np.float64) / 255
    r = threshold(img, "adaptive_mean", block_size=35, offset=0.02)
    ref = img > filters.threshold_local(img, 35, method="mean", offset=0.02)
    assert np.array_equal(r.mask.astype(bool), ref)


def test_constant_image_is_all_background():
    img = np.full((10, 10), 7, np.uint8)
    r = threshold(img, "otsu")
    assert r.threshold == 7 and r.mask.sum() == 0


def test_bad_parameters():
    from segflow.errors import ParameterError

    img = np.zeros((5, 5), np.uint8)
    with pytest.raises(ParameterError, match="unknown method"):
        threshold(img, "magic")
    with pytest.raises(ParameterError, match="needs a value"):
        threshold(img, "fixed")
    with pytest.raises(ParameterError, match="grayscale"):
        threshold(np.zeros((5, 5, 3), np.uint8), "otsu")
