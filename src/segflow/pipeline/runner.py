"""Running a pipeline over files and folders, in parallel, with a progress bar.

Per image ``<stem>`` it writes, under the output folder (mirroring the input's sub-folders):

* ``<stem>_mask.png``      class ids as an indexed PNG with a palette (when a mask was made)
* ``<stem>_instances.png`` object ids as a 16-bit PNG (when objects were labelled)
* ``<stem>_regions.json``  threshold, notes and regions (label, bbox [x, y, w, h], area, centroid)
* ``<stem>_overlay.png``   the mask/objects and boxes over the image, for people
* ``<stem>_steps/NN_step.png`` every intermediate, with ``save_steps``

An image that fails is reported with its reason; the others still finish. Every file is written
atomically (temporary file, then rename), so an interrupted run never leaves half a file.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from segflow.atomic import atomic_write_json
from segflow.errors import SegflowError
from segflow.io import get_max_pixels, list_images, read_image, write_ids, write_image, write_mask
from segflow.ops.draw import draw_overlay, to_display_rgb
from segflow.pipeline.spec import PipelineSpec
from segflow.pipeline.steps import STEPS, State


@dataclass
class ImageResult:
    """What one image produced (or why it failed)."""

    input: str
    ok: bool
    outputs: list[str] = field(default_factory=list)
    threshold: float | list[float] | None = None
    regions: list[dict] | None = None
    n_objects: int | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunReport:
    pipeline: str
    results: list[ImageResult]

    @property
    def failures(self) -> list[ImageResult]:
        return [r for r in self.results if not r.ok]

    def to_dict(self) -> dict:
        return {
            "pipeline": self.pipeline,
            "images": len(self.results),
            "failed": len(self.failures),
            "results": [r.to_dict() for r in self.results],
        }


def _save_step(image_dir: Path, i: int, name: str, state: State) -> Path:
    """Save what step ``name`` made (by its ``makes``): object ids, a mask, else the image."""
    p = image_dir / f"{i:02d}_{name}.png"
    makes = STEPS[name].makes
    if "labels" in makes and state.labels is not None:
        write_ids(p, state.labels.astype(np.uint16) if state.labels.max() <= 65535 else state.labels)
    elif "mask" in makes and state.mask is not None:
        write_mask(p, state.mask)
    else:
        write_image(p, to_display_rgb(state.image))
    return p


def apply_pipeline(spec: PipelineSpec, image: np.ndarray, *, where: str = "<image>",
                   after_step=None) -> State:
    """Run ``spec``'s steps on an image in memory; the final ``State`` holds mask, labels and
    regions. ``after_step(i, name, state)`` is called after each step."""
    state = State(original=image, image=image)
    for i, step in enumerate(spec.steps, start=1):
        try:
            STEPS[step.name].run(state, step.params)
        except SegflowError as e:
            raise SegflowError(f"{where}: step {i} ({step.name}): {e}") from None
        if after_step is not None:
            after_step(i, step.name, state)
    return state


def run_image(
    spec: PipelineSpec,
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    stem: str | None = None,
    save_steps: bool = False,
    overlay: bool = True,
    image: np.ndarray | None = None,
    max_pixels: int | None = None,
    source: str | None = None,
) -> ImageResult:
    """Run ``spec`` on one image and write its outputs. Raises ``SegflowError`` on bad input.
    ``max_pixels``: the pixel cap (default :func:`segflow.io.get_max_pixels`); ``source``: the
    name to report as the input (a URL, when ``path`` is its local copy)."""
    t0 = time.perf_counter()
    path = Path(path)
    out_dir = Path(out_dir)
    stem = stem or path.stem
    if image is None:
        from segflow.geo import wants_geo

        if wants_geo(path):  # GeoTIFF, or a TIFF over the pixel cap: read by rasterio
            from segflow.geo.run import run_raster

            return run_raster(spec, path, out_dir, stem=stem, overlay=overlay, save_steps=save_steps)
    img = read_image(path, max_pixels=max_pixels) if image is None else image
    outputs: list[Path] = []

    def saved(i: int, name: str, state: State) -> None:
        outputs.append(_save_step(out_dir / f"{stem}_steps", i, name, state))

    state = apply_pipeline(spec, img, where=str(path), after_step=saved if save_steps else None)
    state.image = None  # the working image is done with: free it before writing outputs
    if state.mask is not None:
        outputs.append(write_mask(out_dir / f"{stem}_mask.png", state.mask))
    if state.labels is not None:
        ids = state.labels
        if ids.max() > 65535:
            state.notes.append(f"{int(ids.max())} objects exceed 16-bit ids; instances not written")
        else:
            outputs.append(write_ids(out_dir / f"{stem}_instances.png", ids))
    regions = [r.to_dict() for r in state.regions] if state.regions is not None else None
    if overlay:
        boxes = [r["bbox"] for r in regions] if regions and state.overlay.get("boxes", True) else None
        over = _overlay(state, boxes)
        outputs.append(write_image(out_dir / f"{stem}_overlay.png", over))
        del over
    n_obj = int(state.labels.max()) if state.labels is not None else None
    summary = {
        "input": source or str(path),
        "pipeline": spec.name,
        "size": [int(img.shape[1]), int(img.shape[0])],
        "threshold": state.threshold,
        "n_objects": n_obj,
        "notes": state.notes,
        "regions": regions or [],
    }
    rpath = atomic_write_json(out_dir / f"{stem}_regions.json", summary, indent=1)
    outputs.append(rpath)
    return ImageResult(
        input=source or str(path), ok=True, outputs=[str(p) for p in outputs], threshold=state.threshold,
        regions=regions, n_objects=n_obj, notes=state.notes, seconds=time.perf_counter() - t0,
    )


#: Overlays of images larger than this are written at reduced size (a preview for people; the
#: masks keep full resolution). 16 MP keeps a 100 MP run well under 8 bytes per pixel.
OVERLAY_MAX_PIXELS = 16_000_000


def _overlay(state: State, boxes) -> np.ndarray:
    import cv2

    img, mask, labels = state.original, state.mask, state.labels
    h, w = img.shape[:2]
    scale = min(1.0, (OVERLAY_MAX_PIXELS / (h * w)) ** 0.5)
    if scale < 1.0:
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        if labels is not None:
            labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
        elif mask is not None:
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST)
        if boxes:
            boxes = [[int(round(v * scale)) for v in b] for b in boxes]
        state.notes.append(f"overlay written at {scale:.2f} of full size (preview)")
    return draw_overlay(img, None if labels is not None else mask, labels=labels, boxes=boxes,
                        alpha=state.overlay.get("alpha", 0.5))


def _safe_run(spec, path, out_dir, stem, save_steps, overlay, max_pixels,
              source: str | None = None) -> ImageResult:
    """One image, its failure reported instead of raised; ``path`` and ``out_dir`` may be URLs
    (the image is fetched to, and its outputs written from, a temporary folder)."""
    from segflow.remote import is_url

    if is_url(path) or is_url(out_dir):
        return _staged_run(spec, path, out_dir, stem, save_steps, overlay, max_pixels)
    t0 = time.perf_counter()
    try:
        return run_image(spec, path, out_dir, stem=stem, save_steps=save_steps, overlay=overlay,
                         max_pixels=max_pixels, source=source)
    except SegflowError as e:
        msg = str(e)
        return ImageResult(input=str(path), ok=False, error=msg if str(path) in msg else f"{path}: {msg}",
                           seconds=time.perf_counter() - t0)
    except MemoryError:
        return ImageResult(input=str(path), ok=False,
                           error=f"{path}: out of memory; lower --workers or the image size")
    except Exception as e:  # a bug, not a user mistake: still finish the other images
        return ImageResult(input=str(path), ok=False,
                           error=f"{path}: internal error {type(e).__name__}: {e}",
                           seconds=time.perf_counter() - t0)


def _staged_run(spec, src, out, stem, save_steps, overlay, max_pixels) -> ImageResult:
    from segflow.remote import Stage

    t0 = time.perf_counter()
    try:
        with Stage(src, out) as st:
            r = _safe_run(spec, st.src, st.out, stem, save_steps, overlay, max_pixels,
                          source=str(src))
            if not r.ok:
                r.input, r.error = str(src), (r.error or "").replace(str(st.src), str(src))
                return r
            r.outputs = st.publish(r.outputs)
    except SegflowError as e:  # fetching or uploading failed
        return ImageResult(input=str(src), ok=False, error=str(e))
    r.seconds = time.perf_counter() - t0
    return r


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)  # one process per core; no thread oversubscription


def _stems(paths: Sequence[Path | str], inputs: Sequence[str | os.PathLike]) -> list[str]:
    """Output stems that mirror sub-folders of the inputs (folders or URL prefixes) and never
    collide."""
    from segflow.remote import is_url, relative

    roots = [Path(i) for i in inputs if not is_url(i) and Path(i).is_dir()]
    prefixes = [str(i) for i in inputs if is_url(i)]
    stems, seen = [], set()
    for p in paths:
        rel = None
        if isinstance(p, str):  # a URL
            for r in prefixes:
                if (q := relative(p, r)) is not None:
                    rel = Path(q).with_suffix("")
                    break
            p = Path(p.rsplit("/", 1)[-1])
        for r in roots if rel is None else ():
            try:
                rel = p.relative_to(r).with_suffix("")
                break
            except ValueError:
                continue
        s = rel.as_posix() if rel is not None else p.stem
        base, n = s, 1
        while s in seen:
            n += 1
            s = f"{base}_{n}"
        seen.add(s)
        stems.append(s)
    return stems


def _crashed(paths):
    def crashed(i: int, e: BaseException) -> ImageResult:
        return ImageResult(input=str(paths[i]), ok=False,
                           error=f"{paths[i]}: worker failed ({type(e).__name__}: {e})")
    return crashed


def list_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path | str]:
    """Image files of local files and folders (as Paths) and of URLs (as URL strings)."""
    from segflow.io import IMAGE_EXTENSIONS
    from segflow.remote import is_url, local
    from segflow.remote import list_images as list_remote

    out: list[Path | str] = []
    for i in inputs:
        out.extend(list_remote(str(i), IMAGE_EXTENSIONS) if is_url(i) else list_images([local(i)]))
    return out


def run_pipeline(
    spec: PipelineSpec,
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    workers: int = 1,
    save_steps: bool = False,
    overlay: bool = True,
    progress: bool = True,
    on_result: Callable[[ImageResult], None] | None = None,
    max_pixels: int | None = None,
    engine=None,
) -> RunReport:
    """Run a pipeline over images and folders (recursively), local or URLs (``s3://...``).

    ``workers > 1`` runs images in that many processes; ``engine`` (a
    :func:`segflow.engines.get_engine`, e.g. Ray) runs them elsewhere instead, with the same
    outputs. Returns every image's result; failed images carry an ``error`` and never stop the
    others. A ``run.json`` summary is written last, so an output folder without one is
    unfinished. ``max_pixels`` (default :func:`segflow.io.get_max_pixels`, resolved here) is
    handed to every worker explicitly: a worker does not inherit this process's ``pixel_limit``.
    """
    from segflow import remote
    from segflow.engines.local import LocalEngine

    max_pixels = get_max_pixels(max_pixels)
    paths = list_inputs(inputs)
    if not paths:
        raise SegflowError(f"no images found in {', '.join(map(str, inputs))}")
    out: Path | str = remote.as_path_or_url(out_dir)
    if isinstance(out, str):
        remote.check_writable(out)
    else:
        out.mkdir(parents=True, exist_ok=True)
    stems = _stems(paths, inputs)
    results: list[ImageResult | None] = [None] * len(paths)
    engine = engine or LocalEngine(max(1, min(int(workers), len(paths))))

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(spec.name, total=len(paths))

        def done(i: int, r: ImageResult) -> None:
            results[i] = r
            bar.advance(task)
            if on_result:
                on_result(r)

        items = [(spec, p, out, s, save_steps, overlay, max_pixels) for p, s in zip(paths, stems)]
        engine.map(_safe_run, items, done, _crashed(paths), init=_worker_init)
    report = RunReport(spec.name, [r for r in results if r is not None])
    if isinstance(out, str):
        import json

        remote.write_bytes(remote.join(out, "run.json"),
                           json.dumps(report.to_dict(), indent=1).encode())
    else:
        atomic_write_json(out / "run.json", report.to_dict(), indent=1)
    return report
