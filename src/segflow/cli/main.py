"""``segflow`` command line (Typer). Every user mistake prints one line and exits 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from segflow import __version__, resources
from segflow.cli import scale as _scale
from segflow.cli._common import console, emit_json, error_line, parse_extra_params
from segflow.errors import SegflowError
from segflow.ops.threshold import THRESHOLD_METHODS

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
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    max_pixels: int | None = typer.Option(
        None, "--max-pixels", help="Refuse images with more pixels (default 100000000)."),
) -> None:
    _geo.show_geo_warnings()  # raster warnings (no CRS, ...) as one plain line
    if max_pixels is not None:  # for this command only; it wins over SEGFLOW_MAX_PIXELS
        from segflow.io import pixel_limit

        ctx.with_resource(pixel_limit(max_pixels))


@app.command(epilog="""
**Examples**

    segflow inspect photo.jpg scans/

    segflow inspect --json cells.tif

    segflow inspect scan.nii.gz dicom/series1/     # shape, spacing, orientation, HU range
""")
def inspect(
    images: list[Path] = typer.Argument(..., help="Image files or folders (walked recursively)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
) -> None:
    """Report size, dtype, brightness, contrast, noise, sharpness and histogram bimodality,
    and suggest a starting pipeline with the reason. For volumes (NIfTI, DICOM series folders):
    shape, spacing, orientation and the intensity range (HU for CT, percentiles for MR)."""
    from rich.table import Table

    from segflow.cli.volume import inspect_volumes, print_volume_table, split_volumes
    from segflow.inspect import inspect_image
    from segflow.io import list_images

    volumes, images = split_volumes(images)  # NIfTI files and DICOM series folders
    vrows, errors = inspect_volumes(volumes)
    rows = []
    for p in list_images(images) if images else []:
        try:
            rows.append(inspect_image(p).to_dict())
        except SegflowError as e:
            errors.append(str(e))
    if json_out:
        emit_json({"images": rows, "errors": errors, **({"volumes": vrows} if volumes else {})})
    elif vrows and not rows:
        print_volume_table(vrows)
        for e in errors:
            error_line(e)
    else:
        if vrows:
            print_volume_table(vrows)
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
            out.print(f"{r['path']}: try segflow run {r['suggestion']} — {r['reason']}",
                      highlight=False)
        for e in errors:
            error_line(e)
    if errors:
        raise typer.Exit(1)


RUN_EPILOG = f"""
**Examples**

    segflow run coins coins.png -o out/coins     # a built-in pipeline, by name

    segflow run my_pipeline.yaml scans/ -o out/scans --workers 2 --save-steps

    segflow run cells photos/ -o out --json

    segflow run otsu scans/ct.nii.gz -o out/ct    # volumes: 3-D steps only

    segflow run otsu s3://bucket/scans -o s3://bucket/masks --engine ray   # object storage, Ray

Built-in pipelines: {', '.join(resources.names('pipelines'))}. `segflow examples copy DIR` writes
them (and the example training configs) out as files to read and edit.
"""


@app.command(epilog=RUN_EPILOG)
def run(
    pipeline: Path = typer.Argument(..., help="Pipeline file (YAML or JSON) or a built-in name."),
    inputs: list[str] = typer.Argument(..., help="Image files or folders (recursive), or URLs "
                                       "(s3://bucket/prefix, gs://..., memory://...)."),
    out: str = typer.Option(..., "-o", "--out", help="Output folder or URL."),
    workers: int = typer.Option(1, "-w", "--workers", min=1, help="Parallel processes (local), "
                                "or CPUs of the local Ray (ray)."),
    save_steps: bool = typer.Option(False, "--save-steps", help="Also write every intermediate."),
    no_overlay: bool = typer.Option(False, "--no-overlay", help="Skip the overlay PNGs."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
    engine: str = _scale.engine_option(),
    ray_address: str = _scale.address_option(),
) -> None:
    """Run a pipeline on images and folders: mask, instances, regions JSON and overlay per image.
    Images that fail are listed; the others still finish (exit 1 if any failed)."""
    from segflow.cli.volume import split_volumes
    from segflow.io import list_images
    from segflow.pipeline import RunReport, load_pipeline, run_pipeline
    from segflow.remote import as_path_or_url

    spec = load_pipeline(pipeline)
    eng = _scale.make_engine(engine, workers, ray_address)
    urls, local_inputs = _scale.split_urls(inputs)
    volumes, local_inputs = split_volumes(local_inputs)  # NIfTI / DICOM: the 3-D steps
    inputs = [*local_inputs, *urls]
    out = as_path_or_url(out)
    vres = []
    if volumes:
        from segflow.volume.pipeline import run_volumes

        if isinstance(out, str):
            raise SegflowError(f"{out}: volumes are written to a local folder; give -o a path")
        vres = run_volumes(spec, volumes, out)
    if not volumes or urls or (inputs and list_images(local_inputs)):
        report = run_pipeline(spec, inputs, out, engine=eng, save_steps=save_steps,
                              overlay=not no_overlay, progress=not json_out and sys.stderr.isatty())
        report.results.extend(vres)
    else:
        report = RunReport(spec.name, vres)
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


_SEGMENTERS = ("threshold", "kmeans", "watershed", "slic", "grabcut", *THRESHOLD_METHODS)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog=f"""
**Methods**: threshold (or {', '.join(THRESHOLD_METHODS)}), kmeans, watershed, slic, grabcut.
Parameters are those of the pipeline step of the same name, given as `--name value`.

**Examples**

    segflow segment otsu coins.png -o out/

    segflow segment kmeans photo.jpg --k 4 --space lab -o out/ --json

    segflow segment grabcut photo.jpg --box "[50, 40, 300, 260]" -o out/

    segflow segment watershed cells.png --min-distance 5 -o out/

    segflow segment otsu scan.nii.gz -o out/       # writes out/scan_mask.nii.gz (3-D Otsu)
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
    from segflow.volume.io import is_volume_path

    if is_volume_path(image):  # NIfTI or a DICOM series folder: OUT/NAME_mask.nii.gz
        from segflow.cli.volume import segment_volume

        return segment_volume(method, params, image, out, json_out)
    if method in THRESHOLD_METHODS:
        params = {"method": method, **params}
        method = "threshold"
    if method not in _SEGMENTERS:
        raise ConfigError(f"unknown method {method!r}; use one of {', '.join(_SEGMENTERS)}")
    steps: list = []
    if method == "watershed":
        steps = ["grayscale", {"blur": {"sigma": 1.0}}, "threshold", "fill_holes"]
    steps.append({method: params})
    tm = params.get("method", "otsu") if method == "threshold" else None
    info = THRESHOLD_METHODS.get(tm) if isinstance(tm, str) else None
    if method == "grabcut" or (info is not None and info.binary):
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


from segflow.cli import agree as _agree  # noqa: E402
from segflow.cli import assess as _assess  # noqa: E402
from segflow.cli import data as _data  # noqa: E402
from segflow.cli import examples as _examples  # noqa: E402
from segflow.cli import geo as _geo  # noqa: E402
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
app.command("worker")(_studio.worker_command)
app.add_typer(_examples.app, name="examples")
app.command("agree", epilog=_agree.AGREE_EPILOG)(_agree.agree_command)
app.command("consensus", epilog=_agree.CONSENSUS_EPILOG)(_agree.consensus_command)
app.command("vectorize", epilog=_geo.VECTORIZE_EPILOG)(_geo.vectorize_command)
app.command("assess", epilog=_assess.ASSESS_EPILOG)(_assess.assess_command)


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
        from segflow._extras import extra_for_module, missing_message

        if isinstance(e, ModuleNotFoundError) and (extra := extra_for_module(e.name)):
            error_line(missing_message(extra, e.name))  # an import no require() guarded
            sys.exit(2)
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
