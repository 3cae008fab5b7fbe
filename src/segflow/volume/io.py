"""Reading medical volumes (NIfTI, DICOM series) and writing masks aligned with them.

A :class:`Volume` is a 3-D array plus the affine that maps voxel indices ``(i, j, k, 1)`` to
world coordinates in millimetres, in the RAS+ convention of NIfTI and nibabel (+x towards the
patient's right, +y anterior, +z superior).
The array keeps the file's voxel order (``array[i, j, k]``); nothing is resampled, so a mask
written with :func:`write_mask_volume` lines up voxel for voxel with its source.

* NIfTI (``.nii``, ``.nii.gz``) is read with nibabel (its best affine: sform, else qform).
* MetaImage and NRRD (``.mha``, ``.mhd``, ``.nrrd``, ``.nhdr``) are read with SimpleITK.
* A DICOM series (a folder of slices) is read with pydicom: slices are ordered by their
  position along the slice normal (never by file name or InstanceNumber), the slice step is
  checked to be uniform (a gap means missing slices), and the rescale slope/intercept is
  applied, so CT values are Hounsfield units. DICOM's LPS frame is turned into RAS.

Every file is written to a temporary name and renamed, so an interrupted write never leaves
half a file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from segflow.errors import ImageReadError, SegflowError
from segflow.volume._deps import need

#: Volumes with more voxels than this are refused before their data is read.
MAX_VOXELS = 1_000_000_000
NIFTI_SUFFIXES = (".nii.gz", ".nii")
#: Other single-file volume formats, read with SimpleITK (masks are written as NIfTI).
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Volume:
    """A 3-D scan or mask with its geometry.

    ``array``: ``(I, J, K)`` in the file's voxel order (float32 for scans in their stored units,
    HU for CT; integer ids for masks). ``affine``: ``(4, 4)`` voxel index -> RAS+ mm.
    ``modality``: "CT", "MR", ... when the file says so (DICOM), else None.
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str | None = None
    source: str = "<array>"
    header: object | None = field(default=None, repr=False)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along i, j, k in mm (the column norms of the affine)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def origin(self) -> tuple[float, float, float]:
        """World position (mm, RAS+) of voxel (0, 0, 0)."""
        return tuple(float(v) for v in self.affine[:3, 3])

    @property
    def orientation(self) -> str:
        """Axis codes, e.g. "RAS" or "LPS": where each voxel axis points in the patient."""
        nib = need("nibabel")
        return "".join(nib.aff2axcodes(self.affine))

    def with_array(self, array: np.ndarray) -> Volume:
        """The same geometry with another array of the same shape (e.g. a mask)."""
        array = np.asarray(array)
        if array.shape != self.array.shape:
            raise SegflowError(f"{self.source}: array shape {array.shape} differs from the "
                               f"volume's {self.array.shape}")
        return replace(self, array=array)


def is_volume_path(path: str | os.PathLike) -> bool:
    """True for a NIfTI, NRRD or MetaImage file, or a folder holding DICOM files (``*.dcm``)."""
    p = Path(path)
    if p.name.lower().endswith(NIFTI_SUFFIXES + ITK_SUFFIXES):
        return True
    return p.is_dir() and any(q.suffix.lower() == ".dcm" for q in p.iterdir())


def volume_stem(path: str | os.PathLike) -> str:
    """``scan.nii.gz`` -> ``scan``; a DICOM folder -> its name."""
    name = Path(path).name
    for s in NIFTI_SUFFIXES + ITK_SUFFIXES:
        if name.lower().endswith(s):
            return name[: -len(s)]
    return name


def list_volumes(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """NIfTI files given or found (recursively) in folders, sorted; DICOM series folders given
    directly are kept as they are."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and not is_volume_path(p):
            out.extend(sorted(q for q in p.rglob("*") if q.is_file() and is_volume_path(q)))
        elif is_volume_path(p):
            out.append(p)
    return out


def read_volume(path: str | os.PathLike, *, max_voxels: int = MAX_VOXELS) -> Volume:
    """Read a NIfTI file or a DICOM series folder (see the module docstring).

    Raises
    ------
    ImageReadError
        Missing path, broken header, not 3-D, too many voxels, non-finite or singular affine;
        for DICOM also mixed slice sizes or orientations and gaps between slices.
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: no such file or folder; check the path")
    if p.is_dir():
        return read_dicom_series(p, max_voxels=max_voxels)
    if p.name.lower().endswith(NIFTI_SUFFIXES):
        return read_nifti(p, max_voxels=max_voxels)
    if p.name.lower().endswith(ITK_SUFFIXES):
        return read_itk(p, max_voxels=max_voxels)
    raise ImageReadError(f"{p}: not a volume; give a .nii/.nii.gz, .nrrd or .mha file or a "
                         "folder of DICOM slices")


def _check_affine(affine: np.ndarray, where: str) -> np.ndarray:
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4) or not np.isfinite(affine).all():
        raise ImageReadError(f"{where}: the voxel-to-world affine is not finite; the header is "
                             "broken (re-export the scan)")
    if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ImageReadError(f"{where}: the voxel-to-world affine is singular (a zero voxel "
                             "size); the header is broken (re-export the scan)")
    return affine


def _check_shape(shape, where: str, max_voxels: int) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise ImageReadError(f"{where}: expected a 3-D volume, got shape {shape}; split 4-D "
                             "series into 3-D files first")
    if min(shape) < 1:
        raise ImageReadError(f"{where}: dimensions {shape} are not a volume (a size below 1); "
                             "the header is broken (re-export the scan)")
    n = int(np.prod(shape, dtype=object))
    if n > max_voxels:
        raise ImageReadError(f"{where}: {n} voxels exceed the cap of {max_voxels}; crop or "
                             "downsample the scan")
    return shape


def read_nifti(path: str | os.PathLike, *, max_voxels: int = MAX_VOXELS) -> Volume:
    """Read a NIfTI-1/2 file with nibabel (the data in its stored units, scl_slope applied)."""
    nib = need("nibabel")
    p = Path(path)
    try:
        img = nib.load(str(p))
    except FileNotFoundError:
        raise ImageReadError(f"{p}: no such file; check the path") from None
    except Exception as e:  # nibabel raises many kinds on a broken file
        msg = " ".join(str(e).split())[:160]
        raise ImageReadError(f"{p}: not a readable NIfTI file (broken header: {msg})") from None
    where = str(p)
    shape = _check_shape(img.shape, where, max_voxels)
    affine = _check_affine(img.affine, where)
    try:
        arr = np.asanyarray(img.dataobj)
    except Exception as e:
        msg = " ".join(str(e).split())[:160]
        raise ImageReadError(f"{p}: the voxel data cannot be read ({msg}); the file is "
                             "truncated or corrupt") from None
    arr = arr.reshape(shape)
    return Volume(arr, affine, None, where, img.header)


def read_itk(path: str | os.PathLike, *, max_voxels: int = MAX_VOXELS) -> Volume:
    """Read a NRRD or MetaImage file with SimpleITK (ITK's LPS geometry turned into RAS)."""
    sitk = need("SimpleITK")
    p = Path(path)
    try:
        r = sitk.ImageFileReader()
        r.SetFileName(str(p))
        r.ReadImageInformation()
        size = r.GetSize()
        if r.GetNumberOfComponents() != 1:
            raise ImageReadError(f"{p}: {r.GetNumberOfComponents()} components per voxel; give "
                                 "a scalar volume")
        _check_shape(size, str(p), max_voxels)
        img = r.Execute()
    except RuntimeError as e:
        msg = " ".join(str(e).split())[-160:]
        raise ImageReadError(f"{p}: not a readable volume ({msg})") from None
    d = np.array(img.GetDirection(), np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = d @ np.diag(img.GetSpacing())
    lps[:3, 3] = img.GetOrigin()
    affine = _check_affine(_LPS_TO_RAS @ lps, str(p))
    arr = sitk.GetArrayFromImage(img).transpose(2, 1, 0)  # ITK (k, j, i) -> (i, j, k)
    return Volume(np.ascontiguousarray(arr), affine, None, str(p))


def _dicom_files(folder: Path) -> list[Path]:
    files = [q for q in sorted(folder.iterdir()) if q.is_file() and not q.name.startswith(".")]
    dcm = [q for q in files if q.suffix.lower() == ".dcm"]
    return dcm or files


def read_dicom_series(folder: str | os.PathLike, *, max_voxels: int = MAX_VOXELS) -> Volume:
    """Read one DICOM series from a folder (see the module docstring for the checks made)."""
    pydicom = need("pydicom")
    folder = Path(folder)
    slices = []
    for f in _dicom_files(folder):
        try:
            ds = pydicom.dcmread(str(f))
        except Exception:
            continue  # not a DICOM file (a README, a DICOMDIR index...): skip it
        if "PixelData" in ds:
            slices.append((f, ds))
    if not slices:
        raise ImageReadError(f"{folder}: no DICOM slices with pixel data found")
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in slices}
    if len(series) > 1:
        raise ImageReadError(f"{folder}: holds {len(series)} DICOM series; put each series in "
                             "its own folder")
    for f, ds in slices:
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
            if tag not in ds:
                raise ImageReadError(f"{f}: DICOM slice without {tag}; cannot place it in 3-D")
    f0, d0 = slices[0]
    rows, cols = int(d0.Rows), int(d0.Columns)
    iop = np.array(d0.ImageOrientationPatient, dtype=np.float64)
    for f, ds in slices:
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise ImageReadError(f"{folder}: mixed slice sizes ({f.name} is {ds.Columns}x{ds.Rows}, "
                                 f"{f0.name} is {cols}x{rows}); a series has one size")
        if not np.allclose(np.array(ds.ImageOrientationPatient, float), iop, atol=1e-4):
            raise ImageReadError(f"{folder}: mixed slice orientations ({f.name} vs {f0.name}); "
                                 "a series has one orientation")
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    pos = np.array([np.array(ds.ImagePositionPatient, np.float64) for _, ds in slices])
    order = np.argsort(pos @ normal, kind="stable")
    slices = [slices[k] for k in order]
    pos = pos[order]
    _check_shape((cols, rows, len(slices)), str(folder), max_voxels)
    depth = pos @ normal
    if len(slices) > 1:
        steps = np.diff(depth)
        step = float(np.median(steps))
        if step < 1e-6:
            raise ImageReadError(f"{folder}: two slices at the same position "
                                 f"({slices[int(np.argmin(steps))][0].name}); remove duplicates")
        bad = np.flatnonzero(np.abs(steps - step) > max(0.01 * step, 1e-3))
        if bad.size:
            k = int(bad[0])
            raise ImageReadError(
                f"{folder}: slice positions jump by {steps[k]:.3g} mm between {slices[k][0].name} "
                f"and {slices[k + 1][0].name} (elsewhere {step:.3g} mm): missing slices")
        k_vec = (pos[-1] - pos[0]) / (len(slices) - 1)
    else:
        thick = float(d0.get("SliceThickness", 1.0) or 1.0)
        k_vec = normal * thick
    ps = [float(v) for v in d0.PixelSpacing]  # (row spacing, column spacing)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * ps[1]  # i: along a row (column index)
    lps[:3, 1] = col_dir * ps[0]  # j: down a column (row index)
    lps[:3, 2] = k_vec
    lps[:3, 3] = pos[0]
    affine = _check_affine(_LPS_TO_RAS @ lps, str(folder))
    planes = []
    for f, ds in slices:
        try:
            px = ds.pixel_array
        except Exception as e:
            msg = " ".join(str(e).split())[:120]
            raise ImageReadError(f"{f}: pixel data cannot be decoded ({msg})") from None
        slope = float(ds.get("RescaleSlope", 1) or 1)
        inter = float(ds.get("RescaleIntercept", 0) or 0)
        planes.append(px.astype(np.float32) * slope + inter)
    arr = np.stack(planes, axis=0).transpose(2, 1, 0)  # (k, row, col) -> (i=col, j=row, k)
    return Volume(np.ascontiguousarray(arr), affine, str(d0.get("Modality", "")) or None,
                  str(folder))


def _atomic(path: Path, save) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name
    suffix = next((s for s in NIFTI_SUFFIXES if name.lower().endswith(s)), path.suffix)
    tmp = path.with_name(f".{name[: len(name) - len(suffix)]}.tmp{os.getpid()}{suffix}")
    try:
        save(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _mask_dtype(arr: np.ndarray, where: str) -> np.dtype:
    if arr.dtype == bool:
        return np.dtype(np.uint8)
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise SegflowError(f"{where}: a mask holds integer class ids; got non-integer values")
    elif arr.dtype.kind not in "iu":
        raise SegflowError(f"{where}: a mask holds integer class ids, got dtype {arr.dtype}")
    if arr.size == 0:
        return np.dtype(np.uint8)
    lo, hi = arr.min(), arr.max()
    if lo < 0 or hi > 65535:
        raise SegflowError(f"{where}: mask ids must be 0..65535, got {lo}..{hi}")
    return np.dtype(np.uint8 if hi <= 255 else np.uint16)


def write_volume(path: str | os.PathLike, like: Volume, array: np.ndarray | None = None, *,
                 mask: bool = True) -> Path:
    """Write ``array`` (default ``like.array``) as NIfTI with ``like``'s affine.

    With ``mask=True`` (the default) the array must hold integer ids 0..65535 and is stored as
    uint8/uint16; otherwise it is stored as float32. The sform and qform codes of ``like``'s
    NIfTI header are kept (scanner or aligned), so viewers overlay the mask on the scan.
    """
    nib = need("nibabel")
    path = Path(path)
    if not path.name.lower().endswith(NIFTI_SUFFIXES):
        raise SegflowError(f"{path}: write volumes as .nii or .nii.gz")
    arr = np.asarray(like.array if array is None else array)
    if arr.shape != like.array.shape:
        raise SegflowError(f"{path}: mask shape {arr.shape} differs from the image's "
                           f"{like.array.shape}")
    dtype = _mask_dtype(arr, str(path)) if mask else np.dtype(np.float32)
    img = nib.Nifti1Image(arr.astype(dtype, copy=False), like.affine)
    hdr = like.header
    scode = int(hdr["sform_code"]) if hdr is not None and "sform_code" in hdr else 1
    qcode = int(hdr["qform_code"]) if hdr is not None and "qform_code" in hdr else 1
    img.set_sform(like.affine, code=scode or 1)
    img.set_qform(like.affine, code=qcode or 1)
    img.header.set_data_dtype(dtype)
    if hdr is not None and "xyzt_units" in hdr:
        img.header["xyzt_units"] = hdr["xyzt_units"]
    return _atomic(path, lambda t: nib.save(img, str(t)))


def write_mask_volume(path: str | os.PathLike, mask: np.ndarray, like: Volume) -> Path:
    """Write a class or instance mask aligned with the scan ``like`` (same affine)."""
    return write_volume(path, like, mask, mask=True)


def check_aligned(mask: Volume, image: Volume, *, tol_mm: float = 1e-3) -> None:
    """Refuse a mask whose grid differs from the image's (shape or affine)."""
    if mask.array.shape != image.array.shape:
        raise SegflowError(f"{mask.source}: mask shape {mask.array.shape} differs from "
                           f"{image.source}'s {image.array.shape}; resample it onto the image")
    diff = float(np.abs(mask.affine - image.affine).max())
    if diff > tol_mm:
        raise SegflowError(f"{mask.source}: mask affine differs from {image.source}'s (by up to "
                           f"{diff:.3g} mm); resample the mask onto the image grid")
