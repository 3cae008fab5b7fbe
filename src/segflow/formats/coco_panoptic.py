"""COCO panoptic: PNGs whose RGB encodes the segment id (id = R + 256 G + 256^2 B) plus one
JSON with images, per-image ``segments_info`` and categories.

    DIR/images/SPLIT/NAME.png
    DIR/annotations/panoptic_SPLIT/NAME.png
    DIR/annotations/panoptic_SPLIT.json       (the layout COCO and datumaro use)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segflow.annotations import LabelSchema, Panoptic, Segment
from segflow.errors import SegflowError
from segflow.formats.base import (
    Dataset,
    Item,
    read_json,
    require_keys,
    schema_from_categories,
    write_json,
)
from segflow.io import read_image, write_image


def id2rgb(ids: np.ndarray) -> np.ndarray:
    ids = ids.astype(np.uint32)
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], -1).astype(np.uint8)


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def _bbox(m: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(m)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def write(root: Path, schema: LabelSchema, items, *, split: str = "default") -> None:
    """``items``: iterable of (name, image or None, Panoptic)."""
    root = Path(root)
    images, anns = [], []
    for k, (name, image, pan) in enumerate(items):
        h, w = pan.seg_ids.shape
        if image is not None:
            write_image(root / "images" / split / f"{name}.png", image)
        write_image(root / "annotations" / f"panoptic_{split}" / f"{name}.png",
                    id2rgb(pan.seg_ids))
        areas = pan.areas()
        infos = [{"id": s.id, "category_id": s.category_id, "iscrowd": int(s.iscrowd),
                  "area": areas.get(s.id, 0), "bbox": _bbox(pan.seg_ids == s.id)}
                 for s in pan.segments if areas.get(s.id, 0) > 0]
        images.append({"id": k + 1, "file_name": f"{name}.png", "height": h, "width": w})
        anns.append({"image_id": k + 1, "file_name": f"{name}.png", "segments_info": infos})
    cats = [{"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color)}
            for c in schema.classes]
    write_json(root / "annotations" / f"panoptic_{split}.json",
               {"images": images, "annotations": anns, "categories": cats})


def read(root: Path) -> Dataset:
    root = Path(root)
    from segflow.formats.coco import find_json, image_path

    jpath, split = find_json(root, "panoptic")
    data = read_json(jpath, "COCO panoptic annotations")
    require_keys(data, ("images", "annotations", "categories"), jpath, "COCO panoptic")
    schema = schema_from_categories(data["categories"], str(jpath))
    cats = {c.id: c for c in schema.classes}
    imgs = {im["id"]: im for im in data["images"]}
    anns = data["annotations"]
    names = [Path(a["file_name"]).stem for a in anns]

    def load(i: int) -> Item:
        a = anns[i]
        im = imgs.get(a["image_id"])
        if im is None:
            raise SegflowError(f"{jpath}: annotation {i} refers to unknown image_id {a['image_id']}")
        png = root / "annotations" / f"panoptic_{split}" / a["file_name"]
        ids = rgb2id(read_image(png))
        if ids.shape != (im["height"], im["width"]):
            raise SegflowError(f"{png}: is {ids.shape[1]}x{ids.shape[0]}, the JSON says "
                               f"{im['width']}x{im['height']}")
        segs = []
        for k, s in enumerate(a["segments_info"]):
            c = cats.get(s.get("category_id"))
            if c is None:
                raise SegflowError(f"{jpath}: image {a['file_name']}, segment {k}: unknown "
                                   f"category_id {s.get('category_id')}")
            segs.append(Segment(int(s["id"]), c.id, c.isthing, 0, bool(s.get("iscrowd", 0))))
        known = {s.id for s in segs}
        stray = set(np.unique(ids).tolist()) - known - {0}
        if stray:
            raise SegflowError(f"{png}: segment ids {sorted(stray)[:5]} are not in the JSON's "
                               "segments_info")
        pan = Panoptic(ids, segs)
        return Item(names[i], image_path(root, split, im["file_name"]), ids.shape[0], ids.shape[1],
                    pan.to_semantic(schema.ignore_index), pan, pan.to_instances())

    return Dataset(names, load, schema, kind="panoptic", root=root)
