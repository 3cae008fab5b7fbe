"""``segflow plan DATA``: the dataset's fingerprint and the training config chosen from it, and
the ``segflow train DATA --minutes N`` form (plan, train, evaluate)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from segflow.cli._common import console, emit_json, error_line

PLAN_EPILOG = """
**Examples**

    segflow data synth street -n 300 --seed 1 -o data/street

    segflow plan data/street --minutes 8 -o street.yaml          # then: segflow train street.yaml

    segflow plan data/retail --task instance --minutes 10 -o retail.yaml

    segflow plan data/street --task panoptic --preset balanced --steps 2000 -o pan.yaml

    segflow plan data/cells --device cuda --minutes 30 --json

The config has a comment on every choice saying why. The step count comes from the budget and
a few timed steps (cached per set-up in ~/.cache/segflow/throughput.json, so the same data and
budget give the same plan; --remeasure times again); --steps fixes it.
"""

TASK_HELP = "semantic, instance (Mask R-CNN) or panoptic (U-Net with a distance head)."
PRESET_HELP = "cpu-fast (default on cpu), balanced or gpu-quality (default on cuda)."


def _print_plan(plan, path: Path | None) -> None:
    fp = plan.fingerprint
    console.print(f"[bold]{plan.data}[/bold]: {fp.n_images} images, {fp.kind} labels, "
                  f"{fp.width[1]}x{fp.height[1]} px, channels {fp.channels}", highlight=False)
    for n in plan.notes:
        console.print(f"note: {n}", highlight=False)
    c = plan.config
    args = c["model"]["args"]
    console.print(f"task {plan.task}, preset {plan.preset}: {c['model']['name']} "
                  f"{', '.join(f'{k}={v}' for k, v in args.items() if k not in ('image_mean', 'image_std'))}",
                  highlight=False)
    sps = f", {plan.seconds_per_step:.3f} s/step" if plan.seconds_per_step else ""
    console.print(f"{plan.steps} steps of {c['train']['batch_size']}{sps} "
                  f"({plan.why['train.max_steps']})", highlight=False)
    if path:
        console.print(f"config -> {path}", highlight=False)


def plan_command(
    data: Path = typer.Argument(..., help="Labelled dataset folder (any format segflow reads)."),
    task: str = typer.Option(None, "--task", help=TASK_HELP),
    minutes: float = typer.Option(10.0, "--minutes", help="Training time budget in minutes."),
    steps: int = typer.Option(None, "--steps", help="Fix the step count (no timed steps)."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    preset: str = typer.Option(None, "--preset", help=PRESET_HELP),
    out: Path = typer.Option(None, "-o", "--out", help="Write the config here (YAML)."),
    run_dir: str = typer.Option(None, "--run-dir", help="The config's out: folder "
                                "(default runs/<data>-<task>)."),
    val: Path = typer.Option(None, "--val", help="Held-out folder (default: a split of DATA)."),
    remeasure: bool = typer.Option(False, "--remeasure", help="Time the steps again."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Read a labelled dataset's fingerprint (sizes, channels, intensities, class frequencies,
    object sizes) and write the training config chosen from it, with the reason for each
    choice."""
    from segflow.train.auto import save_plan
    from segflow.train.plan import default_cache, make_plan

    plan = make_plan(data, task=task, minutes=minutes, steps=steps, device=device, preset=preset,
                     out=run_dir, val=val, cache=default_cache(), remeasure=remeasure)
    path = save_plan(plan, out) if out else None
    if json_out:
        emit_json({"config": plan.config, "why": plan.why, "notes": plan.notes,
                   "fingerprint": plan.fingerprint.to_dict(), "seconds_per_step":
                   plan.seconds_per_step, "path": str(path) if path else None})
        return
    if path is None:
        sys.stdout.write(plan.to_yaml())
    _print_plan(plan, path)


def train_data(data: Path, *, task: str | None, minutes: float, steps: int | None, device: str,
               preset: str | None, val: Path | None, run_dir: str | None, json_out: bool) -> None:
    """The ``segflow train DATA`` form."""
    from segflow.train.auto import auto_train
    from segflow.train.plan import default_cache

    dev = device
    if dev == "auto":
        import torch

        dev = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        res = auto_train(data, task=task, minutes=minutes, steps=steps, device=dev, preset=preset,
                         val=val, out=run_dir, cache=default_cache(),
                         progress=not json_out and sys.stderr.isatty())
    except KeyboardInterrupt:
        error_line("interrupted; last.pt holds the last finished epoch", "stopped")
        raise typer.Exit(130) from None
    if json_out:
        emit_json({"config": str(res.config_path), "out": res.out, "steps": res.steps,
                   "metrics": res.metrics, "minutes": round(res.minutes, 2),
                   "notes": res.plan.notes})
        return
    _print_plan(res.plan, None)
    m = res.metrics
    if "pq" in m:
        score = f"PQ {m['pq']:.4f} (things {m['pq_things']:.4f}, stuff {m['pq_stuff']:.4f})"
    elif "ap50" in m:
        score = f"mask AP {m['ap']:.4f}, AP50 {m['ap50']:.4f}"
    elif "miou" in m:
        score = f"mIoU {m['miou']:.4f}"
    else:
        score = "no held-out images to score"
    held = f" on {m['held_out_images']} held-out images" if "held_out_images" in m else ""
    console.print(f"{res.steps} steps in {res.minutes:.1f} min; {score}{held}", highlight=False)
    console.print(f"config saved: {res.config_path}  (segflow train {res.config_path} "
                  "reproduces the run)", highlight=False)
    console.print(f"model: {Path(res.out) / 'last.pt'}", highlight=False)
