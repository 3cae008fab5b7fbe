"""Pascal VOC segmentation layout: palette PNGs for classes and for objects.

    DIR/JPEGImages/NAME.png                 (PNG, so images round-trip exactly)
    DIR/SegmentationClass/NAME.png          class ids, 255 = void
    DIR/SegmentationObject/NAME.png         object index 1..N (things), 0 none, 255 void
    DIR/ImageSets/Segmentation/SPLIT.txt
    DIR/labelmap.txt                        (name:r,g,b:: per class, as datumaro and CVAT read)
    DIR/schema.json                         (segflow's, with thing/stuff)

VOC keeps no scores, no crowd flags and no overlaps: objects are painted, later over earlier.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segflow.annotations import LabelSchema, Panoptic, Segment, SemanticMask, stuff_segments
from segflow.errors import SegflowError
from segflow.formats.base import Dataset, Item
from segflow.formats.folders import read_schema, write_schema
from segflow.io import default_palette, read_mask, write_image, write_mask


def write(root: Path, schema: LabelSchema, samples, *, split: str = "train",
          meta: dict | None = None) -> None:
    """``samples``: iterable of :class:`~segflow.formats.base.Sample` (their panoptic)."""
    root = Path(root)
    write_schema(root, schema, **(meta or {}))
    lines = ["# label:color_rgb:parts:actions"]
    if 0 not in schema.ids:
        lines.append("background:0,0,0::")
    lines += [f"{c.name}:{','.join(map(str, c.color))}::" for c in schema.classes]
    root.mkdir(parents=True, exist_ok=True)
    (root / "labelmap.txt").write_text("\n".join(lines) + "\n")
    names = []
    for smp in samples:
        name, image, pan = smp.name, smp.image, smp.get_panoptic(schema)
        if image is not None:
            write_image(root / "JPEGImages" / f"{name}.png", image)
        cats = pan.category_map(void=255)
        write_mask(root / "SegmentationClass" / f"{name}.png", cats, palette=schema.palette())
        obj = np.where(cats == 255, 255, 0).astype(np.int32)
        things = [s for s in pan.segments if s.isthing]
        if len(things) > 254:
            raise SegflowError(f"voc: {name} has {len(things)} objects; VOC holds at most 254")
        for k, s in enumerate(things, start=1):
            obj[pan.seg_ids == s.id] = k
        write_mask(root / "SegmentationObject" / f"{name}.png", obj, palette=default_palette())
        names.append(name)
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))


def detect(root: Path) -> bool:
    return (root / "SegmentationClass").is_dir()


def read(root: Path, *, images: Path | None = None) -> Dataset:
    root = Path(root)
    schema = read_schema(root)
    files = sorted((root / "SegmentationClass").glob("*.png"))
    if not files:
        raise SegflowError(f"{root}: no SegmentationClass/*.png found")
    names = [f.stem for f in files]
    things = set(schema.thing_ids)

    def load(i: int) -> Item:
        n = names[i]
        cls = read_mask(files[i]).astype(np.int32)
        opath = root / "SegmentationObject" / f"{n}.png"
        obj = read_mask(opath).astype(np.int32) if opath.is_file() else np.zeros_like(cls)
        if obj.shape != cls.shape:
            raise SegflowError(f"{opath}: size differs from SegmentationClass/{n}.png")
        seg = np.zeros(cls.shape, np.int32)
        segs: list[Segment] = []
        stuff_segments(cls, schema.stuff_ids, seg, segs)
        nid = len(segs)
        for k in np.unique(obj):
            if k in (0, 255):
                continue
            m = obj == k
            c = int(np.bincount(cls[m]).argmax())
            if c not in things:
                raise SegflowError(f"{opath}: object {k} lies on class {c}, which is not a thing")
            nid += 1
            seg[m] = nid
            segs.append(Segment(nid, c, True, int(k)))
        pan = Panoptic(seg, segs)
        img_dir = Path(images or root / "JPEGImages")
        img = next(iter(sorted(img_dir.glob(f"{n}.*"))), None) if img_dir.is_dir() else None
        return Item(n, img, cls.shape[0], cls.shape[1], SemanticMask(cls, 255), pan,
                    pan.to_instances())

    return Dataset(names, load, schema, kind="panoptic", root=root)
