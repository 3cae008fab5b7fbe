"""segflow's own folder layout: PNG images and masks side by side, lossless for every kind.

    DIR/schema.json            classes (id, name, colour, thing/stuff) and the ignore id
    DIR/images/NAME.png        the image
    DIR/semantic/NAME.png      class ids, indexed PNG with the schema's palette
    DIR/panoptic/NAME.png      segment ids, 16-bit PNG (0 = void)
    DIR/panoptic/NAME.json     the segments: id, category_id, isthing, instance_id, iscrowd
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segflow.annotations import LabelSchema, Panoptic, Segment, SemanticMask
from segflow.errors import SegflowError
from segflow.formats.base import Dataset, Item, read_json, write_json
from segflow.io import read_mask, write_ids, write_image, write_mask


def write_schema(root: Path, schema: LabelSchema, **extra) -> Path:
    return write_json(root / "schema.json",
                      {"classes": schema.to_list(), "ignore_index": schema.ignore_index, **extra})


def read_schema(root: Path) -> LabelSchema:
    d = read_json(root / "schema.json", "schema.json (the label schema)")
    if not isinstance(d, dict) or "classes" not in d:
        raise SegflowError(f"{root / 'schema.json'}: needs a 'classes' list")
    return LabelSchema.from_list(d["classes"], d.get("ignore_index", 255))


def write_item(root: Path, name: str, schema: LabelSchema, *, image=None, semantic=None,
               panoptic: Panoptic | None = None) -> None:
    if image is not None:
        write_image(root / "images" / f"{name}.png", image)
    if semantic is not None:
        write_mask(root / "semantic" / f"{name}.png", semantic.ids, palette=schema.palette())
    if panoptic is not None:
        write_ids(root / "panoptic" / f"{name}.png", panoptic.seg_ids)
        write_json(root / "panoptic" / f"{name}.json", [
            {"id": s.id, "category_id": s.category_id, "isthing": s.isthing,
             "instance_id": s.instance_id, "iscrowd": s.iscrowd} for s in panoptic.segments])


def write(root: Path, schema: LabelSchema, samples, *, meta: dict | None = None) -> None:
    """``samples``: iterable of :class:`~segflow.formats.base.Sample`; the semantic mask is
    always written, the panoptic one when the sample has objects or panoptic segments."""
    root = Path(root)
    write_schema(root, schema, **(meta or {}))
    for s in samples:
        has_objects = s.panoptic is not None or s.instances is not None
        write_item(root, s.name, schema, image=s.image, semantic=s.get_semantic(schema),
                   panoptic=s.get_panoptic(schema) if has_objects else None)


def detect(root: Path) -> bool:
    return (root / "schema.json").is_file()


def read(root: Path, *, images: Path | None = None) -> Dataset:
    root = Path(root)
    schema = read_schema(root)
    names = sorted(p.stem for p in (root / "images").glob("*.png")) if (root / "images").is_dir() \
        else sorted(p.stem for p in (root / "semantic").glob("*.png"))
    if not names:
        raise SegflowError(f"{root}: no images/*.png or semantic/*.png found")
    has_pan = (root / "panoptic").is_dir()
    known = set(schema.ids)

    def load(i: int) -> Item:
        n = names[i]
        img = Path(images or root / "images") / f"{n}.png"
        sem = pan = None
        sp = root / "semantic" / f"{n}.png"
        if sp.is_file():
            sem = SemanticMask(read_mask(sp).astype(np.int32), schema.ignore_index)
        if has_pan and (root / "panoptic" / f"{n}.png").is_file():
            ids = read_mask(root / "panoptic" / f"{n}.png").astype(np.int32)
            jp = root / "panoptic" / f"{n}.json"
            segs = []
            for k, s in enumerate(read_json(jp, "segments file")):
                if s.get("category_id") not in known:
                    raise SegflowError(f"{jp}: segment {k} has unknown category_id "
                                       f"{s.get('category_id')}; known: {sorted(known)}")
                segs.append(Segment(int(s["id"]), int(s["category_id"]), bool(s["isthing"]),
                                    int(s.get("instance_id", 0)), bool(s.get("iscrowd", False))))
            pan = Panoptic(ids, segs)
        shape = (sem.ids.shape if sem is not None else pan.seg_ids.shape if pan is not None
                 else (0, 0))
        if sem is not None and pan is not None and sem.ids.shape != pan.seg_ids.shape:
            raise SegflowError(f"{root}/{n}: semantic and panoptic masks differ in size")
        return Item(n, img if img.is_file() else None, shape[0], shape[1], sem, pan,
                    pan.to_instances() if pan is not None else None)

    kind = "panoptic" if has_pan else "semantic"
    return Dataset(names, load, schema, kind=kind, root=root)
