"""The volume side of ``inspect``, ``segment`` and ``run``: NIfTI files and DICOM series
folders are picked out of the inputs and handled by :mod:`segflow.volume`."""

from __future__ import annotations

from pathlib import Path

from segflow.cli._common import console, emit_json
from segflow.errors import SegflowError


def split_volumes(inputs: list[Path]) -> tuple[list[Path], list[Path]]:
    """``(volumes, other inputs)``: NIfTI files and DICOM folders given, plus NIfTI files found
    in folders; folders stay in the other inputs too (they may also hold images)."""
    from segflow.volume.io import is_volume_path, list_volumes

    vols = list_volumes(inputs)
    rest = [p for p in inputs if not is_volume_path(p)]
    return vols, rest


def inspect_volumes(paths: list[Path]) -> tuple[list[dict], list[str]]:
    from segflow.volume.inspect import inspect_volume

    rows, errors = [], []
    for p in paths:
        try:
            rows.append(inspect_volume(p))
        except SegflowError as e:
            errors.append(str(e))
    return rows, errors


def print_volume_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="volume characteristics")
    for col in ("volume", "shape", "spacing (mm)", "orient", "modality", "intensity", "window"):
        t.add_column(col, overflow="fold")
    for r in rows:
        it = r.get("intensity") or {}
        if it.get("unit") == "HU":
            rng = f"{it['min']:.0f}..{it['max']:.0f} HU (p1 {it['p1']:.0f}, p99 {it['p99']:.0f})"
        elif it:
            rng = f"p0.5 {it['p0.5']:.4g}, p50 {it['p50']:.4g}, p99.5 {it['p99.5']:.4g}"
        else:
            rng = "no finite voxels"
        w = r.get("window")
        win = f"{w['preset']} L{w['level_width'][0]:.4g} W{w['level_width'][1]:.4g}" if w else ""
        t.add_row(Path(r["path"]).name, "x".join(map(str, r["shape"])),
                  " x ".join(f"{s:.3g}" for s in r["spacing_mm"]), r["orientation"],
                  r["modality"], rng, win)
    Console().print(t)


def segment_volume(method: str, params: dict, volume: Path, out: Path, json_out: bool) -> None:
    """``segflow segment METHOD VOLUME``: threshold methods only, then 3-D labels and regions."""
    from segflow.errors import ConfigError
    from segflow.pipeline import parse_pipeline
    from segflow.volume.pipeline import _THRESHOLDS, run_volume

    if method == "threshold":
        method = params.pop("method", "otsu")
    if method not in _THRESHOLDS:
        raise ConfigError(f"segment {method}: not available for volumes; use one of "
                          f"{', '.join(_THRESHOLDS)}")
    steps = [{"threshold": {"method": method, **params}}, "label", "regions"]
    spec = parse_pipeline({"name": method, "steps": steps}, source=f"segment {method}")
    r = run_volume(spec, volume, out)
    if json_out:
        emit_json({"method": method, "input": str(volume), "threshold": r.threshold,
                   "n_objects": r.n_objects, "regions": r.regions or [], "outputs": r.outputs,
                   "notes": r.notes})
    else:
        console.print(f"{method}, threshold {r.threshold:.4g}, {r.n_objects} objects -> {out}")


def eval_volumes(gt: Path, pred: Path, num_classes: int | None, tolerance_mm: float,
                 json_out: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from segflow.volume.evaluate import evaluate_volumes

    d = evaluate_volumes(gt, pred, num_classes=num_classes, tolerance_mm=tolerance_mm)
    if json_out:
        emit_json(d)
        return

    def fmt(v, spec=".4f"):
        return "—" if v is None else format(v, spec)

    t = Table(title=f"semantic, {d['volumes']} volumes: mIoU {fmt(d['miou'])}, Dice {fmt(d['dice'])}, "
                    f"HD95 {fmt(d['hd95_mm'], '.2f')} mm, surface Dice@{tolerance_mm:g} mm "
                    f"{fmt(d['surface_dice'])}")
    for c in ("class", "IoU", "Dice", "HD95 (mm)", f"surface Dice@{tolerance_mm:g}mm"):
        t.add_column(c)
    for name, v in d["per_class"].items():
        if v["iou"] is not None:
            hd = fmt(v.get("hd95_mm"), ".2f") + (f" ({v['hd95_inf']} inf)" if v.get("hd95_inf") else "")
            t.add_row(name, fmt(v["iou"]), fmt(v["dice"]), hd, fmt(v.get("surface_dice")))
    Console().print(t)
