"""``segflow data ...``: synthetic datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from segflow.cli._common import console, emit_json
from segflow.errors import SegflowError
from segflow.formats import FORMAT_NAMES, formats_help

_NAMES = ", ".join(FORMAT_NAMES)

app = typer.Typer(help="Datasets: generate synthetic sets.", no_args_is_help=True,
                  rich_markup_mode="markdown")


MAX_SCENES = 1_000_000  # one synthetic set; more is a mistake (or a full disk) waiting to happen


@app.command(epilog=f"""
**Domains**: street, agriculture, medical, aerial, retail; medical3d writes NIfTI volumes
(images/, labels/, schema.json; --format is ignored). **Formats**: {formats_help()}; geotiff
(RGB and class-id GeoTIFFs at made-up UTM 32N coordinates, 0.5 m pixels; needs the geo extra).

**Examples**

    segflow data synth street -n 200 --size 256 --seed 1 -o data/street-train

    segflow data synth retail -n 50 --seed 99 --format coco -o data/retail-val

    segflow data synth medical -n 20 --difficulty hard --format coco_panoptic -o data/ct

    segflow data synth medical3d -n 10 --size 96 -o data/ct3d

    segflow data synth aerial -n 4 --size 1024 --format geotiff -o data/aerial-geo
""")
def synth(
    domain: str = typer.Argument(..., help="Application domain."),
    n: int = typer.Option(100, "-n", help="Number of images."),
    size: int = typer.Option(256, "--size", help="Image side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Seed; sets with different seeds never share a scene."),
    fmt: str = typer.Option("folders", "--format", help=f"Output format: {_NAMES}."),
    difficulty: str = typer.Option("medium", "--difficulty", help="easy, medium or hard."),
    n_objects: int = typer.Option(None, "--objects", help="Things per image (default: the domain's)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Generate a synthetic set with exact semantic, instance and panoptic ground truth."""
    from segflow.synth import VOLUME_DOMAINS
    from segflow.synth.export import export_synthetic

    if not 1 <= n <= MAX_SCENES:
        raise SegflowError(f"-n must be 1..{MAX_SCENES} scenes, got {n}")
    if domain in VOLUME_DOMAINS:
        VOLUME_DOMAINS[domain][0](out, n=n, seed=seed, size=size, difficulty=difficulty,
                                  n_lesions=n_objects, progress=not json_out and sys.stderr.isatty())
        fmt = "nifti"
    else:
        export_synthetic(domain, out, n=n, seed=seed, size=size, fmt=fmt, difficulty=difficulty,
                         n_objects=n_objects, progress=not json_out and sys.stderr.isatty())
    if json_out:
        emit_json({"domain": domain, "n": n, "format": fmt, "outputs": [str(out)]})
    else:
        console.print(f"{n} {domain} images ({fmt}) -> {out}")


def convert_command(
    src: Path = typer.Argument(..., help="Source dataset: a folder, or a COCO / COCO panoptic "
                               "JSON file."),
    out: Path = typer.Option(..., "-o", "--out", help="Destination folder."),
    to: str = typer.Option(..., "--to", help=f"Target format: {_NAMES}."),
    src_format: str = typer.Option(None, "--from", help=f"Source format (default: detected): "
                                   f"{_NAMES}."),
    images: Path = typer.Option(None, "--images", help="Folder of the images, when they are not "
                                "where the annotations say (beside the JSON, images/)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Convert a dataset between formats and say exactly what the target cannot hold."""
    from segflow.formats.convert import convert

    lost = convert(src, out, to=to, src_format=src_format, images=images,
                   progress=not json_out and sys.stderr.isatty())
    if json_out:
        emit_json({"outputs": [str(out)], "format": to, "lost": lost})
        return
    console.print(f"{src} -> {out} ({to})")
    for item in lost:
        console.print(f"lost: {item}", highlight=False)
    if not lost:
        console.print("lossless")


CONVERT_EPILOG = f"""
**Formats**: {formats_help()}.

**Examples**

    segflow convert data/street -o data/street-cityscapes --to cityscapes

    segflow convert export/result.json -o data/ls --to folders   # Label Studio's COCO export

    segflow convert annotations/panoptic_val2017.json -o data/val --to cityscapes --images val2017

    segflow convert data/street-pan -o data/street-coco --to coco     # drops stuff, says so

    segflow convert data/retail-coco -o data/retail-voc --to voc --from coco
"""
