"""Dataset formats: read any into a lazy ``Dataset``, write any from ``Sample`` items.

:data:`FORMATS` is the one registry: each :class:`Format` has its reader, its writer, how it is
recognised on disk, and what it cannot hold. The CLI's choices and help, ``convert``,
``data synth --format``, the studio's export and detection all read from it.

==============  ===========================================  =========================
name            layout                                       carries
==============  ===========================================  =========================
folders         images/, semantic/, panoptic/ + schema.json  semantic, panoptic
coco            annotations/instances_S.json or any .json    instances
coco_panoptic   annotations/panoptic_S.json + its PNG folder  panoptic (+ semantic)
cityscapes      leftImg8bit/, gtFine/ labelIds + instanceIds  panoptic (+ semantic)
voc             SegmentationClass/, SegmentationObject/       panoptic (+ semantic)
yolo            data.yaml, images/S/, labels/S/*.txt          instances (polygons)
==============  ===========================================  =========================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from segflow.annotations import LabelSchema
from segflow.errors import SegflowError
from segflow.formats import cityscapes, coco, coco_panoptic, folders, voc, yolo
from segflow.formats.base import Dataset, Item, Sample

#: What a dataset may carry that some formats cannot hold (the keys of ``Format.loses``).
FEATURES = ("stuff", "exact masks", "crowd", "scores", "overlaps")


@dataclass(frozen=True)
class Format:
    """One dataset format.

    ``read(path, images=DIR | None) -> Dataset``; ``write(root, schema, samples, meta=dict)``
    with :class:`Sample` items; ``detect(path) -> bool`` on a folder or file; ``loses`` maps each
    of :data:`FEATURES` it cannot hold to the line ``segflow convert`` prints.
    """

    name: str
    carries: str  # "semantic", "instances" or "panoptic"
    layout: str
    read: Callable[..., Dataset]
    write: Callable[..., None]
    detect: Callable[[Path], bool]
    loses: dict[str, str] = field(default_factory=dict)


def _coco_dir(prefix: str, kind: str) -> Callable[[Path], bool]:
    def detect(p: Path) -> bool:
        if p.is_file():  # a JSON given directly is taken as COCO unless it is panoptic
            return p.suffix.lower() == ".json" and (coco.json_kind(p) or "coco") == kind
        if any((p / "annotations").glob(f"{prefix}*.json")):
            return True
        lone = coco.lone_json(p)
        return lone is not None and not (p / "schema.json").is_file() and \
            coco.json_kind(lone) == kind
    return detect


_PANOPTIC_LOSES = {"scores": "scores (a panoptic format has none)",
                   "overlaps": "overlapping instance pixels (the higher score, else the later, "
                               "keeps them)"}

#: Every format, in the order detection tries them.
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("coco_panoptic", "panoptic", "annotations/panoptic_S.json + annotations/panoptic_S/",
           coco_panoptic.read, coco_panoptic.write, _coco_dir("panoptic", "coco_panoptic"),
           dict(_PANOPTIC_LOSES)),
    Format("coco", "instances", "annotations/instances_S.json + images/S/ (or any COCO .json)",
           coco.read, coco.write, _coco_dir("instances", "coco"),
           {"stuff": "stuff classes (coco holds things only)"}),
    Format("yolo", "instances", "data.yaml, images/S/, labels/S/*.txt", yolo.read, yolo.write,
           yolo.detect,
           {"stuff": "stuff classes (yolo holds things only)",
            "exact masks": "exact masks: objects become polygons (outer boundary of the largest "
                           "part)",
            "crowd": "crowd flags (yolo has none)", "scores": "scores (yolo has none)"}),
    Format("cityscapes", "panoptic", "leftImg8bit/, gtFine/ labelIds + instanceIds",
           cityscapes.read, cityscapes.write, cityscapes.detect, dict(_PANOPTIC_LOSES)),
    Format("voc", "panoptic", "JPEGImages/, SegmentationClass/, SegmentationObject/", voc.read,
           voc.write, voc.detect, {**_PANOPTIC_LOSES, "crowd": "crowd flags (VOC has none)"}),
    Format("folders", "panoptic", "images/, semantic/, panoptic/ + schema.json", folders.read,
           folders.write, folders.detect, dict(_PANOPTIC_LOSES)),
)}
FORMAT_NAMES = tuple(FORMATS)


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise SegflowError(f"unknown format {name!r}; use one of {', '.join(FORMATS)}")
    return FORMATS[name]


def detect(path: Path) -> str:
    """Tell a dataset's format from a folder's files, or from a JSON file's content."""
    path = Path(path)
    for f in FORMATS.values():
        if f.detect(path):
            return f.name
    if path.is_file():
        raise SegflowError(f"{path}: not a dataset file segflow reads (a COCO or COCO panoptic "
                           ".json); pass --from or give the folder")
    raise SegflowError(f"{path}: cannot tell the dataset format (no schema.json, "
                       "annotations/*.json, lone COCO .json, data.yaml, gtFine/ or "
                       "SegmentationClass/); pass --from")


def open_dataset(path: str | Path, fmt: str | None = None, *,
                 images: str | Path | None = None) -> Dataset:
    """Open a dataset folder, or a COCO / COCO panoptic JSON file, lazily.

    ``images``: the folder of the image files, where the layout's own place is not it
    (a JSON exported without its images beside it).
    """
    path = Path(path)
    if not path.exists():
        raise SegflowError(f"{path}: no such dataset folder or file")
    f = get_format(fmt) if fmt else FORMATS[detect(path)]
    if path.is_file() and f.name not in ("coco", "coco_panoptic"):
        raise SegflowError(f"{path}: {f.name} datasets are folders; give the folder")
    return f.read(path, images=Path(images) if images is not None else None)


def write_dataset(dst: str | Path, fmt: str, schema: LabelSchema, samples: Iterable[Sample],
                  *, meta: dict | None = None) -> Path:
    """Write :class:`Sample` items as format ``fmt`` under ``dst``."""
    get_format(fmt).write(Path(dst), schema, samples, meta=meta)
    return Path(dst)


def formats_help() -> str:
    """One line per format for ``--help`` texts."""
    return "; ".join(f"{f.name} ({f.carries}: {f.layout})" for f in FORMATS.values())


__all__ = ["FEATURES", "FORMATS", "FORMAT_NAMES", "Dataset", "Format", "Item", "Sample", "detect",
           "formats_help", "get_format", "open_dataset", "write_dataset"]
