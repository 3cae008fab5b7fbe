"""Image characteristics: known answers on constructed images."""

import cv2
import numpy as np
import pytest
from skimage.restoration import estimate_sigma

from segflow.inspect import characterise, noise_sigma, otsu_effectiveness


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_noise_estimate_known_sigma(sigma):
    rng = np.random.default_rng(0)
    img = np.clip(128 + rng.normal(0, sigma, (256, 256)), 0, 255).astype(np.uint8)
    est = noise_sigma(img)
    assert abs(est - sigma) / sigma < 0.1
    assert abs(est - estimate_sigma(img.astype(float))) / sigma < 0.15  # agrees with skimage


def test_bimodality_separates_two_levels_from_uniform():
    rng = np.random.default_rng(0)
    two = np.where(rng.random((100, 100)) > 0.5, 60, 190).astype(np.uint8)
    two = np.clip(two + rng.normal(0, 8, two.shape), 0, 255).astype(np.uint8)
    uni = rng.integers(0, 256, (100, 100)).astype(np.uint8)
    assert otsu_effectiveness(two) > 0.9
    assert 0.7 < otsu_effectiveness(uni) < 0.8  # eta of a uniform histogram is 0.75
    assert otsu_effectiveness(np.full((5, 5), 3, np.uint8)) == 0.0


def test_sharpness_drops_with_blur(samples):
    img = samples["camera"]
    sharp = characterise(img).sharpness
    blurred = characterise(cv2.GaussianBlur(img, (0, 0), 3)).sharpness
    assert blurred < sharp / 5


def test_suggestions_with_reasons(samples):
    rng = np.random.default_rng(0)
    two = np.where(rng.random((100, 100)) > 0.5, 60, 190).astype(np.uint8)
    c = characterise(two)
    assert c.suggestion == "objects" and "bimodal" in c.reason
    c = characterise(samples["coffee"])
    assert c.suggestion == "kmeans" and "colour" in c.reason
    assert characterise(np.full((20, 20), 9, np.uint8)).suggestion == "otsu"


def test_sixteen_bit_and_large_images_are_measured_on_8bit_scale():
    img = np.full((3000, 2500), 30000, np.uint16)
    img[:, 1250:] = 50000
    c = characterise(img)
    assert c.width == 2500 and c.height == 3000 and c.dtype == "uint16"
    assert abs(c.brightness - (30000 + 50000) / 2 / 257) < 2
