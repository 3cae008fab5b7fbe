"""Pipelines on volumes: the steps that make sense in 3-D, run with the volume's spacing.

A pipeline file is the same as for images (:mod:`segflow.pipeline.spec`); the steps below run
on the whole volume at once. Sizes given in pixels for images are read as in-plane voxels and
turned into millimetres with the smallest voxel side, so a ball stays round in space on an
anisotropic grid:

* ``blur`` (gaussian): sigma in in-plane voxels, scaled per axis by the spacing
* ``threshold``: otsu, li, yen, triangle or fixed over the whole volume's histogram
* ``open`` / ``close``: a ball of ``radius`` in-plane voxels (:func:`segflow.volume.ops.ellipsoid`)
* ``fill_holes``: cavities not connected to the border
* ``remove_small_objects``: ``min_size`` voxels, as mm^3
* ``label``: 3-D components, connectivity 4 -> 6 and 8 -> 26
* ``regions``: voxels, mm^3, box, centroid in world mm and mean intensity per object
* ``apply_mask``, ``grayscale`` (a volume is grey already) and ``draw`` (no overlay in 3-D)

Any other step is refused before the volume is read, with the steps named.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from segflow.errors import ConfigError, SegflowError
from segflow.pipeline.runner import ImageResult
from segflow.pipeline.spec import PipelineSpec
from segflow.volume import ops as vops
from segflow.volume.io import Volume, read_volume, volume_stem, write_volume

VOLUME_STEPS = ("grayscale", "blur", "threshold", "open", "close", "fill_holes",
                "remove_small_objects", "apply_mask", "label", "regions", "draw")
_THRESHOLDS = vops.THRESHOLDS  # one list, kept in segflow.volume.ops


def check_volume_spec(spec: PipelineSpec) -> None:
    """Refuse, in one line, a pipeline with steps (or methods) that do not run on volumes."""
    bad = [s.name for s in spec.steps if s.name not in VOLUME_STEPS]
    for s in spec.steps:
        if s.name == "threshold" and s.params.method not in _THRESHOLDS:
            bad.append(f"threshold method {s.params.method}")
        if s.name == "blur" and s.params.method != "gaussian":
            bad.append(f"blur method {s.params.method}")
    if bad:
        raise ConfigError(f"{spec.source}: not available for volumes: {', '.join(bad)}; volume "
                          f"steps are {', '.join(VOLUME_STEPS)} (threshold: "
                          f"{', '.join(_THRESHOLDS)}; blur: gaussian)")


class _State:
    def __init__(self, vol: Volume):
        self.vol = vol
        self.image = np.asarray(vol.array, dtype=np.float32)
        self.mask = None
        self.labels = None
        self.regions = None
        self.threshold = None
        self.notes: list[str] = []


def _mm(s: _State, vox: float) -> float:
    return float(vox) * min(s.vol.spacing)


def _need_binary(s: _State, step: str) -> np.ndarray:
    if s.mask is None:
        raise SegflowError(f"{step}: needs a mask; put threshold before it")
    return s.mask


def _run_step(s: _State, name: str, p) -> None:
    sp = s.vol.spacing
    if name in ("grayscale", "draw"):
        return
    if name == "blur":
        from scipy import ndimage

        sig = [p.sigma * min(sp) / d for d in sp]
        s.image = ndimage.gaussian_filter(s.image, sig)
    elif name == "threshold":
        s.mask, s.threshold = vops.threshold_volume(s.image, p.method, value=p.value,
                                                    invert=p.invert)
        s.labels = s.regions = None
    elif name in ("open", "close"):
        fn = vops.open3d if name == "open" else vops.close3d
        s.mask = fn(_need_binary(s, name), _mm(s, p.radius), sp)
        s.labels = s.regions = None
    elif name == "fill_holes":
        s.mask = vops.fill_holes3d(_need_binary(s, name))
        s.labels = s.regions = None
    elif name == "remove_small_objects":
        s.mask = vops.remove_small3d(_need_binary(s, name), p.min_size * float(np.prod(sp)), sp,
                                     connectivity=6 if p.connectivity == 4 else 26)
        s.labels = s.regions = None
    elif name == "apply_mask":
        s.image = np.where(_need_binary(s, name) != 0, s.image, np.float32(p.fill))
    elif name == "label":
        s.labels, _ = vops.label3d(_need_binary(s, name),
                                   connectivity=6 if p.connectivity == 4 else 26)
    elif name == "regions":
        s.regions = vops.regions3d(s.labels, sp, volume=s.vol.array, affine=s.vol.affine)


def run_volume(spec: PipelineSpec, path: str | os.PathLike, out_dir: str | os.PathLike, *,
               stem: str | None = None) -> ImageResult:
    """Run ``spec`` on one volume; writes ``STEM_mask.nii.gz``, ``STEM_instances.nii.gz`` (when
    objects were labelled, ids up to 65535) and ``STEM_regions.json`` under ``out_dir``."""
    check_volume_spec(spec)
    t0 = time.perf_counter()
    path, out_dir = Path(path), Path(out_dir)
    stem = stem or volume_stem(path)
    vol = read_volume(path)
    s = _State(vol)
    for i, step in enumerate(spec.steps, start=1):
        try:
            _run_step(s, step.name, step.params)
        except SegflowError as e:
            raise SegflowError(f"{path}: step {i} ({step.name}): {e}") from None
    outputs: list[Path] = []
    if s.mask is not None:
        outputs.append(write_volume(out_dir / f"{stem}_mask.nii.gz", vol, s.mask))
    n_obj = None
    if s.labels is not None:
        n_obj = int(s.labels.max()) if s.labels.size else 0
        if n_obj > 65535:
            s.notes.append(f"{n_obj} objects exceed 16-bit ids; instances not written")
        else:
            outputs.append(write_volume(out_dir / f"{stem}_instances.nii.gz", vol, s.labels))
    regions = [r.to_dict() for r in s.regions] if s.regions is not None else None
    summary = {"input": str(path), "pipeline": spec.name, "shape": list(vol.array.shape),
               "spacing_mm": list(vol.spacing), "orientation": vol.orientation,
               "threshold": s.threshold, "n_objects": n_obj, "notes": s.notes,
               "mask_volume_mm3": (float((s.mask != 0).sum() * np.prod(vol.spacing))
                                   if s.mask is not None else None),
               "regions": regions or []}
    rpath = out_dir / f"{stem}_regions.json"
    rpath.parent.mkdir(parents=True, exist_ok=True)
    tmp = rpath.with_name(f".{rpath.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, rpath)
    outputs.append(rpath)
    return ImageResult(input=str(path), ok=True, outputs=[str(p) for p in outputs],
                       threshold=s.threshold, regions=regions, n_objects=n_obj, notes=s.notes,
                       seconds=time.perf_counter() - t0)


def run_volumes(spec: PipelineSpec, paths: list[Path], out_dir: str | os.PathLike) -> list[ImageResult]:
    """Run ``spec`` on each volume; one that fails is reported and the others still finish."""
    check_volume_spec(spec)
    results = []
    for p in paths:
        t0 = time.perf_counter()
        try:
            results.append(run_volume(spec, p, out_dir))
        except SegflowError as e:
            msg = str(e)
            results.append(ImageResult(input=str(p), ok=False,
                                       error=msg if str(p) in msg else f"{p}: {msg}",
                                       seconds=time.perf_counter() - t0))
        except MemoryError:
            results.append(ImageResult(input=str(p), ok=False,
                                       error=f"{p}: out of memory; crop or downsample the volume"))
    return results
