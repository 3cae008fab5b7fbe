"""Medical volume I/O: NIfTI round trips, DICOM series order and spacing, and bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

nib = pytest.importorskip("nibabel")
pydicom = pytest.importorskip("pydicom")

from segflow.errors import SegflowError  # noqa: E402
from segflow.volume import (  # noqa: E402
    apply_window,
    check_aligned,
    read_volume,
    window_level,
    write_mask_volume,
)


def _affine():
    # Oblique, anisotropic, with an offset: nothing an identity-affine bug could pass.
    a = np.array([[-0.8, 0.05, 0.0, 120.5], [0.04, 0.78, 0.1, -95.25], [0.0, -0.02, 2.5, 40.0],
                  [0, 0, 0, 1]])
    return a


def _nifti(path: Path, data: np.ndarray, affine=None) -> Path:
    img = nib.Nifti1Image(data, _affine() if affine is None else affine)
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    nib.save(img, str(path))
    return path


def test_nifti_round_trip_keeps_affine_and_voxels(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(-1024, 3000, (20, 17, 9)).astype(np.int16)
    src = _nifti(tmp_path / "scan.nii.gz", data)
    vol = read_volume(src)
    assert np.array_equal(vol.array, data)
    mask = (rng.random(data.shape) > 0.6).astype(np.uint8) * 3
    out = write_mask_volume(tmp_path / "out" / "scan_mask.nii.gz", mask, vol)
    back = read_volume(out)
    assert np.array_equal(back.affine, vol.affine)  # bit for bit, not approximately
    assert np.array_equal(back.array, mask) and back.array.dtype == np.uint8
    assert back.orientation == vol.orientation == "LAS"
    assert np.allclose(vol.spacing, np.linalg.norm(_affine()[:3, :3], axis=0), atol=1e-6)
    check_aligned(back, vol)
    # nibabel's own reading of the written file agrees too
    ref = nib.load(str(out))
    assert np.array_equal(ref.affine, nib.load(str(src)).affine)
    assert list((tmp_path / "out").iterdir()) == [out]  # no temporary file left


def test_large_ids_written_as_uint16(tmp_path):
    vol = read_volume(_nifti(tmp_path / "a.nii", np.zeros((4, 4, 4), np.float32)))
    ids = np.zeros((4, 4, 4), np.int64)
    ids[0, 0, 0] = 60000
    back = read_volume(write_mask_volume(tmp_path / "m.nii.gz", ids, vol))
    assert back.array.dtype == np.uint16 and back.array[0, 0, 0] == 60000


@pytest.mark.parametrize("bad", [np.full((4, 4, 4), np.nan), np.full((4, 4, 4), 0.5),
                                 np.full((4, 4, 4), -1), np.full((4, 4, 4), 2**63 - 1)])
def test_bad_mask_values_refused_and_nothing_written(tmp_path, bad):
    vol = read_volume(_nifti(tmp_path / "a.nii", np.zeros((4, 4, 4), np.float32)))
    with pytest.raises(SegflowError) as e:
        write_mask_volume(tmp_path / "o" / "m.nii.gz", bad, vol)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    vol = read_volume(_nifti(tmp_path / "a.nii", np.zeros((4, 4, 4), np.float32)))

    def boom(img, fname):
        Path(fname).write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(nib, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        write_mask_volume(tmp_path / "o" / "m.nii.gz", np.zeros((4, 4, 4), np.uint8), vol)
    assert list((tmp_path / "o").iterdir()) == []


def test_broken_nifti_header_is_one_line(tmp_path):
    p = _nifti(tmp_path / "ok.nii", np.zeros((4, 4, 4), np.float32))
    import struct

    raw = p.read_bytes()
    for offset, value, msg in [(70, struct.pack("<h", 999), "not a readable NIfTI file"),  # datatype
                               (344, b"xx1\0", "not a readable NIfTI file"),  # magic
                               (42, struct.pack("<h", -5), "header is broken")]:  # dim[1]
        bad = tmp_path / "bad.nii"
        bad.write_bytes(raw[:offset] + value + raw[offset + len(value):])
        with pytest.raises(SegflowError, match=rf"bad\.nii: .*{msg}") as e:
            read_volume(bad)
        assert "\n" not in str(e.value)
    (tmp_path / "junk.nii.gz").write_bytes(gzip.compress(b"not nifti at all"))
    with pytest.raises(SegflowError, match="not a readable NIfTI"):
        read_volume(tmp_path / "junk.nii.gz")
    # a header whose affine has a zero voxel size
    (tmp_path / "flat.nii").write_bytes(raw[:296] + bytes(16) + raw[312:])  # srow_y = 0
    with pytest.raises(SegflowError, match="singular"):
        read_volume(tmp_path / "flat.nii")
    # truncated voxel data
    full = tmp_path / "trunc.nii"
    _nifti(full, np.ones((30, 30, 30), np.float32))
    full.write_bytes(full.read_bytes()[:5000])
    with pytest.raises(SegflowError, match="trunc.nii"):
        read_volume(full)


def test_mask_with_other_affine_is_refused(tmp_path):
    img = read_volume(_nifti(tmp_path / "img.nii.gz", np.zeros((5, 6, 7), np.float32)))
    shifted = _affine()
    shifted[0, 3] += 1.5
    m = read_volume(_nifti(tmp_path / "m.nii.gz", np.zeros((5, 6, 7), np.uint8), shifted))
    with pytest.raises(SegflowError, match=r"mask affine differs .*by up to 1\.5 mm") as e:
        check_aligned(m, img)
    assert "\n" not in str(e.value)
    m2 = read_volume(_nifti(tmp_path / "m2.nii.gz", np.zeros((5, 6, 8), np.uint8)))
    with pytest.raises(SegflowError, match="shape"):
        check_aligned(m2, img)


def test_four_d_and_missing_are_refused(tmp_path):
    with pytest.raises(SegflowError, match="3-D"):
        read_volume(_nifti(tmp_path / "t.nii", np.zeros((3, 3, 3, 2), np.float32)))
    assert read_volume(_nifti(tmp_path / "t1.nii", np.zeros((3, 3, 3, 1), np.float32))).array.ndim == 3
    with pytest.raises(SegflowError, match="no such"):
        read_volume(tmp_path / "nope.nii.gz")
    with pytest.raises(SegflowError, match="not a volume"):
        read_volume(Path(__file__))


# ---- DICOM ------------------------------------------------------------------------------------


def _dicom_series(folder: Path, vol: np.ndarray, *, spacing=(0.7, 0.9), step=2.5,
                  origin=(-100.0, -80.0, 30.0), order=None, sizes=None, drop=(), intercept=-1024,
                  iop=(1, 0, 0, 0, 1, 0)) -> list[Path]:
    """Write ``vol`` (k, rows, cols) as a CT series, stored values = HU - intercept."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series, study = generate_uid(), generate_uid()
    iop = np.array(iop, float)
    normal = np.cross(iop[:3], iop[3:])
    n = vol.shape[0]
    order = list(range(n)) if order is None else order
    paths = []
    for file_no, k in enumerate(order):
        if k in drop:
            continue
        px = (vol[k] - intercept).astype(np.int16)
        if sizes is not None and k == sizes:
            px = px[:-1]
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series, study
        ds.InstanceNumber = (7 * k + 3) % n + 1  # scrambled: order must come from positions
        ds.ImagePositionPatient = [float(x) for x in np.array(origin) + k * step * normal]
        ds.ImageOrientationPatient = [float(x) for x in iop]
        ds.PixelSpacing = [spacing[0], spacing[1]]
        ds.SliceThickness = step
        ds.Rows, ds.Columns = px.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = intercept, 1
        ds.PixelData = px.tobytes()
        p = folder / f"IM{file_no:04d}.dcm"
        ds.save_as(str(p), enforce_file_format=True)
        paths.append(p)
    return paths


def test_dicom_series_order_spacing_and_hu(tmp_path):
    rng = np.random.default_rng(1)
    vol = rng.integers(-1000, 1500, (7, 12, 10)).astype(np.int16)  # (k, rows, cols) in HU
    _dicom_series(tmp_path / "ct", vol, order=[3, 0, 6, 1, 5, 2, 4])  # files shuffled
    v = read_volume(tmp_path / "ct")
    assert v.modality == "CT"
    assert np.allclose(v.spacing, (0.9, 0.7, 2.5))  # i = columns, j = rows, k = slices
    assert np.array_equal(v.array, vol.transpose(2, 1, 0).astype(np.float32))
    assert v.orientation == "LPS"  # identity DICOM orientation: +i left, +j posterior
    assert np.allclose(v.origin, (100.0, 80.0, 30.0))  # LPS (-100, -80, 30) in RAS
    # SimpleITK (ITK's series reader, a reference) agrees on order, spacing and origin
    sitk = pytest.importorskip("SimpleITK")
    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(tmp_path / "ct")))
    img = r.Execute()
    assert np.array_equal(sitk.GetArrayFromImage(img).astype(np.float32), vol.astype(np.float32))
    assert np.allclose(img.GetSpacing(), v.spacing)
    lps = np.array(img.GetOrigin()) * [-1, -1, 1]
    assert np.allclose(lps, v.origin)


def test_dicom_descending_positions_and_oblique(tmp_path):
    vol = np.arange(5 * 6 * 4, dtype=np.int16).reshape(5, 6, 4)
    c, s = np.cos(0.3), np.sin(0.3)
    _dicom_series(tmp_path / "ob", vol, step=-3.0, iop=(c, s, 0, -s, c, 0), order=[4, 2, 0, 1, 3])
    v = read_volume(tmp_path / "ob")
    # sorted by position along the normal: the slice written last (k=4) is at the lowest z
    assert np.array_equal(v.array[..., 0], vol[4].T.astype(np.float32))
    assert np.allclose(v.spacing, (0.9, 0.7, 3.0))
    assert np.isclose(v.affine[2, 3], 30.0 - 12.0)


def test_dicom_missing_slice_mixed_sizes_and_series(tmp_path):
    vol = np.zeros((6, 8, 8), np.int16)
    _dicom_series(tmp_path / "gap", vol, drop=(3,))
    with pytest.raises(SegflowError, match="jump by 5 mm .* missing slices") as e:
        read_volume(tmp_path / "gap")
    assert "\n" not in str(e.value)
    _dicom_series(tmp_path / "mixed", vol, sizes=2)
    with pytest.raises(SegflowError, match="mixed slice sizes"):
        read_volume(tmp_path / "mixed")
    for p in _dicom_series(tmp_path / "two", vol[:3]):
        p.rename(p.with_name(f"x{p.name}"))
    _dicom_series(tmp_path / "two", vol[:3], origin=(0, 0, 0))
    with pytest.raises(SegflowError, match="2 DICOM series"):
        read_volume(tmp_path / "two")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.dcm").write_bytes(b"junk")
    with pytest.raises(SegflowError, match="no DICOM slices"):
        read_volume(tmp_path / "empty")


def test_window_presets_and_percentiles():
    hu = np.array([-1000, -600, 40, 240, 2000], np.float32)
    lv, w = window_level(hu, "lung")
    assert (lv, w) == (-600.0, 1500.0)
    assert apply_window(hu, lv, w).tolist() == [59, 127, 236, 255, 255]
    assert window_level(hu, "soft_tissue") == (40.0, 400.0)
    assert window_level(hu, "bone") == (400.0, 1800.0)
    mr = np.concatenate([np.zeros(1000), np.linspace(10, 110, 1001)])
    lv, w = window_level(mr, modality="MR")
    assert np.isclose(lv - w / 2, 10.5) and np.isclose(lv + w / 2, 109.5)
    with pytest.raises(SegflowError, match="unknown preset"):
        window_level(hu, "lungs")
    with pytest.raises(SegflowError):
        apply_window(hu, float("nan"), 10)
    assert apply_window(np.array([np.nan, np.inf]), 0, 10).tolist() == [0, 255]


def test_missing_extra_names_the_install_command(monkeypatch):
    import sys

    from segflow.volume._deps import need

    monkeypatch.setitem(sys.modules, "nibabel", None)  # as if not installed
    with pytest.raises(SegflowError, match=r"nibabel is not installed\): pip install 'segflow\[medical\]'"):
        need("nibabel")


def test_inspect_mr_reports_percentiles(tmp_path):
    from segflow.volume.inspect import inspect_volume

    mr = np.zeros((10, 10, 10), np.float32)
    mr[2:8, 2:8, 2:8] = np.linspace(100, 900, 216).reshape(6, 6, 6)
    d = inspect_volume(_nifti(tmp_path / "t1.nii.gz", mr))
    assert d["modality"] == "MR" and d["orientation"] == "LAS"
    assert d["intensity"]["p50"] == pytest.approx(np.percentile(mr[mr > 0], 50))
    lv, w = d["window"]["level_width"]
    assert lv - w / 2 == pytest.approx(np.percentile(mr[mr > 0], 0.5), rel=1e-5)


def test_nrrd_and_mha_read_with_the_geometry_nibabel_sees(tmp_path):
    sitk = pytest.importorskip("SimpleITK")
    rng = np.random.default_rng(3)
    arr = rng.integers(-1000, 1000, (6, 7, 8)).astype(np.int16)  # ITK order (k, j, i)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 0.9, 2.5))
    img.SetOrigin((10.0, -20.0, 30.0))
    c, s = np.cos(0.2), np.sin(0.2)
    img.SetDirection((c, -s, 0, s, c, 0, 0, 0, 1))
    sitk.WriteImage(img, str(tmp_path / "a.nii.gz"))  # ITK's own NIfTI writer, read by nibabel
    ref = read_volume(tmp_path / "a.nii.gz")
    for ext in ("nrrd", "mha"):
        sitk.WriteImage(img, str(tmp_path / f"a.{ext}"))
        v = read_volume(tmp_path / f"a.{ext}")
        assert np.array_equal(v.array, arr.transpose(2, 1, 0)) and np.array_equal(v.array, ref.array)
        assert np.allclose(v.affine, ref.affine, atol=1e-4)
        assert np.allclose(v.spacing, (0.8, 0.9, 2.5))
    (tmp_path / "bad.nrrd").write_bytes(b"NRRD0004\ntype: nonsense\n\n")
    with pytest.raises(SegflowError, match="bad.nrrd: not a readable volume") as e:
        read_volume(tmp_path / "bad.nrrd")
    assert "\n" not in str(e.value)
