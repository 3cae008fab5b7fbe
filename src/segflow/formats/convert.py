"""Converting between formats through the panoptic data model, saying what is lost."""

from __future__ import annotations

from pathlib import Path

from segflow.annotations import Instances, Panoptic, panoptic_from
from segflow.errors import SegflowError
from segflow.formats import cityscapes, coco, coco_panoptic, folders, open_dataset, voc, yolo

WRITERS = ("folders", "coco", "coco_panoptic", "cityscapes", "voc", "yolo")


def _panoptic_of(item, schema) -> tuple[Panoptic, list[str]]:
    lost = []
    if item.panoptic is not None:
        return item.panoptic, lost
    inst = item.instances or Instances(item.height, item.width)
    if any(i.score is not None for i in inst.items):
        lost.append("scores")
    if any(i.iscrowd for i in inst.items):
        lost.append("crowd flags")
    masks = [i.mask.astype(bool) for i in inst.items]
    if any((a & b).any() for k, a in enumerate(masks) for b in masks[k + 1:]):
        lost.append("overlapping instance pixels (the higher score, else the later, keeps them)")
    return panoptic_from(item.semantic, inst, schema), lost


def convert(src: str | Path, dst: str | Path, *, to: str, src_format: str | None = None,
            progress: bool = True) -> list[str]:
    """Convert a dataset; returns what was lost (empty when lossless)."""
    if to not in WRITERS:
        raise SegflowError(f"unknown target format {to!r}; use one of {', '.join(WRITERS)}")
    ds = open_dataset(src, src_format)
    schema = ds.schema
    lost: set[str] = set()
    if ds.kind == "panoptic" and to in ("coco", "yolo"):
        lost.add(f"stuff classes ({to} holds things only)")
    if to == "yolo":
        lost.add("exact masks: objects become polygons (outer boundary of the largest part)")
    if ds.kind == "instances" and to in ("folders", "coco_panoptic", "cityscapes", "voc"):
        lost.add("nothing of the objects, but no stuff: non-object pixels become void")
    if to == "voc" and any(s for s in schema.classes if s.isthing):
        lost.add("crowd flags (VOC has none)")

    def items():
        from rich.progress import track

        for it in track(ds, total=len(ds), description=f"convert -> {to}", disable=not progress):
            pan, why = _panoptic_of(it, schema)
            lost.update(why)
            img = it.image() if it.image_path is not None else None
            yield it, img, pan

    write_dataset(dst, to, schema, ((it.name, img, pan, it.instances if ds.kind == "instances"
                                     else None) for it, img, pan in items()))
    return sorted(lost)


def write_dataset(dst: str | Path, to: str, schema, items) -> None:
    """Write ``(name, image, Panoptic, Instances | None)`` items in format ``to``; the instances,
    when given, are written as they are by the instance formats (keeping overlaps and scores),
    else the panoptic things are."""
    if to not in WRITERS:
        raise SegflowError(f"unknown target format {to!r}; use one of {', '.join(WRITERS)}")
    dst = Path(dst)
    if to == "folders":
        folders.write(dst, schema, ((name, img, pan.to_semantic(schema.ignore_index), pan)
                                    for name, img, pan, _ in items))
    elif to in ("coco", "yolo"):
        (coco if to == "coco" else yolo).write(
            dst, schema, ((name, img, inst if inst is not None else pan.to_instances())
                          for name, img, pan, inst in items))
    else:
        {"coco_panoptic": coco_panoptic, "cityscapes": cityscapes, "voc": voc}[to].write(
            dst, schema, ((name, img, pan) for name, img, pan, _ in items))
