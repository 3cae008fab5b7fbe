"""CT-like 3-D volumes with exact labels: an organ and its lesions as smooth blobs.

The scene lives in world millimetres, so shapes are round in space even though voxels are not
(thin in-plane, thick slices: an anisotropic grid as in clinical CT). In HU: air -1000 around
a body of soft tissue (~40 HU) with a fat rim, a spine (~450 HU), an organ (~90 HU) and
lesions inside it (darker, ~35-55 HU). A smooth additive shading field (a scanner's bias) and
Gaussian noise make one global threshold imperfect. The labels are the blobs as generated
(0 background, 1 organ, 2 lesion); the image is made from them, so the truth is exact.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from segflow.annotations import LabelSchema
from segflow.errors import SegflowError

SCHEMA = LabelSchema.from_list([
    {"id": 0, "name": "background", "color": [0, 0, 0]},
    {"id": 1, "name": "organ", "color": [180, 60, 60]},
    {"id": 2, "name": "lesion", "color": [250, 230, 40], "isthing": True},
])
ORGAN, LESION = 1, 2
_NOISE = {"easy": 8.0, "medium": 15.0, "hard": 25.0}
_BIAS = {"easy": 15.0, "medium": 35.0, "hard": 60.0}


def _smooth_field(rng, shape, sigma) -> np.ndarray:
    """Zero-mean, unit-std smooth noise made at low resolution and zoomed (cheap)."""
    small = tuple(max(2, int(np.ceil(n / s)) + 2) for n, s in zip(shape, sigma))
    f = ndimage.zoom(rng.standard_normal(small), [n / m for n, m in zip(shape, small)], order=1)
    f = f[tuple(slice(0, n) for n in shape)]
    f -= f.mean()
    return f / (f.std() + 1e-9)


def _blob(coords, centre, radii, rng, wobble: float) -> np.ndarray:
    """A smooth blob: an ellipsoid (mm) whose radius wobbles with a smooth random field.
    Only the blob's bounding box is computed (lesions are small)."""
    shape = tuple(max(c.shape) for c in coords)
    sl = []
    for c, c0, r0 in zip(coords, centre, radii):
        flat = c.ravel()
        inside = np.flatnonzero(np.abs(flat - c0) <= r0 * (1 + 3 * wobble) + 1e-9)
        if inside.size == 0:
            return np.zeros(shape, bool)
        sl.append(slice(int(inside[0]), int(inside[-1]) + 1))
    sl = tuple(sl)
    sub = [c[tuple(s if c.shape[a] > 1 else slice(None) for a, s in enumerate(sl))]
           for c in coords]
    r = np.sqrt(sum(((c - c0) / r0) ** 2 for c, c0, r0 in zip(sub, centre, radii)))
    r = np.broadcast_to(r, tuple(s.stop - s.start for s in sl))
    if wobble:
        r = r + wobble * _smooth_field(rng, r.shape, (8, 8, 4))
    out = np.zeros(shape, bool)
    out[sl] = r < 1.0
    return out


def make_volume(rng: np.random.Generator, *, size: int = 96, difficulty: str = "medium",
                n_lesions: int | None = None):
    """One scan: ``(image float32 HU (I, J, K), labels uint8, affine (4, 4))``."""
    if difficulty not in _NOISE:
        raise SegflowError(f"unknown difficulty {difficulty!r}; use one of {', '.join(_NOISE)}")
    if not 32 <= size <= 512:
        raise SegflowError(f"synth medical3d: --size must be 32..512, got {size}")
    inplane = rng.uniform(0.75, 1.0)
    thick = rng.choice([2.0, 2.5, 3.0])
    nk = max(16, int(round(size * inplane / thick * 1.1)))
    shape = (size, size, nk)
    sp = np.array([inplane, inplane, thick])
    # world coordinates (mm), centred on the volume
    coords = np.ogrid[tuple(slice(0, n) for n in shape)]
    coords = [(c - (n - 1) / 2) * s for c, n, s in zip(coords, shape, sp)]
    ext = np.array(shape) * sp / 2  # half extents in mm
    lab = np.zeros(shape, np.uint8)
    img = np.full(shape, -1000.0, np.float32)
    body_r = (ext[0] * rng.uniform(0.8, 0.9), ext[1] * rng.uniform(0.65, 0.8), ext[2] * 3)
    body = _blob(coords, (0, 0, 0), body_r, rng, 0.03)
    inner = _blob(coords, (0, 0, 0), (body_r[0] - 6, body_r[1] - 6, body_r[2]), rng, 0.03)
    img[body] = -90.0  # fat rim
    img[inner] = 40.0
    spine_c = (0, -body_r[1] * 0.7, 0)
    spine = _blob(coords, spine_c, (9, 9, ext[2] * 3), rng, 0.0)
    img[spine & inner] = 450.0
    oc = (rng.uniform(-0.3, 0.3) * ext[0], rng.uniform(-0.1, 0.25) * ext[1],
          rng.uniform(-0.2, 0.2) * ext[2])
    orad = (ext[0] * rng.uniform(0.3, 0.45), ext[1] * rng.uniform(0.25, 0.35),
            ext[2] * rng.uniform(0.45, 0.65))
    organ = _blob(coords, oc, orad, rng, 0.12) & inner & ~spine
    lab[organ] = ORGAN
    img[organ] = rng.uniform(80, 100)
    n_lesions = int(rng.integers(1, 4)) if n_lesions is None else int(n_lesions)
    if n_lesions < 0:
        raise SegflowError(f"synth medical3d: lesions must be >= 0, got {n_lesions}")
    for _ in range(n_lesions):
        u = rng.uniform(-0.5, 0.5, 3)
        c = tuple(o + r * x for o, r, x in zip(oc, orad, u))
        rr = rng.uniform(4.0, 9.0)
        les = _blob(coords, c, (rr, rr * rng.uniform(0.8, 1.2), rr * rng.uniform(0.8, 1.2)), rng,
                    0.1) & organ
        lab[les] = LESION
        img[les] = rng.uniform(35, 55)
    img = ndimage.gaussian_filter(img, sigma=0.6 / np.maximum(sp / sp.min(), 1))  # partial volume
    img += (_BIAS[difficulty] * _smooth_field(rng, shape, (24, 24, 8))).astype(np.float32)
    img += rng.normal(0, _NOISE[difficulty], shape).astype(np.float32)
    affine = np.diag([-sp[0], -sp[1], sp[2], 1.0])  # LPS-like, as scans read from DICOM
    affine[:3, 3] = [ext[0] - sp[0] / 2, ext[1] - sp[1] / 2, -ext[2] + sp[2] / 2]
    return img.astype(np.float32), lab, affine


def export_volumes(out, *, n: int, seed: int = 0, size: int = 96, difficulty: str = "medium",
                   n_lesions: int | None = None, progress: bool = False) -> list:
    """Write ``n`` scans as ``out/images/NAME.nii.gz`` and ``out/labels/NAME.nii.gz`` (same
    affine), with ``out/schema.json``. Scan ``i`` comes from ``default_rng([seed, 99, i])``."""
    from pathlib import Path

    from rich.progress import Progress

    from segflow.formats.folders import write_schema
    from segflow.volume.io import Volume, write_volume

    if n < 1:
        raise SegflowError(f"-n must be at least 1, got {n}")
    out = Path(out)
    written = []
    with Progress(disable=not progress) as bar:
        task = bar.add_task("synth medical3d", total=n)
        for i in range(n):
            img, lab, aff = make_volume(np.random.default_rng([seed, 99, i]), size=size,
                                        difficulty=difficulty, n_lesions=n_lesions)
            name = f"medical3d_{seed}_{i:05d}"
            like = Volume(img, aff, "CT", name)
            written.append(write_volume(out / "images" / f"{name}.nii.gz", like, mask=False))
            written.append(write_volume(out / "labels" / f"{name}.nii.gz", like, lab, mask=True))
            bar.advance(task)
    write_schema(out, SCHEMA, domain="medical3d", seed=seed, size=size, difficulty=difficulty,
                 kind="volumes")
    return written
