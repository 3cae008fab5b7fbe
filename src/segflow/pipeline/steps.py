"""Every pipeline step: its parameters (a Pydantic model) and what it does to the state.

A step reads and writes a :class:`State`. The registry :data:`STEPS` is one plain dict from the
step name to a :class:`StepDef`; the names match the library functions they call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from segflow import ops
from segflow.errors import SegflowError
from segflow.ops.threshold import METHODS as THRESHOLD_NAMES
from segflow.ops.threshold import THRESHOLD_METHODS


@dataclass
class State:
    """What flows between steps for one image.

    ``original`` is the image as read (never changed); ``image`` the working image;
    ``mask`` class ids (binary 0/1 after a threshold); ``labels`` object ids (0 = none);
    ``regions`` measurements of the labelled objects; ``threshold`` the level a threshold chose.
    """

    original: np.ndarray
    image: np.ndarray
    mask: np.ndarray | None = None
    labels: np.ndarray | None = None
    regions: list | None = None
    threshold: float | list[float] | None = None
    binary: bool = True
    notes: list[str] = field(default_factory=list)
    overlay: dict = field(default_factory=dict)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoParams(Params):
    pass


class NormalizeParams(Params):
    method: Literal["minmax", "zscore", "percentile"] = "minmax"
    low: float = Field(1.0, ge=0, le=100)
    high: float = Field(99.0, ge=0, le=100)
    dtype: Literal["float32", "uint8"] = "uint8"


class ClaheParams(Params):
    clip_limit: float = Field(2.0, gt=0)
    tile_grid: int = Field(8, ge=1)


class BlurParams(Params):
    method: Literal["gaussian", "median", "bilateral"] = "gaussian"
    sigma: float = Field(1.0, gt=0)
    ksize: int | None = Field(None, ge=3)
    sigma_color: float = Field(25.0, gt=0)


class ThresholdParams(Params):
    method: Literal[THRESHOLD_NAMES] = "otsu"  # type: ignore[valid-type]  # ops' registry
    value: float | None = None
    classes: int = Field(3, ge=2, le=5)
    block_size: int = Field(35, ge=3)
    offset: float = 0.0
    invert: bool = False


class RadiusParams(Params):
    radius: int = Field(1, ge=1, le=100)


class SmallObjectsParams(Params):
    min_size: int = Field(64, ge=0)
    connectivity: Literal[4, 8] = 8


class LabelParams(Params):
    connectivity: Literal[4, 8] = 8


class MaskParams(Params):
    fill: float = 0


class KMeansParams(Params):
    k: int | Literal["auto"] = 3
    space: Literal["rgb", "lab"] = "rgb"
    spatial_weight: float = Field(0.0, ge=0)
    seed: int = 0
    n_init: int = Field(3, ge=1, le=20)


class WatershedParams(Params):
    min_distance: int = Field(7, ge=1)
    compactness: float = Field(0.0, ge=0)


class SlicParams(Params):
    n_segments: int = Field(200, ge=1)
    compactness: float = Field(10.0, gt=0)
    sigma: float = Field(1.0, ge=0)


class GrabcutParams(Params):
    box: list[int] | None = Field(None, min_length=4, max_length=4)
    margin: float = Field(0.1, ge=0, lt=0.5)
    iterations: int = Field(5, ge=1, le=50)


class DrawParams(Params):
    alpha: float = Field(0.45, ge=0, le=1)
    boxes: bool = True


# ---- step functions -------------------------------------------------------------------


def _gray(state: State) -> np.ndarray:
    if state.image.ndim == 3:
        state.notes.append("converted to grey (BT.601) for thresholding")
        return ops.grayscale(state.image)
    return state.image


def _set_mask(state: State, mask: np.ndarray, binary: bool) -> None:
    state.mask, state.binary = mask, binary
    state.labels, state.regions = None, None


def _grayscale(s: State, p: NoParams) -> None:
    s.image = ops.grayscale(s.image)


def _normalize(s: State, p: NormalizeParams) -> None:
    s.image = ops.normalize(s.image, p.method, low=p.low, high=p.high,
                            dtype="float32" if p.method == "zscore" else p.dtype)


def _clahe(s: State, p: ClaheParams) -> None:
    s.image = ops.clahe(s.image, clip_limit=p.clip_limit, tile_grid=p.tile_grid)


def _blur(s: State, p: BlurParams) -> None:
    s.image = ops.blur(s.image, p.method, sigma=p.sigma, ksize=p.ksize, sigma_color=p.sigma_color)


def _threshold(s: State, p: ThresholdParams) -> None:
    r = ops.threshold(_gray(s), p.method, value=p.value, classes=p.classes,
                      block_size=p.block_size, offset=p.offset, invert=p.invert)
    s.threshold = r.threshold
    _set_mask(s, r.mask, binary=THRESHOLD_METHODS[p.method].binary)


def _binary_mask(s: State, step: str) -> np.ndarray:
    if not s.binary:
        raise SegflowError(f"{step}: needs a binary mask, but the mask has several classes")
    return s.mask


def _open(s: State, p: RadiusParams) -> None:
    _set_mask(s, ops.open(_binary_mask(s, "open"), radius=p.radius), True)


def _close(s: State, p: RadiusParams) -> None:
    _set_mask(s, ops.close(_binary_mask(s, "close"), radius=p.radius), True)


def _fill_holes(s: State, p: NoParams) -> None:
    _set_mask(s, ops.fill_holes(_binary_mask(s, "fill_holes")), True)


def _remove_small(s: State, p: SmallObjectsParams) -> None:
    m = ops.remove_small_objects(_binary_mask(s, "remove_small_objects"), min_size=p.min_size,
                                 connectivity=p.connectivity)
    _set_mask(s, m, True)


def _apply_mask(s: State, p: MaskParams) -> None:
    s.image = ops.apply_mask(s.image, s.mask, fill=p.fill)


def _label(s: State, p: LabelParams) -> None:
    s.labels = ops.label(_binary_mask(s, "label"), connectivity=p.connectivity)
    s.regions = None


def _regions(s: State, p: NoParams) -> None:
    s.regions = ops.regions(s.labels, s.original)


def _kmeans(s: State, p: KMeansParams) -> None:
    from segflow.segment import kmeans

    r = kmeans(s.image, k=None if p.k == "auto" else p.k, space=p.space,
               spatial_weight=p.spatial_weight, seed=p.seed, n_init=p.n_init)
    s.notes.append(f"kmeans: k={r.k}, inertia={r.inertia:.4g}")
    _set_mask(s, r.labels, binary=r.k <= 2)


def _watershed(s: State, p: WatershedParams) -> None:
    from segflow.segment import watershed

    s.labels = watershed(_binary_mask(s, "watershed"), min_distance=p.min_distance,
                         compactness=p.compactness)
    s.regions = None


def _slic(s: State, p: SlicParams) -> None:
    from segflow.segment import slic

    s.labels = slic(s.image, n_segments=p.n_segments, compactness=p.compactness, sigma=p.sigma)
    s.regions = None


def _grabcut(s: State, p: GrabcutParams) -> None:
    from segflow.segment import grabcut

    h, w = s.image.shape[:2]
    box = p.box or [int(w * p.margin), int(h * p.margin), int(w * (1 - 2 * p.margin)),
                    int(h * (1 - 2 * p.margin))]
    _set_mask(s, grabcut(s.image, box, iterations=p.iterations), True)


def _draw(s: State, p: DrawParams) -> None:
    s.overlay = {"alpha": p.alpha, "boxes": p.boxes}


#: What each product is computed from: making one drops those derived from it (a new mask
#: makes the old objects and their regions stale), in validation as in the step functions.
DERIVED = {"mask": ("labels", "regions"), "labels": ("regions",), "regions": ()}


def _always_binary(p: Params) -> bool:
    return True


@dataclass(frozen=True)
class StepDef:
    """A step: parameters, function, what state it needs and what it produces.

    ``binary(params)`` says whether the mask it makes is binary (True), has several classes
    (False) or cannot be known before it runs (None); ``needs_binary``: it works on 0/1 masks.
    Validation (:func:`segflow.pipeline.spec.parse_pipeline`) reads only these fields.
    """

    params: type[Params]
    run: Callable[[State, Params], None]
    needs: tuple[str, ...] = ()
    makes: tuple[str, ...] = ()
    doc: str = ""
    binary: Callable[[Params], bool | None] = _always_binary
    needs_binary: bool = False


def _mask_op(params: type[Params], run, doc: str = "") -> StepDef:
    return StepDef(params, run, needs=("mask",), makes=("mask",), doc=doc, needs_binary=True)


STEPS: dict[str, StepDef] = {
    "grayscale": StepDef(NoParams, _grayscale, doc="RGB to grey (BT.601 luma)"),
    "normalize": StepDef(NormalizeParams, _normalize, doc="min-max, z-score or percentile"),
    "clahe": StepDef(ClaheParams, _clahe, doc="adaptive histogram equalisation"),
    "blur": StepDef(BlurParams, _blur, doc="gaussian, median or bilateral smoothing"),
    "threshold": StepDef(ThresholdParams, _threshold, makes=("mask",),
                         doc=", ".join(THRESHOLD_NAMES),
                         binary=lambda p: p.method != "multi_otsu"),
    "kmeans": StepDef(KMeansParams, _kmeans, makes=("mask",), doc="colour clustering",
                      binary=lambda p: None if p.k == "auto" else p.k <= 2),
    "grabcut": StepDef(GrabcutParams, _grabcut, makes=("mask",), doc="foreground from a box"),
    "open": _mask_op(RadiusParams, _open),
    "close": _mask_op(RadiusParams, _close),
    "fill_holes": _mask_op(NoParams, _fill_holes),
    "remove_small_objects": _mask_op(SmallObjectsParams, _remove_small),
    "apply_mask": StepDef(MaskParams, _apply_mask, needs=("mask",)),
    "label": StepDef(LabelParams, _label, needs=("mask",), makes=("labels",),
                     doc="connected components", needs_binary=True),
    "watershed": StepDef(WatershedParams, _watershed, needs=("mask",), makes=("labels",),
                         doc="split touching objects", needs_binary=True),
    "slic": StepDef(SlicParams, _slic, makes=("labels",), doc="superpixels"),
    "regions": StepDef(NoParams, _regions, needs=("labels",), makes=("regions",),
                       doc="box, area, centroid, mean intensity per object"),
    "draw": StepDef(DrawParams, _draw, doc="overlay options"),
}

#: The steps that can produce what a step needs, for error messages.
PRODUCERS = {
    kind: sorted(n for n, d in STEPS.items() if kind in d.makes and kind not in d.needs)
    for kind in DERIVED
}
