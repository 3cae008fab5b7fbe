"""Dataset formats: read any into a lazy ``Dataset``, write from the data model.

==============  ===========================================  =========================
name            layout                                       carries
==============  ===========================================  =========================
folders         images/, semantic/, panoptic/ + schema.json  semantic, panoptic
coco            images/S/, annotations/instances_S.json      instances
coco_panoptic   images/S/, annotations/panoptic_S(.json)/    panoptic (+ semantic)
cityscapes      leftImg8bit/, gtFine/ labelIds + instanceIds  panoptic (+ semantic)
voc             SegmentationClass/, SegmentationObject/       panoptic (+ semantic)
yolo            data.yaml, images/S/, labels/S/*.txt          instances (polygons)
==============  ===========================================  =========================
"""

from __future__ import annotations

from pathlib import Path

from segflow.errors import SegflowError
from segflow.formats import cityscapes, coco, coco_panoptic, folders, voc, yolo
from segflow.formats.base import Dataset, Item

READERS = {"folders": folders.read, "coco": coco.read, "coco_panoptic": coco_panoptic.read,
           "cityscapes": cityscapes.read, "voc": voc.read, "yolo": yolo.read}
FORMATS = tuple(READERS)


def detect(root: Path) -> str:
    """Guess a dataset folder's format from the files it holds."""
    root = Path(root)
    if any((root / "annotations").glob("panoptic*.json")):
        return "coco_panoptic"
    if any((root / "annotations").glob("instances*.json")):
        return "coco"
    if (root / "data.yaml").is_file() and (root / "labels").is_dir():
        return "yolo"
    if (root / "gtFine").is_dir():
        return "cityscapes"
    if (root / "SegmentationClass").is_dir():
        return "voc"
    if (root / "schema.json").is_file():
        return "folders"
    raise SegflowError(f"{root}: cannot tell the dataset format (no schema.json, "
                       "annotations/instances_*.json or annotations/panoptic_*.json); pass --from")


def open_dataset(root: str | Path, fmt: str | None = None) -> Dataset:
    root = Path(root)
    if not root.exists():
        raise SegflowError(f"{root}: no such dataset folder")
    fmt = fmt or detect(root)
    if fmt not in READERS:
        raise SegflowError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return READERS[fmt](root)


__all__ = ["FORMATS", "Dataset", "Item", "detect", "open_dataset"]
