"""Writing a synthetic set to disk in any supported format, with a progress bar."""

from __future__ import annotations

from pathlib import Path

from segflow.errors import SegflowError
from segflow.formats import FORMATS, Sample, get_format, write_dataset
from segflow.synth import DOMAINS, check_size, synthesize

#: Synthetic sets can be written in every format (each holds what it can of the scenes), and as
#: georeferenced GeoTIFFs (the geo extra).
EXPORT_FORMATS = (*FORMATS, "geotiff")


def export_synthetic(domain: str, out: str | Path, *, n: int, seed: int, size: int = 256,
                     fmt: str = "folders", difficulty: str = "medium",
                     n_objects: int | None = None, progress: bool = True) -> Path:
    """Generate ``n`` scenes of ``domain`` and write them to ``out`` as ``fmt``."""
    if domain not in DOMAINS:
        from segflow.synth import VOLUME_DOMAINS

        raise SegflowError(f"unknown domain {domain!r}; use one of "
                           f"{', '.join([*DOMAINS, *VOLUME_DOMAINS])}")
    if fmt != "geotiff":
        get_format(fmt)
    if n < 1:
        raise SegflowError(f"-n must be at least 1, got {n}")
    check_size(size)  # before anything is written
    out = Path(out)
    schema = DOMAINS[domain][1]
    from rich.progress import Progress

    def samples():
        with Progress(disable=not progress, transient=False) as bar:
            task = bar.add_task(f"synth {domain}", total=n)
            for i in range(n):
                s = synthesize(domain, seed=seed, index=i, size=size, difficulty=difficulty,
                               n_objects=n_objects)
                yield Sample(f"{domain}_{seed}_{i:05d}", s.image, s.panoptic, s.instances,
                             s.semantic)
                bar.advance(task)

    if fmt == "geotiff":  # RGB and class-id GeoTIFFs at made-up UTM coordinates
        from segflow.geo import synth as geo_synth

        geo_synth.write(out, schema, ((s.name, s.image, s.semantic.ids) for s in samples()),
                        seed=seed, size=size)
        return out
    write_dataset(out, fmt, schema, samples(),
                  meta={"domain": domain, "seed": seed, "size": size, "difficulty": difficulty})
    return out
