"""Volumes through the command line: synth, inspect, segment, run and eval, as a user runs them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("nibabel")

from segflow.volume import read_volume  # noqa: E402
from segflow.volume.ops import otsu_volume  # noqa: E402
from tests.test_cli import assert_one_line_error, segflow  # noqa: E402


@pytest.fixture(scope="module")
def ct3d(tmp_path_factory):
    d = tmp_path_factory.mktemp("ct3d")
    segflow("data", "synth", "medical3d", "-n", 2, "--size", 48, "--seed", 3, "-o", d, check=0)
    return d


def test_synth_writes_aligned_nifti_pairs(ct3d):
    names = sorted(p.name for p in (ct3d / "images").iterdir())
    assert names == ["medical3d_3_00000.nii.gz", "medical3d_3_00001.nii.gz"]
    assert json.loads((ct3d / "schema.json").read_text())["kind"] == "volumes"
    for n in names:
        img, lab = read_volume(ct3d / "images" / n), read_volume(ct3d / "labels" / n)
        assert np.array_equal(img.affine, lab.affine) and img.array.shape == lab.array.shape
        assert img.spacing[2] > img.spacing[0]  # anisotropic: thick slices
        assert set(np.unique(lab.array)) <= {0, 1, 2} and (lab.array == 1).any()
        # the organ is brighter than the body around it: contrast the labels can be found by
        organ = img.array[lab.array == 1].mean()
        ring = img.array[(lab.array == 0) & (img.array > -200) & (img.array < 300)].mean()
        assert organ > ring + 20


def test_inspect_reports_geometry_and_hu(ct3d):
    p = segflow("inspect", "--json", ct3d / "images" / "medical3d_3_00000.nii.gz", check=0)
    v = json.loads(p.stdout)["volumes"][0]
    ref = read_volume(ct3d / "images" / "medical3d_3_00000.nii.gz")
    assert v["shape"] == list(ref.array.shape) and v["orientation"] == "LPS"
    assert np.allclose(v["spacing_mm"], ref.spacing, atol=1e-5)
    assert v["modality"] == "CT" and v["intensity"]["unit"] == "HU"
    assert v["intensity"]["min"] == pytest.approx(float(ref.array.min()))


def test_segment_otsu_writes_an_aligned_mask(ct3d, tmp_path):
    src = ct3d / "images" / "medical3d_3_00000.nii.gz"
    p = segflow("segment", "otsu", src, "-o", tmp_path, "--json", check=0)
    d = json.loads(p.stdout)
    out = tmp_path / "medical3d_3_00000_mask.nii.gz"
    assert str(out) in d["outputs"]
    img, m = read_volume(src), read_volume(out)
    assert np.array_equal(m.affine, img.affine)
    ref, level = otsu_volume(img.array)
    assert d["threshold"] == pytest.approx(level) and np.array_equal(m.array, ref)
    regions = json.loads((tmp_path / "medical3d_3_00000_regions.json").read_text())
    vox = float(np.prod(img.spacing))
    assert regions["mask_volume_mm3"] == pytest.approx(ref.sum() * vox, rel=1e-6)
    assert sum(r["volume_mm3"] for r in regions["regions"]) == pytest.approx(ref.sum() * vox, rel=1e-6)
    p = segflow("segment", "kmeans", src, "-o", tmp_path)
    assert_one_line_error(p, "kmeans", "not available for volumes")


def test_run_accepts_volumes_and_names_unsupported_steps(ct3d, tmp_path):
    p = segflow("run", "objects", ct3d / "images", "-o", tmp_path / "a", "--json",
                check=0)
    d = json.loads(p.stdout)
    assert d["images"] == 2 and d["failed"] == 0
    assert (tmp_path / "a" / "medical3d_3_00001_mask.nii.gz").is_file()
    p = segflow("run", "coins", ct3d / "images", "-o", tmp_path / "b")
    assert_one_line_error(p, "not available for volumes", "adaptive_gaussian")
    assert not (tmp_path / "b").exists()


def test_eval_on_nifti_folders(ct3d, tmp_path):
    perfect = tmp_path / "perfect"
    shutil.copytree(ct3d / "labels", perfect)
    d = json.loads(segflow("eval", "--task", "semantic", "--gt", ct3d, "--pred", perfect, "--json",
                           check=0).stdout)
    assert d["miou"] == 1.0 and d["volumes"] == 2
    assert d["per_class"]["organ"]["hd95_mm"] == 0.0 and d["per_class"]["organ"]["surface_dice"] == 1.0
    # a prediction with another affine is refused in one line
    from segflow.volume import write_mask_volume

    src = read_volume(perfect / "medical3d_3_00000.nii.gz")
    src.affine = src.affine.copy()
    src.affine[0, 3] += 2.0
    write_mask_volume(perfect / "medical3d_3_00000.nii.gz", src.array, src)
    p = segflow("eval", "--task", "semantic", "--gt", ct3d, "--pred", perfect)
    assert_one_line_error(p, "mask affine differs", "2 mm")


def test_broken_nifti_in_cli_is_one_line(tmp_path):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    p = segflow("segment", "otsu", bad, "-o", tmp_path / "o")
    assert_one_line_error(p, "bad.nii.gz", "not a readable NIfTI")
    assert not (tmp_path / "o").exists()


def test_dicom_series_through_inspect_and_segment(tmp_path):
    from tests.test_volume_io import _dicom_series

    rng = np.random.default_rng(5)
    hu = np.full((6, 20, 16), -1000, np.int16)
    hu[1:5, 5:15, 4:12] = 60 + rng.integers(-5, 5, (4, 10, 8))
    _dicom_series(tmp_path / "series1", hu, order=[5, 3, 1, 0, 2, 4])
    v = json.loads(segflow("inspect", "--json", tmp_path / "series1", check=0).stdout)["volumes"][0]
    assert v["modality"] == "CT" and v["orientation"] == "LPS" and v["shape"] == [16, 20, 6]
    assert np.allclose(v["spacing_mm"], [0.9, 0.7, 2.5]) and v["intensity"]["min"] == -1000
    segflow("segment", "otsu", tmp_path / "series1", "-o", tmp_path / "out", check=0)
    m = read_volume(tmp_path / "out" / "series1_mask.nii.gz")
    src = read_volume(tmp_path / "series1")
    assert np.allclose(m.affine, src.affine, atol=1e-4)  # NIfTI keeps the affine in float32
    assert np.array_equal(m.array, (hu > -470).transpose(2, 1, 0))
