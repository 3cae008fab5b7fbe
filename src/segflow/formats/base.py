"""The one lazy, indexable ``Dataset`` every format reads into, the one ``Sample`` every format
writes from, and the JSON helpers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segflow.annotations import Instances, LabelSchema, Panoptic, SemanticMask, panoptic_from
from segflow.errors import SegflowError


@dataclass
class Item:
    """One image with whatever ground truth its format carries."""

    name: str
    image_path: Path | None
    height: int
    width: int
    semantic: SemanticMask | None = None
    panoptic: Panoptic | None = None
    instances: Instances | None = None
    missing: str | None = None  # why the image file named by the annotations was not found

    def image(self) -> np.ndarray:
        from segflow.io import read_image

        if self.image_path is None:
            raise SegflowError(self.missing or f"{self.name}: this dataset has no image files")
        return read_image(self.image_path)


@dataclass
class Sample:
    """One image and its annotations, as every writer takes it (:data:`segflow.formats.FORMATS`).

    Give what you have; a writer derives the rest: ``panoptic`` from semantic + instances
    (:func:`~segflow.annotations.panoptic_from`), ``instances`` and ``semantic`` from panoptic.
    Instances given are written as they are by the instance formats (overlaps, scores kept).
    """

    name: str
    image: np.ndarray | None = None
    panoptic: Panoptic | None = None
    instances: Instances | None = None
    semantic: SemanticMask | None = None

    def get_panoptic(self, schema: LabelSchema) -> Panoptic:
        if self.panoptic is None:
            if self.instances is None and self.semantic is None:
                raise SegflowError(f"{self.name}: no annotations to write")
            h, w = (self.semantic.ids.shape if self.semantic is not None
                    else (self.instances.height, self.instances.width))
            self.panoptic = panoptic_from(self.semantic, self.instances or Instances(h, w), schema)
        return self.panoptic

    def get_instances(self, schema: LabelSchema) -> Instances:
        return self.instances if self.instances is not None \
            else self.get_panoptic(schema).to_instances()

    def get_semantic(self, schema: LabelSchema) -> SemanticMask:
        return self.semantic if self.semantic is not None \
            else self.get_panoptic(schema).to_semantic(schema.ignore_index)


class Dataset:
    """Images + annotations + schema; items are loaded when indexed (lazy)."""

    def __init__(self, names: list[str], loader: Callable[[int], Item], schema: LabelSchema,
                 *, kind: str, root: Path):
        self.names = names
        self._load = loader
        self.schema = schema
        self.kind = kind  # what the format carries: "semantic", "instances" or "panoptic"
        self.root = root

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Item:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self._load(i % len(self))

    def __iter__(self) -> Iterator[Item]:
        for i in range(len(self)):
            yield self[i]


def write_json(path: Path, data) -> Path:
    from segflow.atomic import atomic_write_json

    return atomic_write_json(path, data, separators=(",", ":"), default=_np_default)


def _np_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def read_json(path: Path, what: str) -> dict | list:
    if not path.is_file():
        raise SegflowError(f"{path}: missing {what}; check the dataset folder")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SegflowError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None


def require_keys(data, keys: tuple[str, ...], path: Path, what: str) -> None:
    """A JSON object must hold these keys, else say which file is not what it should be."""
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            raise SegflowError(f"{path}: missing '{key}'; is this a {what} file?")


def schema_from_categories(cats: list, where: str) -> LabelSchema:
    try:
        return LabelSchema.from_list([
            {"id": c["id"], "name": c["name"], "color": c.get("color", (0, 0, 0)),
             "isthing": bool(c.get("isthing", True))} for c in cats])
    except (KeyError, TypeError) as e:
        raise SegflowError(f"{where}: a category lacks {e}; each needs id and name") from None
