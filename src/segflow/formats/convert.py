"""Converting between formats through the data model, saying what the target cannot hold
(each format's ``loses`` in :data:`segflow.formats.FORMATS`)."""

from __future__ import annotations

from pathlib import Path

from segflow.annotations import Instances, Panoptic, panoptic_from
from segflow.errors import SegflowError
from segflow.formats import FORMATS, Sample, get_format, open_dataset, write_dataset


def features(item, schema) -> set[str]:
    """Which of :data:`segflow.formats.FEATURES` one item's annotations use."""
    out = {"exact masks"}
    if item.panoptic is not None:
        segs = item.panoptic.segments
        if any(not s.isthing for s in segs):
            out.add("stuff")
        if any(s.iscrowd for s in segs):
            out.add("crowd")
    elif item.semantic is not None and set(schema.stuff_ids):
        out.add("stuff")
    if item.instances is not None and item.panoptic is None:
        inst = item.instances.items
        if any(i.score is not None for i in inst):
            out.add("scores")
        if any(i.iscrowd for i in inst):
            out.add("crowd")
        masks = [i.mask.astype(bool) for i in inst]
        if any((a & b).any() for k, a in enumerate(masks) for b in masks[k + 1:]):
            out.add("overlaps")
    return out


def _panoptic_of(item, schema) -> tuple[Panoptic, list[str]]:
    """An item's panoptic annotation (built from instances when it has none) and what building
    it lost."""
    if item.panoptic is not None:
        return item.panoptic, []
    lost = [FORMATS["folders"].loses[f] for f in sorted(features(item, schema))
            if f in FORMATS["folders"].loses]
    if any(i.iscrowd for i in (item.instances.items if item.instances else [])):
        lost.append("crowd flags")
    inst = item.instances or Instances(item.height, item.width)
    return panoptic_from(item.semantic, inst, schema), lost


def convert(src: str | Path, dst: str | Path, *, to: str, src_format: str | None = None,
            images: str | Path | None = None, progress: bool = True) -> list[str]:
    """Convert a dataset (folder or COCO JSON file); returns what was lost (empty when none).

    An image the annotations name but that cannot be found is an error, unless none of them
    can: then the annotations are written alone, and that is reported too."""
    try:
        target = get_format(to)
    except SegflowError:
        raise SegflowError(f"unknown target format {to!r}; use one of {', '.join(FORMATS)}"
                           ) from None
    ds = open_dataset(src, src_format, images=images)
    schema = ds.schema
    lost: set[str] = set()
    if ds.kind == "instances" and target.carries != "instances":
        lost.add("nothing of the objects, but no stuff: non-object pixels become void")
    seen = {"with": 0, "without": None}

    def samples():
        from rich.progress import track

        for it in track(ds, total=len(ds), description=f"convert -> {to}", disable=not progress):
            lost.update(target.loses[f] for f in features(it, schema) if f in target.loses)
            if it.image_path is not None:
                if seen["without"] is not None:
                    raise SegflowError(seen["without"])
                seen["with"] += 1
                img = it.image()
            else:
                if seen["with"]:
                    raise SegflowError(it.missing or f"{it.name}: no image file")
                seen["without"] = seen["without"] or it.missing or f"{it.name}: no image file"
                img = None
            yield Sample(it.name, img, it.panoptic,
                         it.instances if ds.kind == "instances" else None, it.semantic)

    write_dataset(dst, to, schema, samples())
    if seen["without"] is not None:
        lost.add("images: none found (give --images DIR); annotations written alone")
    return sorted(lost)
