"""COCO instances: one JSON with images, categories and per-object annotations; masks as RLE
(written) or polygons/RLE (read), through pycocotools.

    DIR/images/SPLIT/NAME.png
    DIR/annotations/instances_SPLIT.json      (the layout COCO, datumaro and detectron2 use)
"""

from __future__ import annotations

from pathlib import Path

from pycocotools import mask as mask_utils

from segflow.annotations import Instance, Instances, LabelSchema
from segflow.errors import SegflowError
from segflow.formats.base import (
    Dataset,
    Item,
    read_json,
    require_keys,
    schema_from_categories,
    write_json,
)
from segflow.io import write_image


def to_coco_dict(schema: LabelSchema, items) -> dict:
    """``items``: iterable of (name, height, width, Instances) -> a COCO instances dict."""
    images, anns = [], []
    for k, (name, h, w, inst) in enumerate(items):
        images.append({"id": k + 1, "file_name": f"{name}.png", "height": h, "width": w})
        for it in inst.items:
            ann = {"id": len(anns) + 1, "image_id": k + 1, "category_id": it.category_id,
                   "segmentation": it.rle, "area": it.area, "bbox": it.bbox,
                   "iscrowd": int(it.iscrowd)}
            if it.score is not None:
                ann["score"] = it.score
            anns.append(ann)
    cats = [{"id": c.id, "name": c.name, "isthing": int(c.isthing), "color": list(c.color)}
            for c in schema.classes if c.isthing]
    return {"images": images, "annotations": anns, "categories": cats}


def write(root: Path, schema: LabelSchema, items, *, split: str = "default") -> None:
    """``items``: iterable of (name, image or None, Instances)."""
    root = Path(root)
    rows = []
    for name, image, inst in items:
        if image is not None:
            write_image(root / "images" / split / f"{name}.png", image)
        rows.append((name, inst.height, inst.width, inst))
    write_json(root / "annotations" / f"instances_{split}.json", to_coco_dict(schema, rows))


def find_json(root: Path, prefix: str) -> tuple[Path, str]:
    """``annotations/<prefix>_<split>.json`` (exactly one) and its split name."""
    found = sorted((root / "annotations").glob(f"{prefix}*.json"))
    if not found:
        raise SegflowError(f"{root}: no annotations/{prefix}_<split>.json; is this a COCO dataset?")
    if len(found) > 1:
        raise SegflowError(f"{root}: several {prefix} files ({', '.join(p.name for p in found)}); "
                           "point at a folder with one split")
    split = found[0].stem[len(prefix):].lstrip("_")
    return found[0], split


def image_path(root: Path, split: str, file_name: str) -> Path | None:
    for p in (root / "images" / split / file_name, root / "images" / file_name):
        if p.is_file():
            return p
    return None


def segmentation_to_rle(seg, h: int, w: int, where: str) -> dict:
    """A COCO ``segmentation`` (polygons, uncompressed or compressed RLE) -> compressed RLE."""
    if isinstance(seg, list):
        if not seg or any(len(p) < 6 or len(p) % 2 for p in seg):
            raise SegflowError(f"{where}: a polygon needs at least 3 points (6 numbers)")
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    elif isinstance(seg, dict) and "counts" in seg and "size" in seg:
        if list(seg["size"]) != [h, w]:
            raise SegflowError(f"{where}: RLE size {seg['size']} differs from the image {h}x{w}")
        try:
            rle = (mask_utils.frPyObjects(seg, h, w) if isinstance(seg["counts"], list)
                   else {"size": seg["size"], "counts": seg["counts"].encode("ascii")
                         if isinstance(seg["counts"], str) else seg["counts"]})
            mask_utils.area(rle)
            m = mask_utils.decode(rle)
        except Exception as e:  # pycocotools raises plain Exceptions on bad counts
            raise SegflowError(f"{where}: RLE does not decode ({e})") from None
        if m.shape[:2] != (h, w):
            raise SegflowError(f"{where}: RLE decodes to {m.shape[1]}x{m.shape[0]}, not {w}x{h}")
    else:
        raise SegflowError(f"{where}: segmentation must be polygons or an RLE dict")
    rle["counts"] = rle["counts"].decode("ascii") if isinstance(rle["counts"], bytes) \
        else rle["counts"]
    return rle


def read(root: Path) -> Dataset:
    root = Path(root)
    jpath, split = find_json(root, "instances")
    data = read_json(jpath, "COCO instances annotations")
    require_keys(data, ("images", "annotations", "categories"), jpath, "COCO instances")
    schema = schema_from_categories(data["categories"], str(jpath))
    known = set(schema.ids)
    by_img: dict[int, list] = {im["id"]: [] for im in data["images"]}
    for k, a in enumerate(data["annotations"]):
        if a.get("image_id") not in by_img:
            raise SegflowError(f"{jpath}: annotation {k} has unknown image_id {a.get('image_id')}")
        if a.get("category_id") not in known:
            raise SegflowError(f"{jpath}: annotation {k} has unknown category_id "
                               f"{a.get('category_id')}; known: {sorted(known)}")
        by_img[a["image_id"]].append((k, a))
    images = data["images"]
    names = [Path(im["file_name"]).stem for im in images]

    def load(i: int) -> Item:
        im = images[i]
        h, w = int(im["height"]), int(im["width"])
        inst = Instances(h, w)
        for k, a in by_img[im["id"]]:
            rle = segmentation_to_rle(a.get("segmentation"), h, w, f"{jpath}: annotation {k}")
            inst.items.append(Instance(rle, int(a["category_id"]), id=int(a.get("id", k + 1)),
                                       score=a.get("score"), iscrowd=bool(a.get("iscrowd", 0)),
                                       bbox=[float(v) for v in mask_utils.toBbox(
                                           {"size": rle["size"],
                                            "counts": rle["counts"].encode("ascii")})]))
        return Item(names[i], image_path(root, split, im["file_name"]), h, w, instances=inst)

    return Dataset(names, load, schema, kind="instances", root=root)

