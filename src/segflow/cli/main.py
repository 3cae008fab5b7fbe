"""``segflow`` command line (Typer). Every user mistake prints one line and exits 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from segflow import __version__
from segflow.cli._common import console, emit_json, error_line, parse_extra_params
from segflow.errors import SegflowError

app = typer.Typer(
    name="segflow",
    help="segflow: image segmentation workbench. Preprocessing and classical segmentation "
         "(`inspect`, `segment`, `run` pipelines); deep training of semantic, instance (Mask "
         "R-CNN) and panoptic models, planned from your data in a time budget (`plan`, `train "
         "DATA --minutes N`, or `train CONFIG.yaml`); `predict`, `eval` (mIoU, mask AP, PQ) and "
         "`export` (ONNX, TorchScript); dataset formats and synthetic data (`data`, `convert`: "
         "COCO, COCO panoptic, Cityscapes, VOC, YOLO, folders); and `studio`, a web app to "
         "annotate, review and pre-label. Start: `segflow data synth street -n 300 -o "
         "data/street` then `segflow train data/street --minutes 8`.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"segflow {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    max_pixels: int | None = typer.Option(
        None, "--max-pixels", help="Refuse images with more pixels (default 100000000)."),
) -> None:
    if max_pixels is not None:
        from segflow.io import set_max_pixels

        set_max_pixels(max_pixels)


@app.command(epilog="""
**Examples**

    segflow inspect photo.jpg scans/

    segflow inspect --json cells.tif
""")
def inspect(
    images: list[Path] = typer.Argument(..., help="Image files or folders (walked recursively)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Report size, dtype, brightness, contrast, noise, sharpness and histogram bimodality,
    and suggest a starting pipeline with the reason."""
    from rich.table import Table

    from segflow.inspect import inspect_image
    from segflow.io import list_images

    rows, errors = [], []
    for p in list_images(images):
        try:
            rows.append(inspect_image(p).to_dict())
        except SegflowError as e:
            errors.append(str(e))
    if json_out:
        emit_json({"images": rows, "errors": errors})
    else:
        from rich.console import Console

        t = Table(title="image characteristics")
        for col in ("image", "size", "dtype", "ch", "mean", "std", "noise", "sharp", "eta",
                    "pipeline"):
            t.add_column(col, overflow="fold", no_wrap=col != "image")
        for r in rows:
            t.add_row(Path(r["path"]).name, f"{r['width']}x{r['height']}", r["dtype"],
                      str(r["channels"]), f"{r['brightness']:.0f}", f"{r['contrast']:.1f}",
                      f"{r['noise']:.2f}", f"{r['sharpness']:.0f}", f"{r['bimodality']:.2f}",
                      r["suggestion"])
        out = Console()
        out.print(t)
        out.print("mean/std: grey level and contrast; noise: sigma; sharp: Laplacian variance; "
                  "eta: histogram bimodality (Otsu)", style="dim", highlight=False)
        for r in rows:
            out.print(f"{r['path']}: try pipelines/{r['suggestion']}.yaml — {r['reason']}",
                      highlight=False)
        for e in errors:
            error_line(e)
    if errors:
        raise typer.Exit(1)


@app.command(epilog="""
**Examples**

    segflow run pipelines/coins.yaml coins.png -o out/coins

    segflow run pipelines/otsu.yaml scans/ -o out/scans --workers 2 --save-steps

    segflow run cells photos/ -o out --json     # a name looks in pipelines/
""")
def run(
    pipeline: Path = typer.Argument(..., help="Pipeline file (YAML or JSON)."),
    inputs: list[Path] = typer.Argument(..., help="Image files or folders (recursive)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder."),
    workers: int = typer.Option(1, "-w", "--workers", min=1, help="Parallel processes."),
    save_steps: bool = typer.Option(False, "--save-steps", help="Also write every intermediate."),
    no_overlay: bool = typer.Option(False, "--no-overlay", help="Skip the overlay PNGs."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Run a pipeline on images and folders: mask, instances, regions JSON and overlay per image.
    Images that fail are listed; the others still finish (exit 1 if any failed)."""
    from segflow.pipeline import load_pipeline, run_pipeline

    spec = load_pipeline(pipeline)
    report = run_pipeline(spec, inputs, out, workers=workers, save_steps=save_steps,
                          overlay=not no_overlay, progress=not json_out and sys.stderr.isatty())
    if json_out:
        d = report.to_dict()
        d["outputs"] = [o for r in report.results for o in r.outputs]
        d["errors"] = [r.error for r in report.failures]
        emit_json(d)
    else:
        ok = len(report.results) - len(report.failures)
        console.print(f"{spec.name}: {ok} image(s) done, {len(report.failures)} failed -> {out}")
    for r in report.failures:
        error_line(r.error, "failed")
    if report.failures:
        raise typer.Exit(1)


_THRESHOLD_ALIASES = {"otsu", "multi_otsu", "triangle", "li", "yen", "fixed", "adaptive_mean",
                      "adaptive_gaussian"}
_SEGMENTERS = ("threshold", "kmeans", "watershed", "slic", "grabcut", *sorted(_THRESHOLD_ALIASES))


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog="""
**Methods**: threshold (or otsu, multi_otsu, triangle, li, yen, fixed, adaptive_mean,
adaptive_gaussian), kmeans, watershed, slic, grabcut. Parameters are those of the pipeline step
of the same name, given as `--name value`.

**Examples**

    segflow segment otsu coins.png -o out/

    segflow segment kmeans photo.jpg --k 4 --space lab -o out/ --json

    segflow segment grabcut photo.jpg --box "[50, 40, 300, 260]" -o out/

    segflow segment watershed cells.png --min-distance 5 -o out/
""")
def segment(
    ctx: typer.Context,
    method: str = typer.Argument(..., help="Segmentation method (see below)."),
    image: Path = typer.Argument(..., help="Image file."),
    out: Path = typer.Option(..., "-o", "--out", help="Output folder."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Segment one image with one method; writes mask, instances, regions JSON and overlay."""
    from segflow.errors import ConfigError
    from segflow.pipeline import parse_pipeline, run_image

    params = parse_extra_params(ctx.args)
    if method in _THRESHOLD_ALIASES:
        params = {"method": method, **params}
        method = "threshold"
    if method not in _SEGMENTERS:
        raise ConfigError(f"unknown method {method!r}; use one of {', '.join(_SEGMENTERS)}")
    steps: list = []
    if method == "watershed":
        steps = ["grayscale", {"blur": {"sigma": 1.0}}, "threshold", "fill_holes"]
    steps.append({method: params})
    if method in ("threshold", "grabcut") and params.get("method") != "multi_otsu":
        steps.append("label")
    if method in ("threshold", "grabcut", "watershed", "slic") and "label" in steps or \
            method in ("watershed", "slic"):
        steps.append("regions")
    spec = parse_pipeline({"name": method, "steps": steps}, source=f"segment {method}")
    r = run_image(spec, image, out)
    if json_out:
        emit_json({"method": method, "input": str(image), "threshold": r.threshold,
                   "n_objects": r.n_objects, "regions": r.regions or [], "outputs": r.outputs,
                   "notes": r.notes})
    else:
        thr = f", threshold {r.threshold}" if r.threshold is not None else ""
        objs = f", {r.n_objects} objects" if r.n_objects is not None else ""
        console.print(f"{method}{thr}{objs} -> {out}")


from segflow.cli import data as _data  # noqa: E402
from segflow.cli import models as _models  # noqa: E402
from segflow.cli import plan as _plan  # noqa: E402
from segflow.cli import studio as _studio  # noqa: E402
from segflow.cli.evalcmd import EPILOG as _EVAL_EPILOG  # noqa: E402
from segflow.cli.evalcmd import eval_command as _eval  # noqa: E402

app.add_typer(_data.app, name="data")
app.command("train", epilog=_models.TRAIN_EPILOG)(_models.train_command)
app.command("plan", epilog=_plan.PLAN_EPILOG)(_plan.plan_command)
app.command("predict", epilog=_models.PREDICT_EPILOG)(_models.predict_command)
app.command("export")(_models.export_command)
app.add_typer(_models.models_app, name="models")
app.command("convert", epilog=_data.CONVERT_EPILOG)(_data.convert_command)
app.command("eval", epilog=_EVAL_EPILOG)(_eval)
app.add_typer(_studio.app, name="studio")


def main() -> None:
    """Entry point: run the app, turning SegflowError into one line and exit code 2."""
    try:
        rv = app(standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except SegflowError as e:
        error_line(e)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        console.print("interrupted; files already written are complete")
        sys.exit(130)
    except Exception as e:
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # usage errors from Typer's click
            e.show()
            sys.exit(e.exit_code)
        if os.environ.get("SEGFLOW_DEBUG"):
            raise
        error_line(f"{type(e).__name__}: {e} (a bug in segflow: rerun with SEGFLOW_DEBUG=1 "
                   "for the traceback and report it)", "internal error")
        sys.exit(1)

if __name__ == "__main__":
    main()
