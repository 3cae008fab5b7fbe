"""``segflow assess``: a checkpoint against a brief's targets, with intervals and a verdict."""

from __future__ import annotations

from pathlib import Path

import typer

from segflow.cli._common import emit_json

ASSESS_EPILOG = """
**The brief** (YAML): `task: semantic|instance|panoptic` and `targets:`, a list such as
`"miou >= 0.80"`, `"iou[pedestrian] >= 0.60"`, `"dice[tumor] >= 0.85"`, `"ap50 >= 0.85"`,
`"pq >= 0.60"`. Metrics: semantic miou, dice, pixel_accuracy, fw_iou, per class iou[C],
dice[C]; panoptic pq, sq, rq, pq_things, pq_stuff, per class pq[C], sq[C], rq[C]; instance
ap, ap50, ap75. Values are `segflow eval`'s on the checkpoint's predictions; intervals are a
percentile bootstrap over images (--resamples, --seed). Exit 0 when the brief is met, 1 when
the verdict is "retrain", 2 on a mistake.

**--history** (JSON): `[{"n_train_images": 50, "metric": 0.61}, ...]` from earlier runs; its
slope says whether more data is likely to help.

**Examples**

    segflow assess runs/street/best.pt --gt data/street-test --brief brief.yaml

    segflow assess best.pt --gt data/test --brief brief.yaml --report assess.html --json

    segflow assess best.pt --gt data/test --brief brief.yaml --unlabelled incoming/ --next 20

    segflow assess best.pt --gt data/test --brief brief.yaml --history runs.json
"""


def assess_command(
    checkpoint: Path = typer.Argument(..., help="Checkpoint (.pt) from segflow train."),
    gt: Path = typer.Option(..., "--gt", help="Ground-truth dataset (any format with images)."),
    brief: Path = typer.Option(..., "--brief", help="Brief YAML: task and targets."),
    report: Path = typer.Option(None, "--report", help="Write an HTML report here."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
    unlabelled: Path = typer.Option(None, "--unlabelled", help="Folder of unlabelled images to "
                                    "rank for labelling."),
    n_next: int = typer.Option(10, "--next", help="How many next images to pick."),
    history: Path = typer.Option(None, "--history", help="Learning curve JSON (see below)."),
    resamples: int = typer.Option(1000, "--resamples", help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap's generator."),
    min_images: int = typer.Option(5, "--min-images", help="A class in fewer GT images lacks "
                                   "examples."),
    min_pixels: int = typer.Option(1000, "--min-pixels", help="...or with fewer GT pixels "
                                   "(semantic)."),
    min_objects: int = typer.Option(20, "--min-objects", help="...or fewer GT objects."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, mps or auto."),
) -> None:
    """Assess a checkpoint against the brief: each target's value, 95% CI and met/unmet, a
    per-class table, the worst images, a verdict ("meets the brief" or "retrain", with
    reasons) and the next images to label."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from segflow._extras import require
    from segflow.assess import assess, load_brief, load_history
    from segflow.errors import SegflowError

    require("deep", what="segflow assess")

    for name, v in (("--min-images", min_images), ("--min-pixels", min_pixels),
                    ("--min-objects", min_objects)):
        if not 0 <= v <= 10**12:
            raise SegflowError(f"{name} must be 0..10^12, got {v}")
    b = load_brief(brief)
    hist = load_history(history) if history is not None else None
    a = assess(checkpoint, gt, b, resamples=resamples, seed=seed, unlabelled=unlabelled,
               n_next=n_next, history=hist, device=device, min_images=min_images,
               min_pixels=min_pixels, min_objects=min_objects)
    d = a.to_dict()
    try:
        if report:
            from segflow.assess.report import write_assessment_report

            d["report"] = str(write_assessment_report(report, a, gt, checkpoint=str(checkpoint),
                                                      history=hist))
    finally:
        a.cleanup()
    if json_out:
        emit_json(d)
    else:
        out = Console()
        t = Table(title=f"{b.task} assessment: {a.verdict} ({a.measurement.n_images} images, "
                        f"95% CI from {a.measurement.resamples} bootstrap resamples)")
        for c in ("target", "value", "95% CI", "met"):
            t.add_column(c)
        for r in a.targets:
            t.add_row(escape(r.text), "—" if r.value is None else f"{r.value:.4f}",
                      f"{r.ci[0]:.4f} – {r.ci[1]:.4f}" if r.ci else "—", "yes" if r.met else "NO")
        out.print(t)
        for r in a.reasons:
            out.print(f"- {r}", highlight=False, markup=False)
        for note in a.measurement.notes:
            out.print(f"note: {note}", highlight=False, markup=False, style="dim")
        for n in a.next_images:
            out.print(f"next {n['rank']}: {n['path']} (uncertainty {n['uncertainty']:.3f})",
                      highlight=False, markup=False)
        if report:
            out.print(f"report: {d['report']}", highlight=False, markup=False)
    if a.verdict != "meets the brief":
        raise typer.Exit(1)
