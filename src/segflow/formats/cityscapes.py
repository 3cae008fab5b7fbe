"""Cityscapes layout: ``labelIds`` (class per pixel) and ``instanceIds`` (things as
``class * 1000 + k``; thing pixels without an instance keep the bare class id = crowd/group).

    DIR/leftImg8bit/SPLIT/CITY/NAME_leftImg8bit.png
    DIR/gtFine/SPLIT/CITY/NAME_gtFine_labelIds.png
    DIR/gtFine/SPLIT/CITY/NAME_gtFine_instanceIds.png   (16-bit)
    DIR/gtFine/SPLIT/CITY/NAME_gtFine_labelTrainIds.png (= labelIds: our ids are compact)
    DIR/label_colors.txt                                 ("r g b name" per id, as datumaro reads)
    DIR/schema.json                                      (segflow's; classes and colours)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segflow.annotations import LabelSchema, Panoptic, Segment, SemanticMask, stuff_segments
from segflow.errors import SegflowError
from segflow.formats.base import Dataset, Item
from segflow.formats.folders import read_schema, write_schema
from segflow.io import read_mask, write_ids, write_image


def write(root: Path, schema: LabelSchema, samples, *, split: str = "train", city: str = "synth",
          meta: dict | None = None) -> None:
    """``samples``: iterable of :class:`~segflow.formats.base.Sample` (their panoptic)."""
    root = Path(root)
    if max(schema.thing_ids, default=0) > 65:
        raise SegflowError("cityscapes: thing class ids above 65 do not fit class*1000+k in 16 bits")
    write_schema(root, schema, **(meta or {}))
    by_id = {c.id: c for c in schema.classes}
    lines = [f"{' '.join(map(str, by_id[i].color)) if i in by_id else '0 0 0'} "
             f"{by_id[i].name if i in by_id else f'unused_{i}'}"
             for i in range(max(schema.ids) + 1)]
    if 0 not in by_id:
        lines[0] = "0 0 0 unlabeled"
    (root / "label_colors.txt").write_text("\n".join(lines) + "\n")
    for smp in samples:
        name, image, pan = smp.name, smp.image, smp.get_panoptic(schema)
        if image is not None:
            write_image(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", image)
        cats = pan.category_map(void=schema.ignore_index)
        for kind in ("labelIds", "labelTrainIds"):  # plain 8-bit grey, as Cityscapes ships
            write_image(root / "gtFine" / split / city / f"{name}_gtFine_{kind}.png",
                        cats.astype(np.uint8))
        inst = np.where(cats == schema.ignore_index, 0, cats).astype(np.int32)
        k = {}
        for s in pan.segments:
            if s.isthing and not s.iscrowd:
                k[s.category_id] = k.get(s.category_id, -1) + 1
                if k[s.category_id] > 999:
                    raise SegflowError(f"cityscapes: {name} has over 1000 objects of one class")
                inst[pan.seg_ids == s.id] = s.category_id * 1000 + k[s.category_id]
        write_ids(root / "gtFine" / split / city / f"{name}_gtFine_instanceIds.png", inst)


def detect(root: Path) -> bool:
    return (root / "gtFine").is_dir()


def read(root: Path, *, images: Path | None = None) -> Dataset:
    root = Path(root)
    schema = read_schema(root)
    files = sorted((root / "gtFine").rglob("*_gtFine_labelIds.png"))
    if not files:
        raise SegflowError(f"{root}: no gtFine/**/*_gtFine_labelIds.png found")
    names = [f.name[: -len("_gtFine_labelIds.png")] for f in files]
    things = set(schema.thing_ids)

    def load(i: int) -> Item:
        lab = read_mask(files[i]).astype(np.int32)
        ipath = files[i].with_name(f"{names[i]}_gtFine_instanceIds.png")
        inst = read_mask(ipath).astype(np.int32) if ipath.is_file() else None
        if inst is not None and inst.shape != lab.shape:
            raise SegflowError(f"{ipath}: size differs from the labelIds PNG")
        seg = np.zeros(lab.shape, np.int32)
        segs: list[Segment] = []
        stuff_segments(lab, schema.stuff_ids, seg, segs)
        nid = len(segs)
        if inst is not None:
            for v in np.unique(inst):
                c = int(v // 1000) if v >= 1000 else int(v)
                if c not in things:
                    continue
                nid += 1
                seg[inst == v] = nid
                segs.append(Segment(nid, c, True, int(v % 1000) + 1 if v >= 1000 else 0,
                                    iscrowd=v < 1000))
        pan = Panoptic(seg, segs)
        rel = files[i].parent.relative_to(root / "gtFine")
        img = Path(images or root / "leftImg8bit") / rel / f"{names[i]}_leftImg8bit.png"
        return Item(names[i], img if img.is_file() else None, lab.shape[0], lab.shape[1],
                    SemanticMask(lab, schema.ignore_index), pan, pan.to_instances())

    return Dataset(names, load, schema, kind="panoptic", root=root)
