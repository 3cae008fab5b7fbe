"""Classical segmenters against scikit-learn, scikit-image and known answers."""

import numpy as np
import pytest
from skimage import segmentation
from sklearn.cluster import KMeans

from segflow.segment import grabcut, kmeans, slic, watershed
from segflow.segment.kmeans import _features
from tests.conftest import touching_discs


def _all_pixel_inertia(img, res, space):
    x = _features(img.reshape(-1, img.shape[-1] if img.ndim == 3 else 1), space)
    c = res.centers[res.labels.ravel()]
    return float(((x - c) ** 2).sum())


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize("space", ["rgb", "lab"])
def test_kmeans_inertia_matches_sklearn_all_pixels(samples, name, space):
    img = samples[name]
    res = kmeans(img, k=5, space=space, seed=0, n_init=3)
    x = _features(img.reshape(-1, 3), space)
    ref = KMeans(n_clusters=5, n_init=3, random_state=0).fit(x)
    # Weighted k-means on distinct colours optimises the very same all-pixel objective...
    assert np.isclose(res.inertia, _all_pixel_inertia(img, res, space), rtol=1e-3)
    # ...and reaches it within 0.5% of scikit-learn's best of 3 on every pixel.
    assert res.inertia <= ref.inertia_ * 1.005


def test_kmeans_deterministic_for_a_seed(samples):
    img = samples["coffee"]
    a = kmeans(img, k=4, seed=3)
    b = kmeans(img, k=4, seed=3)
    assert np.array_equal(a.labels, b.labels) and a.inertia == b.inertia


def test_kmeans_grey_and_spatial(samples):
    g = kmeans(samples["camera"], k=3)
    assert g.labels.shape == samples["camera"].shape and set(np.unique(g.labels)) == {0, 1, 2}
    # clusters are ordered dark to bright
    means = [samples["camera"][g.labels == i].mean() for i in range(3)]
    assert means == sorted(means)
    s = kmeans(samples["coffee"][::4, ::4], k=3, spatial_weight=1.0)
    assert s.labels.shape == samples["coffee"][::4, ::4].shape[:2]


def test_choose_k_finds_planted_clusters():
    rng = np.random.default_rng(0)
    colours = np.array([[20, 20, 20], [230, 30, 30], [30, 220, 40], [40, 40, 230]], np.uint8)
    idx = rng.integers(0, 4, (80, 80))
    img = np.clip(colours[idx] + rng.normal(0, 4, (80, 80, 3)), 0, 255).astype(np.uint8)
    assert kmeans(img, k=None).k == 4
    assert kmeans(np.full((20, 20, 3), 7, np.uint8), k=None).k == 1


def test_watershed_splits_touching_discs():
    img = touching_discs()
    mask = img > 100
    assert (np.unique(__import__("cv2").connectedComponents(mask.astype(np.uint8))[1]) > 0).sum() == 1
    lab = watershed(mask, min_distance=10)
    assert lab.max() == 2
    assert ((lab > 0) == mask).all()
    # each half holds one disc centre
    assert lab[60, 55] != lab[60, 100] and lab[60, 55] > 0


def test_watershed_with_markers_matches_skimage():
    img = touching_discs()
    mask = img > 100
    markers = np.zeros(mask.shape, np.int32)
    markers[60, 55], markers[60, 100] = 1, 2
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(mask)
    ref = segmentation.watershed(-dist, markers, mask=mask)
    got = watershed(mask, markers=markers)
    assert (got == ref).mean() > 0.995  # distance transforms differ only in float rounding


def test_slic_matches_skimage(samples):
    img = samples["astronaut"][::2, ::2]
    got = slic(img, n_segments=100, compactness=10)
    ref = segmentation.slic(img, n_segments=100, compactness=10, sigma=1, start_label=1)
    assert np.array_equal(got, ref)
    assert 50 <= got.max() <= 150


def test_grabcut_recovers_object_in_box():
    rng = np.random.default_rng(0)
    img = np.clip(rng.normal(90, 12, (120, 140, 3)), 0, 255).astype(np.uint8)
    img[:, :, 2] = 60
    yy, xx = np.mgrid[:120, :140]
    obj = (yy - 60) ** 2 / 30**2 + (xx - 70) ** 2 / 40**2 <= 1
    img[obj] = np.clip(rng.normal((200, 60, 180), 10, (obj.sum(), 3)), 0, 255).astype(np.uint8)
    m = grabcut(img, [20, 20, 100, 80])
    iou = (m.astype(bool) & obj).sum() / (m.astype(bool) | obj).sum()
    assert iou > 0.9


def test_segmenter_bad_params(samples):
    from segflow.errors import ParameterError

    with pytest.raises(ParameterError):
        kmeans(samples["camera"], k=0)
    with pytest.raises(ParameterError, match="outside"):
        grabcut(samples["astronaut"], [600, 600, 10, 10])


def test_box_lloyd_is_exact_lloyd():
    """Box-filtered Lloyd: labels are the true nearest centres, inertia the true objective."""
    from segflow.segment._lloyd import lloyd

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(m, 0.08, (4000, 3)) for m in (0.2, 0.5, 0.8)]).astype(np.float32)
    w = rng.integers(1, 4, len(x)).astype(np.float64)
    r = lloyd(x, 3, weights=w, seed=0)
    d = ((x[:, None, :].astype(np.float64) - r.centers[None]) ** 2).sum(-1)
    assert np.array_equal(r.labels, d.argmin(1))
    assert np.isclose(r.inertia, (w * d.min(1)).sum(), rtol=1e-6)
    ref = KMeans(3, n_init=3, random_state=0).fit(x, sample_weight=w)
    assert r.inertia <= ref.inertia_ * 1.005
    # Centres are the weighted means of their points (a Lloyd fixed point, up to tolerance).
    for j in range(3):
        m = np.average(x[r.labels == j], axis=0, weights=w[r.labels == j])
        assert np.allclose(m, r.centers[j], atol=1e-3)


def test_uint8_box_statistics_equal_the_generic_ones(samples):
    """The integer-histogram shortcut for 8-bit colours gives the same box sums exactly."""
    from segflow.segment._lloyd import summarize
    from segflow.segment.kmeans import _uint8_boxes

    pix = samples["chelsea"].reshape(-1, 3)
    fast = _uint8_boxes(pix)
    grid = ((pix[:, 0] >> 2).astype(np.int32) << 12 | (pix[:, 1] >> 2).astype(np.int32) << 6
            | (pix[:, 2] >> 2))
    ref = summarize(_features(pix, "rgb"), grid=(grid, np.zeros(3), np.full(3, 4 / 255), 64))
    assert np.array_equal(fast.ids, ref.ids) and np.array_equal(fast.cnt, ref.cnt)
    assert np.allclose(fast.sums, ref.sums, rtol=1e-6) and np.allclose(fast.sqs, ref.sqs, rtol=1e-6)


def test_grabcut_context_and_upsampling():
    """A context wider than the image is the whole image: the same result exactly; an
    upsampled small box still finds its disc."""
    from segflow.segment.grabcut import grabcut

    rng = np.random.default_rng(1)
    img = rng.integers(30, 60, (120, 160, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:120, :160]
    disc = (yy - 60) ** 2 + (xx - 80) ** 2 <= 8 * 8
    img[disc] = (220, 200, 80)
    box = [68, 48, 25, 25]
    assert (grabcut(img, box, context=10_000) == grabcut(img, box)).all()
    up = grabcut(img, box, context=10, min_side=100).astype(bool)
    assert (up & disc).sum() / (up | disc).sum() > 0.9
