"""Writing a synthetic set to disk in any supported format, with a progress bar."""

from __future__ import annotations

from pathlib import Path

from segflow.errors import SegflowError
from segflow.formats import coco, coco_panoptic, folders
from segflow.synth import DOMAINS, synthesize

EXPORT_FORMATS = ("folders", "coco", "coco_panoptic", "geotiff")


def export_synthetic(domain: str, out: str | Path, *, n: int, seed: int, size: int = 256,
                     fmt: str = "folders", difficulty: str = "medium",
                     n_objects: int | None = None, progress: bool = True) -> Path:
    """Generate ``n`` scenes of ``domain`` and write them to ``out`` as ``fmt``."""
    if domain not in DOMAINS:
        raise SegflowError(f"unknown domain {domain!r}; use one of {', '.join(DOMAINS)}")
    if fmt not in EXPORT_FORMATS:
        raise SegflowError(f"unknown format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
    if n < 1:
        raise SegflowError(f"-n must be at least 1, got {n}")
    out = Path(out)
    schema = DOMAINS[domain][1]
    from rich.progress import Progress

    def samples():
        with Progress(disable=not progress, transient=False) as bar:
            task = bar.add_task(f"synth {domain}", total=n)
            for i in range(n):
                s = synthesize(domain, seed=seed, index=i, size=size, difficulty=difficulty,
                               n_objects=n_objects)
                yield f"{domain}_{seed}_{i:05d}", s
                bar.advance(task)

    if fmt == "folders":
        folders.write(out, schema, ((name, s.image, s.semantic, s.panoptic)
                                    for name, s in samples()),
                      domain=domain, seed=seed, size=size, difficulty=difficulty)
    elif fmt == "geotiff":  # RGB and class-id GeoTIFFs at made-up UTM coordinates
        from segflow.geo import synth as geo_synth

        geo_synth.write(out, schema, ((name, s.image, s.semantic.ids) for name, s in samples()),
                        seed=seed, size=size)
    elif fmt == "coco_panoptic":
        coco_panoptic.write(out, schema, ((name, s.image, s.panoptic) for name, s in samples()))
    else:
        coco.write(out, schema, ((name, s.image, s.instances) for name, s in samples()))
    return out
