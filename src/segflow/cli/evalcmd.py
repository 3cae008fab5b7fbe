"""``segflow eval``: metrics of predictions against ground truth, as a table, JSON or report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from segflow.cli import scale as _scale
from segflow.cli._common import emit_json, error_line
from segflow.errors import SegflowError

EPILOG = """
**Inputs**: semantic — mask folders (or any dataset with semantic masks) with matching file
names, or NIfTI volumes (adds hd95_mm and surface_dice per class); without a schema.json the
class ids are read from the masks (said on stderr, and as `inferred_classes` in --json).
instance — COCO ground truth (folder or .json) + COCO results JSON (`segflow predict`'s
detections.json too). panoptic — COCO panoptic for both: a folder, or panopticapi's NAME.json
beside its NAME/ PNG folder (or segflow folders).

**Examples**

    segflow eval --task semantic --gt data/street-val --pred out/pred-masks --json

    segflow eval --task panoptic --gt data/val-coco-pan --pred out/pred-pan --report eval.html

    segflow eval --task instance --gt data/retail-val --pred out/detections.json

    segflow eval --task panoptic --gt coco/annotations/panoptic_val2017.json --pred out/pan

    segflow eval --task semantic --gt masks/gt --pred masks/pred     # ids read from the masks

    segflow eval --task semantic --gt data/ct3d --pred out/ct3d-pred --tolerance-mm 2

    segflow eval --task semantic --gt s3://bucket/val --pred s3://bucket/pred --engine ray

(URLs are copied to a temporary folder first; `--engine ray` scores semantic masks in Ray
tasks, the result is that of one pass.)
"""


def eval_command(
    task: str = typer.Option(..., "--task", help="semantic, instance or panoptic."),
    gt: str = typer.Option(..., "--gt", help="Ground truth (folder or JSON), a path or URL."),
    pred: str = typer.Option(..., "--pred", help="Predictions (folder or JSON), a path or URL."),
    num_classes: int = typer.Option(None, "--num-classes", help="Semantic, without a schema: "
                                    "ids 0..N-1 (default: the ids found in the masks)."),
    boundary: int = typer.Option(None, "--boundary-tolerance",
                                 help="Semantic: also boundary F1 with this tolerance (px)."),
    tolerance_mm: float = typer.Option(1.0, "--tolerance-mm",
                                       help="Volumes: surface Dice tolerance in mm."),
    report: Path = typer.Option(None, "--report", help="Write an HTML report here."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
    engine: str = _scale.engine_option(),
    ray_address: str = _scale.address_option(),
    workers: int = typer.Option(1, "-w", "--workers", min=1, help="Semantic: processes (local) "
                                "or CPUs of the local Ray (ray)."),
) -> None:
    """Evaluate predictions: mIoU/Dice/accuracy, mask AP, or PQ/SQ/RQ."""
    import tempfile

    from segflow import remote

    eng = _scale.make_engine(engine, workers, ray_address)
    if eng.name != "local" and task != "semantic":
        raise SegflowError(f"--engine {eng.name} scores semantic masks; {task} evaluation runs "
                           "locally")
    with tempfile.TemporaryDirectory(prefix="segflow-eval-") as tmp:
        gt_p, pred_p = (remote.download(u, Path(tmp) / k) if remote.is_url(u) else remote.local(u)
                        for k, u in (("gt", gt), ("pred", pred)))
        _eval(task, gt_p, pred_p, num_classes, boundary, tolerance_mm, report, json_out,
              None if eng.name == "local" and workers == 1 else eng)


def _eval(task, gt: Path, pred: Path, num_classes, boundary, tolerance_mm, report, json_out,
          engine) -> None:
    from rich.console import Console
    from rich.table import Table

    from segflow import evaluate

    out = Console()
    if task == "semantic":
        from segflow.volume.evaluate import is_volume_folder

        if is_volume_folder(gt):  # NIfTI masks: also HD95 and surface Dice in mm
            from segflow.cli.volume import eval_volumes

            return eval_volumes(gt, pred, num_classes, tolerance_mm, json_out)
        res, schema, worst, inferred = evaluate.evaluate_semantic(
            gt, pred, num_classes=num_classes, boundary_tolerance=boundary, engine=engine)
        d = res.to_dict()
        if inferred is not None:
            d["inferred_classes"] = inferred
            error_line(f"no schema.json: {len(inferred)} classes inferred from the masks "
                       f"(ids {_ids(inferred)}; 255 ignored); give --num-classes to set them",
                       "note")
        d["worst_images"] = [{"name": n, "miou": None if np.isnan(v) else v} for n, v in worst]
        if report:
            d["report"] = str(_semantic_report(report, res, worst))
        if json_out:
            emit_json(d)
            return
        t = Table(title=f"semantic: mIoU {res.miou:.4f}, pixel accuracy {res.pixel_accuracy:.4f}, "
                        f"Dice {res.mean_dice:.4f}")
        for c in ("class", "IoU", "Dice"):
            t.add_column(c)
        for name, v in d["per_class"].items():
            if v["iou"] is not None:
                t.add_row(name, f"{v['iou']:.4f}", f"{v['dice']:.4f}")
        out.print(t)
    elif task == "panoptic":
        res, schema = evaluate.evaluate_panoptic(gt, pred)
        d = res.to_dict()
        if report:
            d["report"] = str(_panoptic_report(report, res))
        if json_out:
            emit_json(d)
            return
        t = Table(title=f"panoptic: PQ {res.pq:.4f} (things {res.things['pq']:.4f}, "
                        f"stuff {res.stuff['pq']:.4f})")
        for c in ("class", "PQ", "SQ", "RQ", "TP", "FP", "FN"):
            t.add_column(c)
        for name, v in res.per_class.items():
            t.add_row(name, f"{v['pq']:.4f}", f"{v['sq']:.4f}", f"{v['rq']:.4f}", str(v["tp"]),
                      str(v["fp"]), str(v["fn"]))
        out.print(t)
    elif task == "instance":
        d = evaluate.evaluate_instances(gt, pred)
        if json_out:
            emit_json(d)
            return
        t = Table(title="instance segmentation (COCO mask AP)")
        t.add_column("metric")
        t.add_column("value")
        for k, v in d.items():
            t.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
        out.print(t)
    else:
        raise SegflowError(f"unknown task {task!r}; use semantic, instance or panoptic")


def _ids(ids: list[int]) -> str:
    return ", ".join(map(str, ids)) if len(ids) <= 12 else \
        f"{', '.join(map(str, ids[:10]))}, ... {ids[-1]}"


def _semantic_report(path: Path, res, worst) -> Path:
    from matplotlib.figure import Figure  # no pyplot: the process-wide backend is left alone

    from segflow.report import write_report

    path = Path(path)
    fig_dir = path.parent / f"{path.stem}_files"
    fig_dir.mkdir(parents=True, exist_ok=True)
    present = np.array([i for i in np.flatnonzero(np.isfinite(res.iou))
                        if res.class_names[i] is not None], dtype=np.int64)
    names = [res.class_names[i] for i in present]
    cm = res.confusion[np.ix_(present, present)].astype(np.float64)
    cmn = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig = Figure(figsize=(1 + 0.5 * len(names), 1 + 0.45 * len(names)))
    ax = fig.subplots()
    im = ax.imshow(cmn, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(fig_dir / "confusion.png", dpi=110)
    fig = Figure(figsize=(6, 0.35 * len(names) + 1))
    ax = fig.subplots()
    ax.barh(names, res.iou[present], color="#4c72b0", label="IoU")
    ax.barh(names, res.dice[present], color="none", edgecolor="#dd8452", label="Dice")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(fig_dir / "per_class.png", dpi=110)
    rel = fig_dir.name
    sections = [
        {"title": "Summary", "table": {"header": ["mIoU", "pixel accuracy", "mean Dice", "fwIoU"],
                                       "rows": [[f"{res.miou:.4f}", f"{res.pixel_accuracy:.4f}",
                                                 f"{res.mean_dice:.4f}", f"{res.fw_iou:.4f}"]]}},
        {"title": "Confusion matrix and per-class scores", "cards": [{
            "title": "", "subtitle": "", "facts": [],
            "images": [{"src": f"{rel}/confusion.png", "caption": "row-normalised confusion"},
                       {"src": f"{rel}/per_class.png", "caption": "IoU (bars), Dice (outline)"}]}]},
        {"title": "Worst images", "table": {"header": ["image", "mIoU"], "rows": [
            [n, "—" if np.isnan(v) else f"{v:.4f}"] for n, v in worst]}},
    ]
    import datetime

    from segflow import __version__

    return write_report(path, "report.html", title="segflow eval: semantic",
                        subtitle=f"{int(res.confusion.sum())} scored pixels", sections=sections,
                        version=__version__, made=datetime.datetime.now().isoformat("T", "seconds"))


def _panoptic_report(path: Path, res) -> Path:
    import datetime

    from segflow import __version__
    from segflow.report import write_report

    rows = [[n, f"{v['pq']:.4f}", f"{v['sq']:.4f}", f"{v['rq']:.4f}", v["tp"], v["fp"], v["fn"]]
            for n, v in res.per_class.items()]
    sections = [{"title": "Summary", "table": {"header": ["", "PQ", "SQ", "RQ", "classes"], "rows": [
        ["all", f"{res.pq:.4f}", f"{res.sq:.4f}", f"{res.rq:.4f}", res.n_classes],
        ["things", f"{res.things['pq']:.4f}", f"{res.things['sq']:.4f}",
         f"{res.things['rq']:.4f}", res.things["n"]],
        ["stuff", f"{res.stuff['pq']:.4f}", f"{res.stuff['sq']:.4f}", f"{res.stuff['rq']:.4f}",
         res.stuff["n"]]]}},
        {"title": "Per class", "table": {"header": ["class", "PQ", "SQ", "RQ", "TP", "FP", "FN"],
                                         "rows": rows}}]
    return write_report(path, "report.html", title="segflow eval: panoptic", subtitle="",
                        sections=sections, version=__version__,
                        made=datetime.datetime.now().isoformat("T", "seconds"))
