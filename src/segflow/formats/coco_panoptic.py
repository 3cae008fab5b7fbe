"""COCO panoptic: PNGs whose RGB encodes the segment id (id = R + 256 G + 256^2 B) plus one
JSON with images, per-image ``segments_info`` and categories. The PNGs are in the folder named
like the JSON, beside it (panopticapi's rule), wherever the JSON is:

    DIR/annotations/panoptic_SPLIT.json + DIR/annotations/panoptic_SPLIT/NAME.png
    DIR/images/SPLIT/NAME.png (written), or DIR/SPLIT/ (Detectron2), or ``--images DIR``
    any FILE.json + FILE/ beside it   (panopticapi's pq_compute and Detectron2's predictions)
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


def write(root: Path, schema: LabelSchema, samples, *, split: str = "default",
          meta: dict | None = None) -> None:
    """``samples``: iterable of :class:`~segflow.formats.base.Sample` (their panoptic)."""
    root = Path(root)
    images, anns = [], []
    for k, smp in enumerate(samples):
        pan = smp.get_panoptic(schema)
        name = smp.name
        h, w = pan.seg_ids.shape
        if smp.image is not None:
            write_image(root / "images" / split / f"{name}.png", smp.image)
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
    d = {"images": images, "annotations": anns, "categories": cats}
    if meta:
        d["info"] = {"description": "written by segflow", **meta}
    write_json(root / "annotations" / f"panoptic_{split}.json", d)


def read(src: Path, *, images: Path | None = None) -> Dataset:
    """A COCO panoptic dataset: a folder (``annotations/panoptic_*.json``, or one lone JSON at
    its top) or the JSON file itself, with its PNG folder beside it."""
    from segflow.formats.coco import ImageFinder, find_json, image_entry

    src = Path(src)
    jpath, split = find_json(src, "panoptic")
    data = read_json(jpath, "COCO panoptic annotations")
    require_keys(data, ("images", "annotations", "categories"), jpath, "COCO panoptic")
    png_dir = jpath.with_suffix("")
    if not png_dir.is_dir():
        raise SegflowError(f"{jpath}: no folder {png_dir.name}/ of segment PNGs beside it "
                           "(panopticapi keeps them in the folder named like the JSON)")
    schema = schema_from_categories(data["categories"], str(jpath))
    cats = {c.id: c for c in schema.classes}
    imgs = {im.get("id"): im for im in data["images"] if isinstance(im, dict)}
    anns = data["annotations"]
    for k, a in enumerate(anns):
        if not isinstance(a, dict) or "file_name" not in a or "segments_info" not in a:
            raise SegflowError(f"{jpath}: annotation {k} needs file_name and segments_info")
    names = [Path(str(a["file_name"]).replace("\\", "/")).stem for a in anns]
    finder = ImageFinder(jpath, split, images)

    def load(i: int) -> Item:
        a = anns[i]
        im = imgs.get(a.get("image_id"))
        if im is None:
            raise SegflowError(f"{jpath}: annotation {i} refers to unknown image_id "
                               f"{a.get('image_id')}")
        h, w = image_entry(im, i, jpath)
        png = png_dir / str(a["file_name"]).replace("\\", "/")
        ids = rgb2id(read_image(png))
        if ids.shape != (h, w):
            raise SegflowError(f"{png}: is {ids.shape[1]}x{ids.shape[0]}, the JSON says "
                               f"{w}x{h}")
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
        path, why = finder.check(im, f"{jpath.name} (image {i})", names[i])
        return Item(names[i], path, h, w, pan.to_semantic(schema.ignore_index), pan,
                    pan.to_instances(), missing=why)

    return Dataset(names, load, schema, kind="panoptic", root=src)
