"""3-D ops and metrics against references: scipy / scikit-image for components, thresholds
and morphology, MONAI for Dice, HD95 and surface Dice; on stardist's real 3-D nuclei volume
and on random smooth blobs with anisotropic spacing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from skimage import filters, measure, morphology

from segflow.errors import SegflowError
from segflow.volume import metrics as vm
from segflow.volume import ops as vops


def _stardist_file(name: str) -> Path:
    # Located without importing stardist (its package imports csbdeep/TensorFlow); only the
    # data files it ships are used.
    spec = importlib.util.find_spec("stardist")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("stardist (dev extra) not installed")
    p = Path(list(spec.submodule_search_locations)[0]) / "data" / "images" / name
    if not p.is_file():
        pytest.skip(f"stardist data file {name} missing")
    return p


@pytest.fixture(scope="module")
def nuclei():
    tifffile = pytest.importorskip("tifffile")
    img = tifffile.imread(_stardist_file("img3d.tif"))
    lab = tifffile.imread(_stardist_file("mask3d.tif"))
    assert img.shape == lab.shape and img.ndim == 3
    return img, lab.astype(np.int64)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Two label maps are equal up to the numbering: a bijection between their labels."""
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


@pytest.mark.parametrize("conn,rank", [(6, 1), (18, 2), (26, 3)])
def test_components_on_stardist_equal_scipy_and_skimage(nuclei, conn, rank):
    _, lab = nuclei
    fg = lab > 0
    ours, n = vops.label3d(fg, connectivity=conn)
    ref, n_ref = ndimage.label(fg, ndimage.generate_binary_structure(3, rank))
    assert n == n_ref and _same_partition(ours, ref)
    if conn != 18:  # scikit-image's own union-find, an independent implementation
        sk = measure.label(fg, connectivity=1 if conn == 6 else 3)
        assert _same_partition(ours, sk)
    # every annotated nucleus lies inside one component (touching nuclei merge)
    pairs = np.unique(np.stack([lab[fg], ours[fg]]), axis=1)
    assert len(np.unique(pairs[0])) == pairs.shape[1]
    assert n <= len(np.unique(lab[fg]))


def test_regions_in_mm3_match_skimage(nuclei):
    img, lab = nuclei
    sp = (2.0, 0.5, 0.5)
    regs = vops.regions3d(lab, sp, volume=img)
    props = {p.label: p for p in measure.regionprops(lab, intensity_image=img)}
    assert len(regs) == len(props)
    for r in regs:
        p = props[r.label]
        assert r.voxels == p.area and r.volume_mm3 == pytest.approx(p.area * 0.5)
        assert np.allclose(r.centroid_mm, np.array(p.centroid) * sp, atol=1e-3)
        assert r.mean_intensity == pytest.approx(p.intensity_mean)
        assert r.bbox == list(p.bbox)


def test_otsu_on_the_volume_matches_skimage(nuclei):
    img, _ = nuclei
    mask, level = vops.otsu_volume(img)
    assert level == pytest.approx(filters.threshold_otsu(img.astype(np.float64)))
    assert np.array_equal(mask, (img > level).astype(np.uint8))
    const, lv = vops.otsu_volume(np.full((4, 4, 4), 7.0))
    assert lv == 7.0 and not const.any()
    nan = img.astype(np.float32)
    nan[0, 0, 0] = np.nan
    m2, l2 = vops.otsu_volume(nan)
    assert m2[0, 0, 0] == 0 and np.isfinite(l2)
    with pytest.raises(SegflowError, match="3-D"):
        vops.otsu_volume(img[0])
    with pytest.raises(SegflowError, match="no finite"):
        vops.otsu_volume(np.full((3, 3, 3), np.nan))


def test_ellipsoid_is_round_in_mm():
    se = vops.ellipsoid(3.0, (1.0, 1.0, 2.5))
    assert se.shape == (7, 7, 3)
    assert se[3, 3, :].all() and se[0, 3, 1] and not se[0, 0, 1]
    assert vops.ellipsoid(0.4, (1, 1, 1)).shape == (1, 1, 1)
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(SegflowError):
            vops.ellipsoid(bad, (1, 1, 1))
    with pytest.raises(SegflowError, match="spacing"):
        vops.ellipsoid(2, (1, 0, 1))
    with pytest.raises(SegflowError, match="64 voxels"):
        vops.ellipsoid(2**63, (1, 1, 1))


def test_morphology_matches_skimage_with_the_same_ball():
    rng = np.random.default_rng(0)
    m = np.zeros((40, 40, 20), bool)
    m[5:35, 5:35, 4:16] = ndimage.gaussian_filter(rng.random((30, 30, 12)), 1.5) > 0.5
    sp = (0.8, 0.8, 2.0)
    fp = vops.ellipsoid(2.0, sp)
    assert np.array_equal(vops.open3d(m, 2.0, sp), morphology.opening(m, fp))
    assert np.array_equal(vops.close3d(m, 2.0, sp), morphology.closing(m, fp))
    holes = np.ones((9, 9, 9), np.uint8)
    holes[4, 4, 4] = 0
    assert vops.fill_holes3d(holes).all()
    small = np.zeros((10, 10, 10), np.uint8)
    small[1, 1, 1] = 1
    small[5:8, 5:8, 5:8] = 1
    kept = vops.remove_small3d(small, 2 * 8.0, (2, 2, 2))  # voxel = 8 mm3
    assert kept.sum() == 27 and kept[1, 1, 1] == 0


def _blobs(seed, shape=(36, 30, 16)):
    rng = np.random.default_rng(seed)
    g = ndimage.gaussian_filter(rng.random(shape), 3) > 0.5
    p = ndimage.gaussian_filter(rng.random(shape), 3) > 0.5
    return g, p


def _monai(g, p, sp, tol):
    torch = pytest.importorskip("torch")
    mm = pytest.importorskip("monai.metrics")

    def onehot(x):
        t = torch.from_numpy(np.ascontiguousarray(x))
        return torch.stack([~t, t])[None].float()

    hd = float(mm.compute_hausdorff_distance(onehot(p), onehot(g), percentile=95, spacing=sp)[0, 0])
    sd = float(mm.compute_surface_dice(onehot(p), onehot(g), class_thresholds=[tol], spacing=sp)[0, 0])
    dc = float(mm.compute_dice(onehot(p), onehot(g), include_background=False)[0, 0])
    iou = float(mm.compute_iou(onehot(p), onehot(g), include_background=False)[0, 0])
    return hd, sd, dc, iou


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("seed", range(4))
def test_metrics_equal_monai_on_blobs(seed):
    g, p = _blobs(seed)
    sp = [(0.7, 1.3, 2.5), (1.0, 1.0, 1.0), (0.5, 0.5, 3.0), (2.0, 0.9, 1.1)][seed]
    hd, sd, dc, iou = _monai(g, p, sp, 2.0)
    assert vm.hd95(g, p, sp) == pytest.approx(hd, rel=1e-5)
    assert vm.surface_dice(g, p, sp, 2.0) == pytest.approx(sd, rel=1e-5)
    assert vm.dice(g, p) == pytest.approx(dc, rel=1e-6)
    assert vm.iou(g, p) == pytest.approx(iou, rel=1e-6)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_metrics_equal_monai_on_stardist(nuclei):
    _, lab = nuclei
    g = lab > 0
    p = ndimage.binary_dilation(ndimage.shift(g, (0, 2, -1), order=0), iterations=1)
    sp = (2.0, 0.5, 0.5)
    hd, sd, dc, _ = _monai(g, p, sp, 1.0)
    assert vm.hd95(g, p, sp) == pytest.approx(hd, rel=1e-5)
    assert vm.surface_dice(g, p, sp, 1.0) == pytest.approx(sd, rel=1e-5)
    assert vm.dice(g, p) == pytest.approx(dc, rel=1e-6)
    # the spacing matters: the same voxels at another spacing give another distance
    assert vm.hd95(g, p, (1, 1, 1)) != pytest.approx(vm.hd95(g, p, sp))


def test_metric_edge_cases():
    z = np.zeros((5, 5, 5), bool)
    one = z.copy()
    one[2, 2, 2] = True
    assert np.isnan(vm.hd95(z, z, 1)) and np.isnan(vm.surface_dice(z, z, 1))
    assert vm.hd95(one, z, 1) == float("inf") and vm.surface_dice(z, one, 1) == 0.0
    assert vm.hd95(one, one, (1, 2, 3)) == 0.0 and vm.surface_dice(one, one, 1, 0.0) == 1.0
    assert np.isnan(vm.dice(z, z)) and vm.dice(one, one) == 1.0
    with pytest.raises(SegflowError, match="shape"):
        vm.dice(z, z[:4])
    with pytest.raises(SegflowError, match="tolerance"):
        vm.surface_dice(one, one, 1, float("nan"))
    with pytest.raises(SegflowError, match="spacing"):
        vm.hd95(one, one, (1, float("inf"), 1))


def test_wrong_inputs_are_one_line_errors():
    m = np.zeros((4, 4, 4), bool)
    with pytest.raises(SegflowError, match="numbers"):
        vops.threshold_volume(m)
    with pytest.raises(SegflowError, match="unknown method"):
        vops.threshold_volume(m.astype(np.float32), "adaptive_mean")
    with pytest.raises(SegflowError, match="finite value"):
        vops.threshold_volume(m.astype(np.float32), "fixed", value=float("nan"))
    with pytest.raises(SegflowError, match="6, 18 or 26"):
        vops.label3d(m, connectivity=8)
    with pytest.raises(SegflowError, match="integer"):
        vops.regions3d(m.astype(np.float32), (1, 1, 1))
    with pytest.raises(SegflowError, match="min volume"):
        vops.remove_small3d(m, float("inf"), (1, 1, 1))
    with pytest.raises(SegflowError, match="3-D"):
        vops.fill_holes3d(np.zeros((4, 4)))
    assert vops.regions3d(np.zeros((3, 3, 3), np.int32), (1, 1, 1)) == []


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_metric_properties_hypothesis():
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    masks = arrays(np.bool_, (6, 5, 4))
    spacing = st.tuples(*[st.floats(0.1, 5.0)] * 3)

    @settings(max_examples=60, deadline=None)
    @given(masks, masks, spacing, st.floats(0, 10))
    def check(g, p, sp, tol):
        h1, h2 = vm.hd95(g, p, sp), vm.hd95(p, g, sp)
        assert (np.isnan(h1) and np.isnan(h2)) or h1 == pytest.approx(h2)  # symmetric
        s = vm.surface_dice(g, p, sp, tol)
        assert np.isnan(s) or 0.0 <= s <= 1.0
        if g.any():
            assert vm.hd95(g, g, sp) == 0.0 and vm.surface_dice(g, g, sp, tol) == 1.0
            assert vm.dice(g, g) == 1.0
        d = vm.dice(g, p)
        j = vm.iou(g, p)
        assert (np.isnan(d) and np.isnan(j)) or d == pytest.approx(2 * j / (1 + j))

    check()
