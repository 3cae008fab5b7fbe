"""COCO instances: one JSON with images, categories and per-object annotations; masks as RLE
(written) or polygons/RLE (read), through pycocotools.

Read from any of the layouts the tools write (``--images DIR`` overrides where images are):

    DIR/annotations/instances_SPLIT.json + DIR/images/SPLIT/ or DIR/images/   (COCO, datumaro,
                                                        CVAT "COCO 1.0": instances_default.json)
    DIR/annotations/instances_SPLIT.json + DIR/SPLIT/                          (Detectron2's COCO)
    DIR/result.json + DIR/images/       (Label Studio; file_name "images\\x.jpg", ids from 0)
    any lone FILE.json, its file_name relative to the JSON's folder or in images/ beside it

and written as the first. Objects with a box but no segmentation (Label Studio's rectangles)
are read as the filled box, as pycocotools' ``loadRes`` does for box results.
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
from segflow.io import image_size, write_image


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


def write(root: Path, schema: LabelSchema, samples, *, split: str = "default",
          meta: dict | None = None) -> None:
    """``samples``: iterable of :class:`~segflow.formats.base.Sample` (instances kept as given,
    else the panoptic things)."""
    root = Path(root)
    rows = []
    for s in samples:
        inst = s.get_instances(schema)
        if s.image is not None:
            write_image(root / "images" / split / f"{s.name}.png", s.image)
        rows.append((s.name, inst.height, inst.width, inst))
    d = to_coco_dict(schema, rows)
    if meta:
        d["info"] = {"description": "written by segflow", **meta}
    write_json(root / "annotations" / f"instances_{split}.json", d)


def json_kind(path: Path) -> str | None:
    """``coco_panoptic``, ``coco`` or None (no COCO keys) for a JSON file: by its name when it
    follows COCO's (``panoptic_*`` / ``instances_*``), else by the keys it holds (read in
    chunks: no parse of a large file just to tell)."""
    name = path.name.lower()
    if name.startswith("panoptic"):
        return "coco_panoptic"
    if name.startswith("instances"):
        return "coco"
    tail, seen = b"", set()
    keys = (b'"segments_info"', b'"images"', b'"annotations"')
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            seen.update(k for k in keys if k in tail + chunk)
            if keys[0] in seen:
                return "coco_panoptic"
            tail = chunk[-20:]
    return "coco" if keys[1] in seen and keys[2] in seen else None


def lone_json(root: Path) -> Path | None:
    """The one COCO-like ``*.json`` at the top of a folder (Label Studio's ``result.json``
    beside ``images/``), if there is exactly one."""
    found = [p for p in sorted(root.glob("*.json")) if p.name != "schema.json"]
    return found[0] if len(found) == 1 else None


def find_json(root: Path, prefix: str) -> tuple[Path, str]:
    """The annotations JSON of a dataset given as a folder or a file, and its split name:
    ``annotations/<prefix>_<split>.json`` (exactly one), else a lone JSON at the top."""
    if root.is_file():
        stem = root.stem
        return root, stem[len(prefix):].lstrip("_") if stem.startswith(prefix) else stem
    found = sorted((root / "annotations").glob(f"{prefix}*.json"))
    if len(found) > 1:
        raise SegflowError(f"{root}: several {prefix} files ({', '.join(p.name for p in found)}); "
                           "give one of them instead of the folder")
    if found:
        return found[0], found[0].stem[len(prefix):].lstrip("_")
    lone = lone_json(root)
    if lone is not None:
        return lone, lone.stem
    raise SegflowError(f"{root}: no annotations/{prefix}_<split>.json or lone .json file; "
                       "is this a COCO dataset?")


class ImageFinder:
    """Where the images named by a COCO JSON are, in the tools' layouts (module docstring)."""

    def __init__(self, jpath: Path, split: str, images: Path | None = None):
        self.jpath, self.images = jpath, images
        if images is not None and not Path(images).is_dir():
            raise SegflowError(f"{images}: no such images folder (--images)")
        d = jpath.parent
        base = d.parent if d.name == "annotations" else None
        self.dirs = [Path(images)] if images is not None else []
        self.dirs.append(d)
        if base is not None:
            self.dirs += [base / "images" / split, base / "images", base / split, base]
        self.dirs.append(d / "images")

    def find(self, file_name: str) -> Path | None:
        rel = str(file_name).replace("\\", "/")
        base = rel.rsplit("/", 1)[-1]
        # a path that climbs out (Label Studio 1.16 writes its media store's) is looked up by
        # its file name only, so annotations never point outside the folders searched
        cands = [base] if ".." in rel.split("/") or rel == base else [rel, base]
        for folder in self.dirs:
            for cand in cands:
                p = folder / cand.lstrip("/")
                if p.is_file():
                    return p
        return None

    def check(self, im: dict, where: str, name: str) -> tuple[Path | None, str | None]:
        """(path, None) when found with the JSON's size; (None, why) when missing; raises when
        the file's size disagrees with the JSON's."""
        p = self.find(im.get("file_name", ""))
        if p is None:
            looked = self.images or self.jpath.parent
            return None, (f"{name}: image {im.get('file_name')!r} of {self.jpath.name} not found "
                          f"(looked beside the JSON, in images/ and in {looked}); give --images DIR")
        h, w = image_size(p)
        if (h, w) != (int(im["height"]), int(im["width"])):
            raise SegflowError(f"{p}: is {w}x{h}, but {where} says {im['width']}x{im['height']}; "
                               "the images and the annotations do not belong together")
        return p, None


def image_entry(im, k: int, jpath: Path) -> tuple[int, int]:
    """An image entry's (height, width), checked: whole, positive and under the pixel cap (a
    mask of that size is decoded for each object)."""
    from segflow.io import get_max_pixels

    try:
        h, w = int(im["height"]), int(im["width"])
    except (KeyError, TypeError, ValueError, OverflowError):
        raise SegflowError(f"{jpath}: image {k} needs a whole height and width") from None
    if h <= 0 or w <= 0:
        raise SegflowError(f"{jpath}: image {k} is {w}x{h}; sizes must be positive")
    if h * w > get_max_pixels():
        raise SegflowError(f"{jpath}: image {k} claims {w}x{h}, over the pixel cap of "
                           f"{get_max_pixels() / 1e6:.0f} MP; raise it with --max-pixels if true")
    return h, w


def segmentation_to_rle(seg, h: int, w: int, where: str, bbox=None) -> dict:
    """A COCO ``segmentation`` (polygons, uncompressed or compressed RLE; empty with a
    ``bbox``: the filled box) -> compressed RLE."""
    if (seg is None or seg == []) and bbox is not None and len(bbox) == 4:
        x, y, bw, bh = (float(v) for v in bbox)
        seg = [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]]
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


def read(src: Path, *, images: Path | None = None) -> Dataset:
    """A COCO instances dataset: a folder in one of the layouts above, or the JSON file."""
    src = Path(src)
    jpath, split = find_json(src, "instances")
    data = read_json(jpath, "COCO instances annotations")
    require_keys(data, ("images", "annotations", "categories"), jpath, "COCO instances")
    schema = schema_from_categories(data["categories"], str(jpath))
    known = set(schema.ids)
    by_img: dict[int, list] = {}
    for k, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise SegflowError(f"{jpath}: image {k} needs an id and a file_name")
        image_entry(im, k, jpath)
        by_img[im["id"]] = []
    for k, a in enumerate(data["annotations"]):
        if a.get("image_id") not in by_img:
            raise SegflowError(f"{jpath}: annotation {k} has unknown image_id {a.get('image_id')}")
        if a.get("category_id") not in known:
            raise SegflowError(f"{jpath}: annotation {k} has unknown category_id "
                               f"{a.get('category_id')}; known: {sorted(known)}")
        by_img[a["image_id"]].append((k, a))
    imgs = data["images"]
    names = [Path(str(im["file_name"]).replace("\\", "/")).stem for im in imgs]
    finder = ImageFinder(jpath, split, images)

    def load(i: int) -> Item:
        im = imgs[i]
        h, w = image_entry(im, i, jpath)
        inst = Instances(h, w)
        for k, a in by_img[im["id"]]:
            rle = segmentation_to_rle(a.get("segmentation"), h, w, f"{jpath}: annotation {k}",
                                      bbox=a.get("bbox"))
            inst.items.append(Instance(rle, int(a["category_id"]), id=int(a.get("id", k + 1)),
                                       score=a.get("score"), iscrowd=bool(a.get("iscrowd", 0)),
                                       bbox=[float(v) for v in mask_utils.toBbox(
                                           {"size": rle["size"],
                                            "counts": rle["counts"].encode("ascii")})]))
        path, why = finder.check(im, f"{jpath.name} (image {i})", names[i])
        return Item(names[i], path, h, w, instances=inst, missing=why)

    return Dataset(names, load, schema, kind="instances", root=src)
