"""YOLO segmentation (Ultralytics): one text file per image, one object per line,
``class x1 y1 x2 y2 ...`` with coordinates normalised to 0..1.

    DIR/data.yaml                 names of the classes, by index
    DIR/images/SPLIT/NAME.png
    DIR/labels/SPLIT/NAME.txt
    DIR/schema.json               (segflow's; ids and colours, optional when reading)

Polygons cannot hold every mask: each object is written as the outer boundary of its largest
part (holes and detached parts are lost; ``segflow convert`` says so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from segflow.annotations import Instance, Instances, LabelSchema
from segflow.errors import SegflowError
from segflow.formats.base import Dataset, Item
from segflow.formats.folders import write_schema
from segflow.io import read_image, write_image


def mask_to_polygon(mask: np.ndarray) -> np.ndarray | None:
    """Outer boundary of the largest connected part, as (N, 2) pixel-corner coordinates."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    c = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64)
    if len(c) < 3:
        x, y = c[0]
        c = np.array([[x, y], [x + 1, y], [x + 1, y + 1], [x, y + 1]], np.float64)
    return c


def polygon_to_mask(poly: np.ndarray, h: int, w: int) -> np.ndarray:
    import cv2

    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [np.round(poly).astype(np.int32)], 1)
    return m


def write(root: Path, schema: LabelSchema, samples, *, split: str = "train",
          meta: dict | None = None) -> None:
    """``samples``: iterable of :class:`~segflow.formats.base.Sample` (their instances)."""
    root = Path(root)
    things = schema.thing_ids
    index = {cid: k for k, cid in enumerate(things)}
    write_schema(root, schema, **(meta or {}))
    (root / "data.yaml").write_text(yaml.safe_dump({
        "path": ".", split: f"images/{split}",
        "names": {k: schema.by_id(c).name for k, c in enumerate(things)}}, sort_keys=False))
    for smp in samples:
        name, image, inst = smp.name, smp.image, smp.get_instances(schema)
        if image is not None:
            write_image(root / "images" / split / f"{name}.png", image)
        lines = []
        for it in inst.items:
            poly = mask_to_polygon(it.mask)
            if poly is None or it.category_id not in index:
                continue
            xy = (poly / [inst.width, inst.height]).ravel()
            lines.append(f"{index[it.category_id]} " + " ".join(f"{v:.6f}" for v in xy))
        p = root / "labels" / split / f"{name}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(f"{ln}\n" for ln in lines))


def parse_label_file(path: Path, n_classes: int) -> list[tuple[int, np.ndarray]]:
    out = []
    for ln_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            cls, vals = int(parts[0]), np.array([float(v) for v in parts[1:]])
        except ValueError:
            raise SegflowError(f"{path}: line {ln_no}: expected 'class x1 y1 x2 y2 ...' numbers"
                               ) from None
        if not 0 <= cls < n_classes:
            raise SegflowError(f"{path}: line {ln_no}: class {cls} outside 0..{n_classes - 1} "
                               "(data.yaml names)")
        if len(vals) < 6 or len(vals) % 2:
            raise SegflowError(f"{path}: line {ln_no}: a polygon needs at least 3 points")
        if vals.min() < 0 or vals.max() > 1:
            raise SegflowError(f"{path}: line {ln_no}: coordinates must be normalised to 0..1")
        out.append((cls, vals.reshape(-1, 2)))
    return out


def detect(root: Path) -> bool:
    return (root / "data.yaml").is_file() and (root / "labels").is_dir()


def read(root: Path, *, images: Path | None = None) -> Dataset:
    root = Path(root)
    dpath = root / "data.yaml"
    if not dpath.is_file():
        raise SegflowError(f"{root}: no data.yaml; is this a YOLO dataset?")
    try:
        data = yaml.safe_load(dpath.read_text())
    except yaml.YAMLError as e:
        raise SegflowError(f"{dpath}: not valid YAML ({str(e).splitlines()[0]})") from None
    raw = data.get("names") if isinstance(data, dict) else None
    if not raw:
        raise SegflowError(f"{dpath}: needs 'names' (class names by index)")
    names = [raw[k] for k in sorted(raw)] if isinstance(raw, dict) else list(raw)
    if (root / "schema.json").is_file():
        from segflow.formats.folders import read_schema

        schema = read_schema(root)
        ids = schema.thing_ids
    else:
        schema = LabelSchema.from_list([{"id": k + 1, "name": n, "isthing": True}
                                        for k, n in enumerate(names)])
        ids = schema.ids
    if len(ids) != len(names):
        raise SegflowError(f"{dpath}: {len(names)} names but schema.json has {len(ids)} things")
    labels = sorted((root / "labels").rglob("*.txt"))
    if not labels:
        raise SegflowError(f"{root}: no labels/**/*.txt found")
    item_names = [p.stem for p in labels]

    def load(i: int) -> Item:
        lp = labels[i]
        rel = lp.parent.relative_to(root / "labels")
        img = next(iter(sorted((Path(images or root / "images") / rel).glob(f"{lp.stem}.*"))),
                   None)
        if img is None:
            raise SegflowError(f"{lp}: no image images/{rel}/{lp.stem}.* to give its size")
        h, w = read_image(img).shape[:2]
        inst = Instances(h, w)
        for k, (cls, poly) in enumerate(parse_label_file(lp, len(names))):
            m = polygon_to_mask(poly * [w, h], h, w)
            inst.items.append(Instance.from_mask(m, ids[cls], id=k + 1))
        return Item(item_names[i], img, h, w, instances=inst)

    return Dataset(item_names, load, schema, kind="instances", root=root)
