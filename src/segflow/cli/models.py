"""``segflow train``, ``predict``, ``export`` and ``models show``: the deep-learning commands.
Torch is imported only when one of them runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from segflow._extras import require
from segflow.cli import scale as _scale
from segflow.cli._common import console, emit_json, error_line
from segflow.models.registry import MODELS

TRAIN_EPILOG = f"""
Two forms: **`segflow train DATA --minutes N`** plans a config from a labelled dataset folder
(see `segflow plan`), saves it, trains, and scores the model on held-out images; **`segflow
train CONFIG.yaml`** trains from a config file. Tasks: semantic (U-Net, DeepLabV3+, FPN),
instance (Mask R-CNN, `task: instance`) and panoptic (`--task panoptic`: a U-Net with a
distance head; or a semantic model + a Mask R-CNN fused by `segflow predict --things`).

**Examples**

    segflow data synth street -n 400 --seed 1 -o data/street-train

    segflow train data/street-train --minutes 8                 # plan, train, evaluate

    segflow train data/retail --task instance --minutes 10 --preset balanced

    segflow train street_unet                                # a shipped example config, by name

    segflow train configs/street_unet.yaml --resume          # continue runs/<name>/last.pt

    segflow train configs/street_unet.yaml --device cpu

    segflow train configs/street_unet.yaml --nproc 2        # torch DDP: 2 processes (gloo/NCCL)

    torchrun --nproc-per-node 4 -m segflow train configs/street_unet.yaml   # the same, by torchrun

    segflow train configs/ct3d_unet3d.yaml     # volumes: model unet3d, or unet + volume:

Ctrl-C saves `last.pt`; `--resume` continues exactly from it. `segflow examples copy .` writes the
shipped configs to `configs/` to edit.

**Models** (`model: {{name: ...}}`): {"; ".join(f"`{m.name}` ({m.task}) {m.summary}"
                                              for m in MODELS.values())}.
"""


def train_command(
    config: Path = typer.Argument(..., help="Training config (YAML), or a labelled dataset "
                                  "folder to plan a config for (with --minutes)."),
    resume: str = typer.Option(None, "--resume", help="Checkpoint to continue ('last' = out/last.pt).",
                               flag_value="last", is_flag=False),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
    minutes: float = typer.Option(None, "--minutes", help="DATA form: time budget (default 10)."),
    task: str = typer.Option(None, "--task", help="DATA form: semantic, instance or panoptic."),
    preset: str = typer.Option(None, "--preset", help="DATA form: cpu-fast, balanced or "
                               "gpu-quality."),
    steps: int = typer.Option(None, "--steps", help="DATA form: fix the step count."),
    val: Path = typer.Option(None, "--val", help="DATA form: held-out folder (default: a split)."),
    run_dir: str = typer.Option(None, "--run-dir", help="DATA form: output folder."),
    nproc: str = typer.Option("1", "--nproc", help="Config form: train on N processes with "
                              "torch DDP (one per GPU on CUDA; gloo on CPU)."),
) -> None:
    """Train a segmentation model (semantic, instance or panoptic) from a config file, or plan,
    train and evaluate one from a labelled dataset folder in a time budget."""
    require("deep", what="segflow train")
    from segflow.errors import SegflowError
    from segflow.train.distributed import check_nproc

    n = check_nproc(nproc)
    if config.is_dir():
        if n > 1:
            raise SegflowError("--nproc goes with a config file (plan one first: segflow plan "
                               "DATA, then segflow train OUT/plan.yaml --nproc N)")
        if resume:
            raise SegflowError("--resume needs the config file the run was planned into "
                               "(OUT/plan.yaml)")
        from segflow.cli.plan import train_data

        train_data(config, task=task, minutes=10.0 if minutes is None else minutes, steps=steps,
                   device=device, preset=preset, val=val, run_dir=run_dir, json_out=json_out)
        return
    if any(v is not None for v in (minutes, task, preset, steps, val, run_dir)):
        raise SegflowError(f"{config}: --minutes, --task, --preset, --steps, --val and --run-dir "
                           "go with a dataset folder, not a config file")
    if n > 1:
        from segflow.train.distributed import launch

        _check_config(config, device, n)  # bad input: one line before any process starts
        launch(n, _train_process, config, resume, device, json_out)
        return
    _train_config(config, resume, device, json_out)


def _check_config(config: Path, device: str, n: int) -> None:
    import torch

    from segflow.errors import SegflowError
    from segflow.train import load_config
    from segflow.train.trainer import pick_device

    cfg = load_config(config)
    if cfg.volume is not None:
        raise SegflowError(f"{config}: --nproc trains images; volume configs train on one process")
    if pick_device(device).type == "cuda" and n > torch.cuda.device_count():
        raise SegflowError(f"--nproc {n}: only {torch.cuda.device_count()} GPU(s) here; one "
                           "process per GPU")
    if cfg.train.batch_size % n:
        raise SegflowError(f"train.batch_size {cfg.train.batch_size} does not split evenly over "
                           f"{n} processes; make it a multiple of {n}")


def _train_process(config: Path, resume, device: str, json_out: bool) -> None:
    """One process of ``--nproc N``: errors as one line (from rank 0) and exit 2."""
    import os

    from segflow.errors import SegflowError

    try:
        _train_config(config, resume, device, json_out)
    except SegflowError as e:
        if os.environ.get("RANK", "0") == "0":
            error_line(e)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)


def _train_config(config: Path, resume, device: str, json_out: bool) -> None:
    from segflow.train import load_config
    from segflow.train.trainer import Trainer

    cfg = load_config(config)
    if cfg.volume is not None:  # NIfTI volumes: 2.5-D U-Net or unet3d
        from segflow.volume.train import VolumeTrainer as Trainer
    tr = Trainer(cfg, device=device, progress=not json_out and sys.stderr.isatty())
    if resume:
        tr.resume(Path(cfg.out) / "last.pt" if resume == "last" else resume)
    try:
        last = tr.fit()
    except KeyboardInterrupt:
        error_line(f"interrupted at step {tr.step}; saved {Path(cfg.out) / 'last.pt'} "
                   f"(continue with --resume)", "stopped")
        raise typer.Exit(130) from None
    finally:
        if hasattr(tr, "dist"):  # the image trainer; volumes train on one process
            tr.dist.close()
    if hasattr(tr, "dist") and not tr.dist.main:
        return
    d = {"out": cfg.out, "step": tr.step, "epoch": tr.epoch, "metrics": last,
         "outputs": [str(Path(cfg.out) / n) for n in ("last.pt", "best.pt", "metrics.jsonl",
                                                        "curves.png")]}
    if json_out:
        emit_json(d)
    else:
        key = "ap50" if cfg.task == "instance" else "miou"
        console.print(f"{cfg.name}: {tr.step} steps, val {key} {last.get(key, float('nan')):.4f}"
                      f" -> {cfg.out}")


PREDICT_EPILOG = """
**Examples**

    segflow predict runs/street/best.pt photos/ -o out/pred

    segflow predict runs/aerial/best.pt big.tif -o out/pred --tile 512 --overlap 64 --tta --probs

    segflow predict runs/street-unet/best.pt val/images -o out/pan --things runs/street-mrcnn/best.pt

    segflow predict runs/cells-dist/best.pt val/images -o out/pan --panoptic

    segflow predict runs/ct-unet3d/best.pt scans/ -o out/ct   # NIfTI in, NAME_mask.nii.gz out

    segflow predict runs/aerial/best.pt scene.tif -o out/geo --tile 512 --bands 4,3,2

    segflow predict s3://models/street.pt s3://bucket/photos -o s3://bucket/pred --engine ray

(the --things and --panoptic forms write COCO panoptic: score it with segflow eval --task
panoptic). Mask R-CNN checkpoints and U-Nets trained with a distance head
(loss.distance_weight > 0) write objects: NAME_instances.png (16-bit ids) and detections.json
(COCO results; segflow eval --task instance reads it). A GeoTIFF gives a GeoTIFF mask with its
CRS and transform, predicted window by window.
"""


def predict_command(
    checkpoint: str = typer.Argument(..., help="Checkpoint (.pt), a path or URL."),
    inputs: list[str] = typer.Argument(..., help="Images or folders, or URLs (s3://...)."),
    out: str = typer.Option(..., "-o", "--out", help="Output folder or URL."),
    tile: int = typer.Option(None, "--tile", help="Sliding-window size for large images."),
    overlap: int = typer.Option(64, "--overlap", help="Window overlap in pixels."),
    tta: bool = typer.Option(False, "--tta", help="Average with the horizontal flip."),
    probs: bool = typer.Option(False, "--probs", help="Also save class probabilities (.npy)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    things: Path = typer.Option(None, "--things", help="Mask R-CNN checkpoint: fuse its objects "
                                "with this semantic model's stuff into panoptic (COCO panoptic)."),
    panoptic: bool = typer.Option(False, "--panoptic", help="COCO panoptic from this semantic "
                                  "model alone: its stuff, and its things split into objects "
                                  "(by its distance head when it has one)."),
    score_threshold: float = typer.Option(0.5, "--score-threshold", help="Panoptic: lowest "
                                          "object score kept."),
    overlap_threshold: float = typer.Option(0.5, "--overlap-threshold", help="Panoptic: drop an "
                                            "object more than this covered by better ones."),
    min_stuff_area: int = typer.Option(64, "--min-stuff-area", help="Panoptic: smallest stuff "
                                       "segment in pixels."),
    bands: str = typer.Option(None, "--bands", help="GeoTIFF bands to use, 1-based, e.g. 4,3,2."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
    engine: str = _scale.engine_option(),
    ray_address: str = _scale.address_option(),
    workers: int = typer.Option(1, "-w", "--workers", min=1, help="Processes (local) or CPUs "
                                "of the local Ray (ray), each loading the model once."),
) -> None:
    """Predict masks (indexed PNG), objects and overlays for images and folders; with --things
    or --panoptic, panoptic segments (COCO panoptic); NIfTI volumes by 3-D sliding window."""
    require("deep", what="segflow predict")
    from segflow.cli.volume import split_volumes
    from segflow.errors import SegflowError
    from segflow.io import list_images
    from segflow.predict.predictor import Predictor
    from segflow.remote import as_path_or_url

    eng = _scale.make_engine(engine, workers, ray_address)
    urls, local_inputs = _scale.split_urls(inputs)
    volumes, images = split_volumes(local_inputs)
    out = as_path_or_url(out)
    checkpoint = as_path_or_url(checkpoint)
    if (volumes or things is not None or panoptic) and (urls or isinstance(out, str)):
        raise SegflowError("volumes and panoptic output are read and written locally; give "
                           "local paths (URLs work for plain image prediction)")
    if volumes and not (images and list_images(images)):  # NIfTI / DICOM: NAME_mask.nii.gz
        from segflow.volume.predict import predict_volumes

        written, failures = predict_volumes(checkpoint, volumes, out, device=device)
        return _report(written, failures, out, "volume masks", json_out)
    pr = Predictor(checkpoint, device=device)
    progress = not json_out and sys.stderr.isatty()
    if things is not None or panoptic:
        written, failures = pr.run_panoptic(
            inputs, out, Predictor(things, device=device) if things is not None else None,
            progress=progress, tile=tile,
            overlap=overlap, tta=tta, score_threshold=score_threshold,
            overlap_threshold=overlap_threshold, min_stuff_area=min_stuff_area)
    else:
        from segflow.geo.options import parse_bands

        written, failures = pr.run(
            [*images, *urls], out, tile=tile, overlap=overlap, tta=tta, probs=probs,
            progress=progress, raster={"bands": parse_bands(bands)},
            engine=None if engine == "local" and workers == 1 else eng)
    _report(written, failures, out, "files", json_out)


def _report(written: list, failures: list, out: Path, what: str, json_out: bool) -> None:
    """What ``segflow predict`` wrote, and each failure on a line of its own (exit 1 if any)."""
    if json_out:
        emit_json({"outputs": written, "errors": failures})
    else:
        console.print(f"{len(written)} {what} -> {out}")
    for f in failures:
        error_line(f, "failed")
    if failures:
        raise typer.Exit(1)


def export_command(
    checkpoint: Path = typer.Argument(..., help="Checkpoint (.pt)."),
    fmt: str = typer.Option("onnx", "--format", help="onnx or torchscript."),
    out: Path = typer.Option(None, "-o", "--out", help="Output file (default: next to the checkpoint)."),
) -> None:
    """Export a model with a dynamic image size (ONNX or TorchScript)."""
    require("deep", what="segflow export",
            modules=("torch", "torchvision") + (("onnx", "onnxruntime") if fmt == "onnx" else ()))
    from segflow.predict.export import export

    out = out or checkpoint.with_suffix(".onnx" if fmt == "onnx" else ".torchscript.pt")
    console.print(f"exported {export(checkpoint, out, fmt)}")


models_app = typer.Typer(help="Inspect checkpoints and the model registry.",
                         no_args_is_help=True)

MODELS_EPILOG = """
**Examples**

    segflow models list studio-data/            # a studio data folder (its models/) or a registry

    segflow models list http://127.0.0.1:8000 --token $SEGFLOW_TOKEN --json

    segflow models show m20261128-231500-3fa9c1 --data studio-data/

    segflow models show runs/street/best.pt     # a checkpoint file
"""


def _source(data: str, token: str | None):
    """(registry or None, url or None) for DATA|URL."""
    from segflow.registry import is_url, registry_of

    if is_url(data):
        return None, data
    return registry_of(data), None


def _token(token: str | None) -> str | None:
    import os

    return token or os.environ.get("SEGFLOW_TOKEN") or None


@models_app.command("list", epilog=MODELS_EPILOG)
def list_models(data: str = typer.Argument(..., help="Studio data folder, registry folder or "
                                           "studio URL (http://...)."),
                token: str = typer.Option(None, "--token", help="API token for a URL "
                                          "(default: $SEGFLOW_TOKEN)."),
                json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout.")
                ) -> None:
    """List the registered models: id, date, task, model, held-out metric, parent."""
    from segflow.registry import remote_list

    reg, url = _source(data, token)
    recs = reg.list() if reg is not None else remote_list(url, token=_token(token))
    if json_out:
        emit_json({"models": [r.to_dict() for r in recs]})
        return
    from rich.console import Console
    from rich.table import Table

    out = Console()
    if not recs:
        out.print(f"no models in {data}")
        return

    t = Table("id", "created", "task", "model", "metrics", "parent", "by")
    for r in recs:
        m = ", ".join(f"{k} {v:.3f}" for k, v in r.metrics.items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool))[:60]
        t.add_row(r.id, r.created_at, r.task, r.model, m, r.parent or "-", r.started_by or "-")
    out.print(t)


@models_app.command("show", epilog=MODELS_EPILOG)
def show(target: str = typer.Argument(..., help="Model id (with --data), or a checkpoint (.pt)."),
         data: str = typer.Option(None, "--data", help="Studio data folder, registry folder or "
                                  "studio URL holding the model id."),
         token: str = typer.Option(None, "--token", help="API token for a URL (default: "
                                   "$SEGFLOW_TOKEN)."),
         json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout.")) -> None:
    """Print a registered model's lineage (dataset snapshot, config, code and library
    versions, held-out metrics, parent, who started it), or a checkpoint's config, schema,
    data fingerprint, metrics and versions."""
    if data is None:
        return _show_checkpoint(Path(target), json_out)
    from segflow.registry import remote_get

    reg, url = _source(data, token)
    rec = reg.get(target) if reg is not None else remote_get(url, target, token=_token(token))
    d = rec.to_dict()
    if rec.folder is not None:
        d["checkpoint"] = str(rec.checkpoint)
    if json_out:
        emit_json(d)
        return
    ds = d["dataset"]
    lines = [f"[bold]{rec.id}[/bold]: {rec.task} {rec.model}, created {rec.created_at}"
             + (f" by {rec.started_by}" if rec.started_by else ""),
             f"parent: {rec.parent or '-'}",
             f"dataset: hash {ds.get('hash')}, {ds.get('n_images')} images, "
             f"{len(ds.get('annotations') or [])} annotations",
             f"metrics: {json.dumps(d['metrics'])}",
             f"code: {json.dumps(d['code'])}",
             f"versions: {json.dumps(d['versions'])}",
             f"config: {json.dumps(d['config'])[:400]}"]
    if rec.folder is not None:
        lines.append(f"checkpoint: {rec.checkpoint}")
    from rich.console import Console

    out = Console(soft_wrap=True)
    for line in lines:
        out.print(line, highlight=False)


def _show_checkpoint(checkpoint: Path, json_out: bool) -> None:
    require("deep", what="segflow models show")
    from segflow.train import checkpoint as ckpt

    ck = ckpt.load(checkpoint)
    d = {k: ck.get(k) for k in ("model", "step", "epoch", "data_fingerprint", "metrics",
                                "versions", "schema", "config")}
    if json_out:
        emit_json(d)
        return
    from rich.console import Console

    c = Console()
    c.print(f"[bold]{checkpoint}[/bold]: {d['model']['name']} {json.dumps(d['model']['args'])}")
    c.print(f"step {d['step']}, epoch {d['epoch']}, data fingerprint {d['data_fingerprint']}")
    c.print(f"metrics: {json.dumps(d['metrics'])}", highlight=False)
    c.print(f"versions: {json.dumps(d['versions'])}", highlight=False)
    c.print("classes: " + ", ".join(f"{x['id']}={x['name']}" for x in d["schema"]["classes"]))
