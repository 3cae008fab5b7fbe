"""A labelled dataset's fingerprint: what the planner (:mod:`segflow.train.plan`) chooses from.

Image sizes, channels and dtypes; intensity mean and standard deviation per channel on the
0..1 scale the models see (grey replicated to three channels, as in training); per class the
pixel fraction, the share of images it appears in, where it sits vertically, and its objects'
count, size (square root of the bounding-box area, in pixels) and aspect ratio (height/width).
Objects come from the instance or panoptic labels; with semantic labels only, the connected
components of each thing class stand in for them (touching objects then count as one).

At most ``max_images`` images are read, evenly spaced over the dataset, so the result depends
on the data only (never on a random draw or the time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from segflow.errors import SegflowError
from segflow.formats import Dataset


@dataclass
class ClassStats:
    id: int
    name: str
    isthing: bool
    pixel_fraction: float = 0.0   # of the labelled pixels of the images read
    image_fraction: float = 0.0   # share of the images read in which the class appears
    row_center: float | None = None  # mean vertical position of its pixels, 0 = top, 1 = bottom
    n_objects: int = 0
    size_p5: float | None = None    # object size: sqrt(bbox height * width), pixels
    size_p50: float | None = None
    size_p95: float | None = None
    aspect_p5: float | None = None  # bbox height / width
    aspect_p95: float | None = None


@dataclass
class Fingerprint:
    n_images: int
    n_read: int
    kind: str  # what the labels carry: semantic, instances or panoptic
    objects_from: str  # "instances", "connected components" or "none"
    height: tuple[int, int, int]  # min, median, max
    width: tuple[int, int, int]
    channels: list[int]
    dtypes: list[str]
    mean: list[float]
    std: list[float]
    grey: bool  # every image has one channel, or three equal ones
    ignore_fraction: float
    objects_per_image_p50: float
    objects_per_image_max: int
    classes: list[ClassStats] = field(default_factory=list)

    @property
    def mixed_sizes(self) -> bool:
        return self.height[0] != self.height[2] or self.width[0] != self.width[2]

    @property
    def things(self) -> list[ClassStats]:
        return [c for c in self.classes if c.isthing]

    def object_sizes(self) -> tuple[float, float] | None:
        """(p2, p98) of the object sizes of all thing classes, from the per-class quantiles."""
        lo = [c.size_p5 for c in self.things if c.size_p5 is not None]
        hi = [c.size_p95 for c in self.things if c.size_p95 is not None]
        return (min(lo), max(hi)) if lo else None

    def to_dict(self) -> dict:
        return asdict(self)


def sample_indices(n: int, k: int) -> list[int]:
    """``k`` indices evenly spaced over ``range(n)`` (all of them when ``n <= k``)."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def _objects(item, thing_ids: set[int]):
    """(category, bbox height, bbox width) of the item's objects and where they came from."""
    inst = item.instances
    if inst is None and item.panoptic is not None:
        inst = item.panoptic.to_instances()
    if inst is not None:
        out = []
        for it in inst.items:
            if it.iscrowd or it.category_id not in thing_ids:
                continue
            ys, xs = np.nonzero(it.mask)
            if len(ys):
                out.append((it.category_id, int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)))
        return out, "instances"
    if item.semantic is None or not thing_ids:
        return [], "none"
    import cv2

    out = []
    for c in thing_ids:
        m = (item.semantic.ids == c).astype(np.uint8)
        if not m.any():
            continue
        n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        for s in stats[1:]:
            out.append((c, int(s[cv2.CC_STAT_HEIGHT]), int(s[cv2.CC_STAT_WIDTH])))
    return out, "connected components"


def compute_fingerprint(ds: Dataset, *, max_images: int = 200) -> Fingerprint:
    """Read up to ``max_images`` items of ``ds`` (evenly spaced) and summarise them."""
    from segflow.train.data import to_tensor_image

    schema = ds.schema
    if len(ds) == 0:
        raise SegflowError(f"{ds.root}: the dataset has no images")
    idx = sample_indices(len(ds), max_images)
    n_ids = max([*schema.ids, 0]) + 1
    counts = np.zeros(n_ids, np.int64)
    rowsum = np.zeros(n_ids, np.float64)
    present = np.zeros(n_ids, np.int64)
    ignored = labelled = 0
    hs, ws, chans, dtypes, per_img = [], [], set(), set(), []
    s1 = np.zeros(3)
    s2 = np.zeros(3)
    npx = 0
    grey = True
    things = set(schema.thing_ids)
    objs: dict[int, list[tuple[int, int]]] = {c: [] for c in things}
    source = "none"
    for i in idx:
        item = ds[i]
        if item.image_path is None:
            raise SegflowError(f"{ds.root}: labels without images ({item.name} has no image "
                               "file); put the images beside the labels (images/NAME.png)")
        img = item.image()
        hs.append(img.shape[0])
        ws.append(img.shape[1])
        chans.add(1 if img.ndim == 2 else img.shape[2])
        dtypes.add(str(img.dtype))
        x = to_tensor_image(img[::4, ::4]).numpy().reshape(3, -1).astype(np.float64)
        s1 += x.sum(1)
        s2 += (x * x).sum(1)
        npx += x.shape[1]
        if img.ndim == 3 and img.shape[2] >= 3 and grey:
            grey = bool((img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all())
        if item.semantic is not None:
            ids = item.semantic.ids
            if ids.shape != img.shape[:2]:
                raise SegflowError(f"{ds.root}/{item.name}: the label is {ids.shape[1]}x"
                                   f"{ids.shape[0]} but the image {img.shape[1]}x{img.shape[0]}")
            valid = ids != schema.ignore_index
            ignored += int((~valid).sum())
            v = ids[valid].astype(np.int64)
            v = v[(v >= 0) & (v < n_ids)]
            labelled += v.size
            c = np.bincount(v, minlength=n_ids)
            counts += c
            present += c > 0
            rows = np.broadcast_to(np.arange(ids.shape[0])[:, None] / max(1, ids.shape[0] - 1),
                                   ids.shape)[valid]
            rows = rows[(ids[valid] >= 0) & (ids[valid] < n_ids)]
            rowsum += np.bincount(v, weights=rows, minlength=n_ids)
        o, src = _objects(item, things)
        if src != "none":
            source = src
        per_img.append(len(o))
        for c, h, w in o:
            objs[c].append((h, w))
    mean = s1 / max(npx, 1)
    std = np.sqrt(np.maximum(s2 / max(npx, 1) - mean**2, 0))
    classes = []
    for cls in schema.classes:
        cs = ClassStats(cls.id, cls.name, bool(cls.isthing))
        if cls.id < n_ids and labelled:
            cs.pixel_fraction = float(counts[cls.id] / labelled)
            cs.image_fraction = float(present[cls.id] / len(idx))
            if counts[cls.id]:
                cs.row_center = float(rowsum[cls.id] / counts[cls.id])
        o = np.array(objs.get(cls.id, []), np.float64).reshape(-1, 2)
        if len(o):
            size = np.sqrt(o[:, 0] * o[:, 1])
            asp = o[:, 0] / o[:, 1]
            cs.n_objects = len(o)
            cs.size_p5, cs.size_p50, cs.size_p95 = (float(v) for v in np.percentile(size, [5, 50, 95]))
            cs.aspect_p5, cs.aspect_p95 = (float(v) for v in np.percentile(asp, [5, 95]))
        classes.append(cs)
    total = labelled + ignored
    return Fingerprint(
        n_images=len(ds), n_read=len(idx), kind=ds.kind, objects_from=source,
        height=(min(hs), int(np.median(hs)), max(hs)), width=(min(ws), int(np.median(ws)), max(ws)),
        channels=sorted(chans), dtypes=sorted(dtypes), mean=[round(float(v), 4) for v in mean],
        std=[round(float(v), 4) for v in std], grey=grey and chans <= {1, 3, 4},
        ignore_fraction=float(ignored / total) if total else 0.0,
        objects_per_image_p50=float(np.median(per_img)) if per_img else 0.0,
        objects_per_image_max=int(max(per_img)) if per_img else 0, classes=classes)
