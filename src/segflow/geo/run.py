"""A pipeline over a GeoTIFF: the mask written as a GeoTIFF with the source's georeferencing.

Two ways, one result:

* **whole**: a raster within the pixel cap is read at once and every step runs, as for a PNG
  (objects, regions and overlay too);
* **windowed**: a larger raster streams through windows read with a halo (the summed radii of
  the neighbourhood steps) and the mask is written window by window into a tiled GeoTIFF, so
  memory stays bounded by the window size. A global threshold (Otsu, Yen, multi-Otsu) needs one
  statistic of the whole raster: a first pass sums the 256-bin histogram over the windows, the
  level is computed from it (:mod:`segflow.geo.levels`), and the second pass applies it, so the
  windowed mask equals the whole-raster one.

Nodata is never data: it is left out of threshold statistics and written as 255 (ignore) in the
mask, 0 in the object ids. Steps that need every pixel at once (k-means, filling holes, labels
across the raster...) run only in the whole mode; ``label`` and ``regions`` are skipped in the
windowed mode with a note (``segflow vectorize`` gives the objects as polygons).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from segflow.errors import SegflowError
from segflow.geo.levels import STREAMED, level_from_hist
from segflow.geo.raster import IGNORE, GeoRaster, MaskWriter, gdal_env, write_georeferenced
from segflow.geo.windows import grid
from segflow.ops._checks import odd_ksize
from segflow.pipeline.spec import PipelineSpec
from segflow.pipeline.steps import STEPS, State, _gray, _set_mask

#: Window core size of windowed runs (a multiple of the output's 512-pixel blocks).
WINDOW = 2048

#: Steps a windowed run skips (they describe objects; ``segflow vectorize`` gives those).
SKIPPED = ("label", "regions")


def _halo(step) -> int | None:
    """How far a step looks around a pixel, or None when it needs the whole raster."""
    name, p = step.name, step.params
    if name in ("grayscale", "apply_mask", "draw"):
        return 0
    if name == "blur":
        k = p.ksize or (3 if p.method == "median" else odd_ksize(p.sigma))
        return k // 2
    if name == "threshold":
        if p.method == "fixed" or p.method in STREAMED:
            return 0
        if p.method.startswith("adaptive"):
            return p.block_size  # OpenCV needs block/2; scikit-image's gaussian up to 2/3 block
        return None
    if name in ("open", "close"):
        return 2 * p.radius + 1
    return None


def _is_level(step) -> bool:
    return step.name == "threshold" and step.params.method in STREAMED + ("triangle", "li")


def _apply_level(state: State, gray: np.ndarray, p, level) -> None:
    from segflow import ops

    state.threshold = level
    if p.method == "multi_otsu":
        mask = np.digitize(gray, bins=np.asarray(level), right=True).astype(np.uint8)
        _set_mask(state, mask, False)
    else:
        _set_mask(state, ops.threshold(gray, "fixed", value=level, invert=p.invert).mask, True)


def apply_steps(spec: PipelineSpec, image: np.ndarray, valid: np.ndarray | None,
                levels: dict[int, object], *, windowed: bool, stop_at: int | None = None,
                where: str = "<raster>"):
    """Run ``spec`` on one window (or the whole raster).

    A global threshold whose level is in ``levels`` (by step number) applies it; otherwise the
    level is computed here from the valid pixels (whole mode). With ``stop_at``, returns the grey
    image that step ``stop_at`` would threshold (for the histogram pass); else the final State.
    """
    from segflow.ops.threshold import threshold_value

    state = State(original=image, image=image)
    for i, step in enumerate(spec.steps, start=1):
        try:
            if _is_level(step):
                gray = _gray(state)
                if stop_at == i:
                    return gray
                if i not in levels:
                    vals = gray if valid is None else gray[valid][None, :]
                    levels[i] = (threshold_value(vals, step.params.method, classes=step.params.classes)
                                 if vals.size else 0.0)
                _apply_level(state, gray, step.params, levels[i])
            elif windowed and step.name in SKIPPED:
                continue
            else:
                STEPS[step.name].run(state, step.params)
        except SegflowError as e:
            raise SegflowError(f"{where}: step {i} ({step.name}): {e}") from None
    return state


def check_windowed(spec: PipelineSpec, raster: GeoRaster) -> int:
    """The halo a windowed run of ``spec`` needs; one line naming any step it cannot run."""
    halo = 0
    for i, step in enumerate(spec.steps, start=1):
        if step.name in SKIPPED:
            continue
        h = _halo(step)
        if h is None:
            what = f"{step.name} {step.params.method}" if step.name == "threshold" else step.name
            raise SegflowError(
                f"{raster.path}: step {i} ({what}) needs the whole raster at once, and "
                f"{raster.width}x{raster.height} is over the pixel cap, so it is read by windows; "
                "windowed runs take grayscale, blur, threshold (fixed, otsu, yen, multi_otsu, "
                "adaptive), open, close, apply_mask (or raise --max-pixels if it fits in memory)")
        halo += h
    return halo


def _notes(notes: list[str]) -> list[str]:
    return list(dict.fromkeys(notes))


def run_windowed(spec: PipelineSpec, raster: GeoRaster, out_path: str | os.PathLike, *,
                 window: int = WINDOW) -> tuple[object, list[str]]:
    """Stream ``spec`` over ``raster`` and write the mask GeoTIFF window by window.

    Returns (threshold level(s), notes).
    """
    halo = check_windowed(spec, raster)
    wins = grid(raster.height, raster.width, window, halo)
    levels: dict[int, object] = {}
    notes: list[str] = []
    if any(s.name in SKIPPED for s in spec.steps):
        notes.append("label/regions skipped on a raster read by windows; "
                     "use segflow vectorize for the objects")
    for g, step in enumerate(spec.steps, start=1):
        if not _is_level(step):
            continue
        hist = np.zeros(256, np.int64)
        for w in wins:
            img, valid = raster.read(w.read_row, w.read_col, w.read_height, w.read_width,
                                     where=w.describe())
            gray = apply_steps(spec, img, valid, levels, windowed=True, stop_at=g,
                               where=f"{raster.path} {w.describe()}")
            if gray.dtype != np.uint8:
                raise SegflowError(f"{raster.path}: step {g} (threshold {step.params.method}) on a "
                                   f"raster read by windows needs 8-bit grey, got {gray.dtype}")
            core = gray[w.core]
            vals = core if valid is None else core[valid[w.core]]
            hist += np.bincount(vals.ravel(), minlength=256)
        levels[g] = level_from_hist(hist, step.params.method, classes=step.params.classes)
    threshold = None
    with MaskWriter(out_path, raster) as out:
        for w in wins:
            img, valid = raster.read(w.read_row, w.read_col, w.read_height, w.read_width,
                                     where=w.describe())
            state = apply_steps(spec, img, valid, levels, windowed=True,
                                where=f"{raster.path} {w.describe()}")
            notes.extend(state.notes)
            threshold = state.threshold
            if state.mask is None:
                raise SegflowError(f"{spec.source}: the pipeline makes no mask; add a threshold")
            mask = np.ascontiguousarray(state.mask[w.core])
            if valid is not None:
                mask[~valid[w.core]] = IGNORE
            out.write(mask, w.row, w.col)
    notes.append(f"read by {len(wins)} windows of {window} px with a {halo} px halo")
    return threshold, _notes(notes)


def _write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)
    return path


def run_raster(spec: PipelineSpec, path: str | os.PathLike, out_dir: str | os.PathLike, *,
               stem: str | None = None, overlay: bool = True, save_steps: bool = False,
               windowed: bool | None = None, window: int = WINDOW):
    """Run ``spec`` on a GeoTIFF and write ``<stem>_mask.tif`` (and, whole, the instances,
    regions and overlay). ``windowed=None`` streams exactly when the raster is over the pixel
    cap. Returns an :class:`~segflow.pipeline.runner.ImageResult`."""
    from segflow.io import get_max_pixels, write_image
    from segflow.pipeline.runner import ImageResult, _overlay

    t0 = time.perf_counter()
    path, out_dir = Path(path), Path(out_dir)
    stem = stem or path.stem
    outputs: list[Path] = []
    notes: list[str] = []
    regions = None
    n_obj = None
    with gdal_env(), GeoRaster(path, spec.raster) as raster:
        raster.warn_if_no_crs(notes)
        if save_steps:
            notes.append("save_steps: intermediates are not written for GeoTIFF rasters")
        if windowed is None:
            windowed = raster.pixels > get_max_pixels()
        mask_path = out_dir / f"{stem}_mask.tif"
        if windowed:
            threshold, more = run_windowed(spec, raster, mask_path, window=window)
            notes.extend(more)
            outputs.append(mask_path)
        else:
            img, valid = raster.read_all()
            state = apply_steps(spec, img, valid, {}, windowed=False, where=str(path))
            notes.extend(state.notes)
            threshold = state.threshold
            if state.mask is not None:
                if valid is not None:
                    state.mask[~valid] = IGNORE
                outputs.append(write_georeferenced(mask_path, state.mask, raster))
            if state.labels is not None:
                if valid is not None:
                    state.labels[~valid] = 0
                n_obj = int(state.labels.max())
                outputs.append(write_georeferenced(out_dir / f"{stem}_instances.tif",
                                                   state.labels.astype(np.uint32), raster,
                                                   dtype="uint32", nodata=None))
            regions = [r.to_dict() for r in state.regions] if state.regions is not None else None
            if overlay and state.mask is not None:
                boxes = ([r["bbox"] for r in regions] if regions and state.overlay.get("boxes", True)
                         else None)
                outputs.append(write_image(out_dir / f"{stem}_overlay.png", _overlay(state, boxes)))
            notes = _notes(notes + state.notes)
        summary = {"input": str(path), "pipeline": spec.name, "size": [raster.width, raster.height],
                   "georeference": raster.georef(), "windowed": windowed, "threshold": threshold,
                   "n_objects": n_obj, "notes": notes, "regions": regions or []}
    outputs.append(_write_json(out_dir / f"{stem}_regions.json", summary))
    return ImageResult(input=str(path), ok=True, outputs=[str(p) for p in outputs],
                       threshold=threshold, regions=regions, n_objects=n_obj, notes=notes,
                       seconds=time.perf_counter() - t0)
