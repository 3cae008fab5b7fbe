"""3-D volumes (NIfTI, DICOM series) in the studio: import, the planes the slice viewer shows,
labels stored one axial slice per chunk (``services.chunks``), interpolation between painted
slices, and the NIfTI export.

A volume keeps its file's voxel order ``(I, J, K)`` (``segflow.volume.io``); its labels are
chunks ``"k<n>"``, the ``(I, J)`` slices at ``k = n``. The viewer sees planes along any axis:
``axis`` 0, 1 or 2 fixes i, j or k (sagittal, coronal, axial for a RAS-ordered scan), and a
plane is shown with its second axis running up the screen, so the slice ``s`` of the array is
displayed as ``s.T[::-1]``. Image and label planes go through the same two functions, so the
browser never needs to know the orientation.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from segflow.errors import SegflowError
from segflow.studio.services import chunks
from segflow.studio.tables import Image, LargeItem, Task

#: The studio keeps a volume as float32 on disk and reads planes from it memory-mapped.
MAX_VOXELS = 256 * 2**20
AXES = ("sagittal", "coronal", "axial")  # axis 0, 1, 2 of a RAS-ordered volume
#: How many slices one interpolation may fill.
MAX_GAP = 1024


def plane_shape(shape, axis: int) -> tuple[int, int]:
    """(height, width) of a displayed plane along ``axis``."""
    a, b = [n for k, n in enumerate(shape) if k != axis]
    return b, a


def take_plane(arr: np.ndarray, axis: int, index: int) -> np.ndarray:
    return np.take(arr, index, axis=axis).T[::-1]


def chunk_key(k: int) -> str:
    return f"k{k}"


def check_plane(shape, axis: int, index: int) -> None:
    if axis not in (0, 1, 2):
        raise SegflowError(f"axis: {axis}; use 0 (sagittal), 1 (coronal) or 2 (axial)")
    if not 0 <= index < shape[axis]:
        raise SegflowError(f"index: slice {index} is out of range; the volume has "
                           f"{shape[axis]} {AXES[axis]} slices (0..{shape[axis] - 1})")


# ---- import ------------------------------------------------------------------------------


def import_volume(db: Session, data_dir: Path, project, path: str) -> dict:
    """Read a NIfTI file or DICOM series folder on the server and add it as an image and a task
    of ``project``. Raises SegflowError naming the file otherwise."""
    from segflow.volume.display import window_level
    from segflow.volume.io import read_volume, volume_stem

    vol = read_volume(path, max_voxels=MAX_VOXELS)
    arr = np.ascontiguousarray(vol.array, dtype=np.float32)
    if not np.isfinite(arr).all():
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    h = hashlib.sha256(arr.tobytes())
    h.update(np.asarray(vol.affine, np.float64).tobytes())
    sha = h.hexdigest()
    dup = db.scalar(select(Image.id).where(Image.project_id == project.id, Image.sha256 == sha))
    if dup is not None:
        raise SegflowError(f"{Path(path).name}: this volume is already image {dup} of the project")
    root = Path(data_dir) / "volumes" / sha[:2]
    root.mkdir(parents=True, exist_ok=True)
    dst = root / f"{sha}.npy"
    if not dst.exists():
        tmp = root / f".{sha}.tmp{os.getpid()}.npy"
        np.save(tmp, arr)
        os.replace(tmp, dst)
    modality = (vol.modality or "").upper() or None
    level, width = window_level(arr, modality=modality or "MR")
    header = vol.header
    meta = {"shape": list(arr.shape), "affine": np.asarray(vol.affine).tolist(),
            "spacing": list(vol.spacing), "orientation": vol.orientation,
            "modality": modality, "window": [level, width],
            "range": [float(arr.min()), float(arr.max())],
            "sform_code": int(header["sform_code"]) if header is not None and "sform_code" in header else 1,
            "qform_code": int(header["qform_code"]) if header is not None and "qform_code" in header else 1}
    img = Image(project_id=project.id, sha256=sha, ext="vol", filename=volume_stem(path)[:255],
                width=int(arr.shape[0]), height=int(arr.shape[1]))
    db.add(img)
    db.flush()
    db.add(LargeItem(image_id=img.id, kind="volume", path=str(dst), meta=meta))
    t = Task(project_id=project.id, image_id=img.id)
    db.add(t)
    db.commit()
    return {"image_id": img.id, "task_id": t.id, "shape": meta["shape"],
            "spacing": meta["spacing"], "orientation": meta["orientation"]}


def info(item: LargeItem) -> dict:
    from segflow.volume.display import CT_WINDOWS

    m = item.meta
    presets = {"default": m["window"]}
    if m.get("modality") == "CT":
        presets.update({k: list(CT_WINDOWS[k]) for k in ("lung", "soft_tissue", "bone")})
    return {"shape": m["shape"], "spacing": m["spacing"], "orientation": m["orientation"],
            "modality": m.get("modality"), "range": m["range"], "presets": presets,
            "planes": [{"axis": a, "name": AXES[a], "slices": m["shape"][a],
                        "height": plane_shape(m["shape"], a)[0],
                        "width": plane_shape(m["shape"], a)[1],
                        # mm per screen pixel down / across, for a true aspect ratio
                        "spacing": [m["spacing"][[k for k in range(3) if k != a][1]],
                                    m["spacing"][[k for k in range(3) if k != a][0]]]}
                       for a in range(3)]}


# ---- image planes ------------------------------------------------------------------------


def plane_png(item: LargeItem, axis: int, index: int, level: float | None,
              width: float | None) -> bytes:
    from PIL import Image as PILImage

    from segflow.volume.display import apply_window

    shape = item.meta["shape"]
    check_plane(shape, axis, index)
    lv, wd = item.meta["window"]
    if level is not None or width is not None:
        lv, wd = (level if level is not None else lv), (width if width is not None else wd)
    if not (np.isfinite(lv) and np.isfinite(wd) and wd > 0 and abs(lv) < 1e12 and wd < 1e12):
        raise SegflowError(f"window: level and width must be finite numbers with width > 0; "
                           f"got {lv}, {wd}")
    arr = np.load(item.path, mmap_mode="r")
    img = apply_window(take_plane(arr, axis, index), lv, wd)
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(img)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


# ---- label planes ------------------------------------------------------------------------


def label_plane(db: Session, task: Task, item: LargeItem, axis: int, index: int,
                version: int) -> np.ndarray:
    shape = item.meta["shape"]
    check_plane(shape, axis, index)
    ni, nj, nk = shape
    if axis == 2:
        return chunks.read(db, task.id, version, chunk_key(index), (ni, nj)).T[::-1]
    out = np.zeros((ni, nj, nk)[:axis] + (ni, nj, nk)[axis + 1:], np.int32)  # (nj, nk) or (ni, nk)
    rows = chunks.latest(db, task.id, version)
    for key, row in rows.items():
        k = int(key[1:])
        s = chunks.decode(row, (ni, nj))
        out[:, k] = s[index] if axis == 0 else s[:, index]
    return out.T[::-1]


def planes_to_chunks(db: Session, task: Task, item: LargeItem, base_version: int,
                     planes: list[tuple[int, int, np.ndarray]]) -> dict[str, np.ndarray]:
    """The chunks that the edited ``planes`` [(axis, index, displayed labels)] change, applied
    in order onto the labels of ``base_version``."""
    ni, nj, nk = item.meta["shape"]
    need: set[int] = set()
    for axis, index, lab in planes:
        check_plane((ni, nj, nk), axis, index)
        want = plane_shape((ni, nj, nk), axis)
        if lab.shape != want:
            raise SegflowError(f"planes: the {AXES[axis]} plane {index} is {want[1]}x{want[0]}, "
                               f"the labels sent {lab.shape[1]}x{lab.shape[0]}")
        need |= {index} if axis == 2 else set(range(nk))
    cur = chunks.read_many(db, task.id, base_version, {chunk_key(k): (ni, nj) for k in sorted(need)})
    for axis, index, lab in planes:
        s = lab[::-1].T  # back to array order
        if axis == 2:
            cur[chunk_key(index)] = s.copy()
        else:
            for k in range(nk):
                if axis == 0:
                    cur[chunk_key(k)][index, :] = s[:, k]
                else:
                    cur[chunk_key(k)][:, index] = s[:, k]
    return cur


def export_nifti(db: Session, task: Task, item: LargeItem, version: int, path: Path,
                 segments: list[dict], *, by: str = "class") -> Path:
    """The labels of ``version`` as a NIfTI with the scan's affine: class ids (``by="class"``)
    or segment ids (``"segment"``), assembled slice by slice in the file's dtype (uint8 or
    uint16), never as an int32 copy of the volume."""
    from segflow.volume.io import Volume, write_mask_volume

    lut = {s["id"]: (s["category_id"] if by == "class" else s["id"]) for s in segments}
    hi = max(lut.values(), default=0)
    if hi > 65535:
        raise SegflowError(f"export: {by} ids up to {hi} do not fit a NIfTI mask (0..65535); "
                           "export class ids")
    m = item.meta
    ni, nj, nk = m["shape"]
    out = np.zeros((ni, nj, nk), np.uint8 if hi <= 255 else np.uint16)
    for key, row in chunks.latest(db, task.id, version).items():
        ids = chunks.decode(row, (ni, nj))
        table = np.zeros(int(ids.max()) + 1, out.dtype)
        for sid, v in lut.items():
            if sid < table.size:
                table[sid] = v
        out[:, :, int(key[1:])] = table[ids]
    like = Volume(np.broadcast_to(np.zeros((), np.uint8), (ni, nj, nk)), np.asarray(m["affine"]),
                  header={"sform_code": m.get("sform_code", 1), "qform_code": m.get("qform_code", 1)})
    return write_mask_volume(path, out, like)


# ---- interpolation -----------------------------------------------------------------------


def _sdf(mask: np.ndarray) -> np.ndarray:
    """Signed distance: negative inside ``mask``, positive outside (pixels)."""
    from scipy import ndimage as ndi

    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    inside = ndi.distance_transform_edt(mask)
    outside = ndi.distance_transform_edt(~mask)
    return (outside - inside).astype(np.float32)


def interpolate(a: np.ndarray, b: np.ndarray, steps: int) -> list[np.ndarray]:
    """Shape-based interpolation between two labelled planes: for each segment id on both,
    the signed distance maps are blended linearly, and a pixel takes the id whose blend is
    most inside (< 0). Returns the ``steps - 1`` planes strictly between ``a`` and ``b``."""
    ids = sorted((set(np.unique(a).tolist()) & set(np.unique(b).tolist())) - {0})
    out = [np.zeros(a.shape, np.int32) for _ in range(steps - 1)]
    if not ids:
        return out
    da = [_sdf(a == i) for i in ids]
    db = [_sdf(b == i) for i in ids]
    for s in range(1, steps):
        t = s / steps
        best = np.full(a.shape, 0.0, np.float32)
        for i, x, y in zip(ids, da, db):
            v = (1 - t) * x + t * y
            sel = v < best
            out[s - 1][sel] = i
            best[sel] = v[sel]
    return out
