"""``segflow agree`` and ``segflow consensus``: annotator agreement and consensus labels."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from segflow.cli._common import console, emit_json

AGREE_EPILOG = """
Each argument is one annotator's labels of the same images, as a dataset in any format segflow
reads (folders, coco, coco_panoptic, cityscapes, voc, yolo). Reported per pair of annotators:
mIoU, mean Dice, boundary F1 (boundary pixels within --tolerance px, per class) and, for
instance and panoptic, PQ (the first of the pair as ground truth); per class over all pairs;
per image, worst first. With -o, one disagreement heat-map PNG per image (yellow: one annotator
off the majority, red: all).

**Examples**

    segflow agree labels/alice labels/bob --task semantic

    segflow agree alice bob carol --task panoptic -o out/heatmaps --json

    segflow agree alice-coco bob-coco --task instance --tolerance 3
"""

CONSENSUS_EPILOG = """
**Methods**: majority (per-pixel vote; ties go to the lowest class id, objects need more than
half of the annotators), staple (SimpleITK's multi-label STAPLE). For instance and panoptic
labels, objects are matched across annotators by mask IoU (Hungarian) before voting.

**Examples**

    segflow consensus alice bob carol -o labels/consensus --method majority

    segflow consensus alice bob carol -o labels/staple --method staple --task panoptic

    segflow consensus a-coco b-coco c-coco -o out/objects --task instance --format coco
"""


def agree_command(
    datasets: list[Path] = typer.Argument(..., help="Two or more annotator datasets."),
    task: str = typer.Option("semantic", "--task", help="semantic, instance or panoptic."),
    out: Path = typer.Option(None, "-o", "--out", help="Write disagreement heat-maps here."),
    tolerance: int = typer.Option(2, "--tolerance", help="Boundary F1 tolerance in pixels."),
    src_format: str = typer.Option(None, "--from", help="Input format (default: detected)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Measure how well annotators agree: mIoU, boundary F1 and PQ per pair, per class and
    per image, with disagreement heat-maps."""
    from segflow.quality import agree

    res = agree(datasets, task=task, tolerance=tolerance, out=out, fmt=src_format,
                progress=not json_out and sys.stderr.isatty())
    if json_out:
        emit_json(res)
        return
    _print_agreement(res)


def _f(v) -> str:
    return "—" if v is None else f"{v:.4f}"


def _print_agreement(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console()
    has_pq = res["task"] != "semantic"
    short = {p: Path(p).name for p in res["annotators"]}
    if len(set(short.values())) < len(short):  # same folder names: show the paths
        short = {p: p for p in res["annotators"]}
    t = Table(title=f"agreement ({res['task']}, {res['images']} images, boundary tolerance "
                    f"{res['tolerance']} px)")
    for c in ("annotator", "annotator", "mIoU", "Dice", "boundary F1", *(["PQ"] if has_pq else [])):
        t.add_column(c, overflow="fold")
    for p in res["pairs"]:
        t.add_row(short[p["a"]], short[p["b"]], _f(p["miou"]), _f(p["dice"]), _f(p["boundary_f1"]),
                  *([_f(p["pq"])] if has_pq else []))
    out.print(t)
    t = Table(title="per class (all pairs)")
    for c in ("class", "IoU", "Dice", "boundary F1"):
        t.add_column(c)
    for name, v in res["per_class"].items():
        t.add_row(name, _f(v["iou"]), _f(v["dice"]), _f(v["boundary_f1"]))
    out.print(t)
    t = Table(title="worst images")
    for c in ("image", "mIoU", "boundary F1", *(["PQ"] if has_pq else []), "pixels disagreed"):
        t.add_column(c)
    for r in res["per_image"][:5]:
        t.add_row(r["name"], _f(r["miou"]), _f(r["boundary_f1"]),
                  *([_f(r["pq"])] if has_pq else []), f"{100 * r['disagreement']:.1f}%")
    out.print(t)
    for c in res["confused"][:3]:
        out.print(f"most confused: {c['classes'][0]} / {c['classes'][1]}: {c['pixels']} px",
                  highlight=False)
    if res["outputs"]:
        out.print(f"{len(res['outputs'])} heat-map(s) -> {Path(res['outputs'][0]).parent}",
                  highlight=False)


def consensus_command(
    datasets: list[Path] = typer.Argument(..., help="Two or more annotator datasets."),
    out: Path = typer.Option(..., "-o", "--out", help="Output dataset folder."),
    method: str = typer.Option("majority", "--method", help="majority or staple."),
    task: str = typer.Option("semantic", "--task", help="semantic, instance or panoptic."),
    to: str = typer.Option(None, "--format",
                           help="Output format (default: folders; coco for instance)."),
    src_format: str = typer.Option(None, "--from", help="Input format (default: detected)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Merge annotators into one consensus dataset by majority vote or STAPLE."""
    from segflow.quality import consensus

    res = consensus(datasets, out, task=task, method=method, to=to, fmt=src_format,
                    progress=not json_out and sys.stderr.isatty())
    if json_out:
        emit_json(res)
    else:
        console.print(f"{res['images']} image(s): {res['method']} consensus of "
                      f"{len(res['annotators'])} annotators -> {out} ({res['format']})",
                      highlight=False)
