"""Pipeline files: YAML or JSON, an ordered list of steps, validated before any image is read.

Accepted shapes::

    name: coins                # optional
    steps:
      - blur: {method: gaussian, sigma: 2}
      - threshold: {method: otsu}
      - label                  # a bare name means default parameters

or just the list. A wrong step or parameter is reported with the file, the step's position
and name, the field and the allowed values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from segflow.errors import ConfigError
from segflow.pipeline.steps import DERIVED, PRODUCERS, STEPS, Params


@dataclass(frozen=True)
class Step:
    name: str
    params: Params

    def to_dict(self) -> dict:
        return {self.name: self.params.model_dump()}


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    steps: tuple[Step, ...]
    source: str = "<pipeline>"
    #: How a GeoTIFF's bands are read (``raster: {bands: [4, 3, 2], stretch: [2, 98]}``);
    #: a :class:`segflow.geo.options.RasterOptions`, or None for the defaults.
    raster: Any = None

    def to_dict(self) -> dict:
        d = {"name": self.name, "steps": [s.to_dict() for s in self.steps]}
        if self.raster is not None:
            d["raster"] = self.raster.model_dump()
        return d


def _allowed(model: type[Params], field: str) -> str:
    info = model.model_fields.get(field)
    if info is None:
        return "allowed fields: " + (", ".join(model.model_fields) or "none")
    ann = info.annotation
    args = getattr(ann, "__args__", None)
    if args and all(isinstance(a, (str, int)) for a in args):
        return "allowed values: " + ", ".join(map(str, args))
    return f"expected {getattr(ann, '__name__', str(ann).replace('typing.', ''))}"


def _parse_step(raw: Any, i: int, where: str) -> Step:
    if isinstance(raw, str):
        name, params = raw, {}
    elif isinstance(raw, dict) and "step" in raw:
        params = {k: v for k, v in raw.items() if k != "step"}
        name = raw["step"]
    elif isinstance(raw, dict) and len(raw) == 1:
        (name, params), = raw.items()
        params = {} if params is None else params
    else:
        raise ConfigError(
            f"{where}: step {i}: write a step as 'name' or 'name: {{param: value}}', got {raw!r}"
        )
    if name not in STEPS:
        raise ConfigError(
            f"{where}: step {i}: unknown step {name!r}; allowed steps: {', '.join(STEPS)}"
        )
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: step {i} ({name}): parameters must be a mapping, got {params!r}")
    model = STEPS[name].params
    try:
        return Step(name, model.model_validate(params))
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "(parameters)"
        top = str(err["loc"][0]) if err["loc"] else ""
        if err["type"] == "extra_forbidden":
            msg = f"unknown parameter {field!r}; {_allowed(model, '')}"
        else:
            msg = f"{field}: {err['msg']} (got {err.get('input')!r}); {_allowed(model, top)}"
        raise ConfigError(f"{where}: step {i} ({name}): {msg}") from None


_NEED_WORDS = {"mask": "a mask", "labels": "labelled objects", "regions": "regions"}


def _check_order(steps: list[Step], where: str) -> None:
    """Walk the steps with what each needs and makes (:data:`STEPS`); refuse the first step
    whose input no earlier step made, naming it and what would make that input."""
    have: dict[str, tuple[int, Step]] = {}  # product -> the step that made it
    dropped: dict[str, tuple[int, Step]] = {}  # product -> the step that made it stale
    for i, s in enumerate(steps, start=1):
        d = STEPS[s.name]
        for need in d.needs:
            if need in have:
                continue
            why = (f"step {dropped[need][0]} ({dropped[need][1].name}) replaced what they came "
                   "from" if need in dropped else "no step before it makes one")
            raise ConfigError(f"{where}: step {i} ({s.name}) needs {_NEED_WORDS[need]}, but {why}; "
                              f"put one of {', '.join(PRODUCERS[need])} before it")
        if d.needs_binary and STEPS[have["mask"][1].name].binary(have["mask"][1].params) is False:
            j, m = have["mask"]
            raise ConfigError(
                f"{where}: step {i} ({s.name}) needs a binary mask, but step {j} ({m.name}) "
                "makes several classes; make it binary (kmeans k: 2, threshold not multi_otsu)"
            )
        for made in d.makes:
            for stale in DERIVED[made]:
                if have.pop(stale, None) is not None:
                    dropped[stale] = (i, s)
            have[made] = (i, s)


def parse_pipeline(data: Any, *, source: str = "<pipeline>", name: str | None = None) -> PipelineSpec:
    """Validate a pipeline given as Python data (the parsed YAML/JSON)."""
    if isinstance(data, dict):
        unknown = set(data) - {"name", "description", "steps", "raster"}
        if unknown:
            raise ConfigError(
                f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
                "allowed: name, description, steps, raster"
            )
        name = data.get("name", name)
        raster = _parse_raster(data.get("raster"), source)
        data = data.get("steps")
    else:
        raster = None
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{source}: expected a non-empty list of steps under 'steps:'")
    steps = [_parse_step(raw, i, source) for i, raw in enumerate(data, start=1)]
    _check_order(steps, source)
    return PipelineSpec(name or Path(source).stem, tuple(steps), source, raster)


def _parse_raster(raw: Any, source: str):
    """The optional ``raster:`` mapping (GeoTIFF band selection and stretch)."""
    if raw is None:
        return None
    from segflow.geo.options import RasterOptions

    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: raster: expected a mapping like {{bands: [4, 3, 2]}}, got {raw!r}")
    try:
        return RasterOptions.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "(raster)"
        raise ConfigError(f"{source}: raster.{field}: {err['msg']} (got {err.get('input')!r}); "
                          "allowed fields: bands, stretch") from None


def load_pipeline(path: str | Path) -> PipelineSpec:
    """Read and validate a pipeline file (``.yaml``, ``.yml`` or ``.json``), or a built-in
    pipeline by name (``objects``, ``cells``, ...; see :func:`segflow.resources.names`)."""
    from segflow import resources

    p = Path(path)
    if p.is_file():
        text, source = p.read_text(encoding="utf-8"), str(p)
    elif not p.suffix and (builtin := resources.find("pipelines", str(path))) is not None:
        text, source = builtin.read_text(encoding="utf-8"), f"{p.name} (built-in pipeline)"
        p = Path(f"{p.name}.yaml")
    else:
        raise ConfigError(f"{path}: no such pipeline file; check the path, or name a built-in "
                          f"pipeline ({', '.join(resources.names('pipelines'))})")
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}{where}: "
                          f"{str(e).splitlines()[0]}") from None
    return parse_pipeline(data, source=source, name=p.stem)
