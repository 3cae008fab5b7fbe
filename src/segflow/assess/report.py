"""The assessment as an HTML page: targets with intervals, per-class table, learning curve and
the worst images with their overlays (figures by matplotlib's object API; no global backend)."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np


def _fig(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=110)


def _targets_figure(a, path: Path) -> bool:
    ts = [t for t in a.targets if t.value is not None]
    if not ts:
        return False
    fig = _fig(6.5, 0.45 * len(ts) + 1.6)
    ax = fig.add_subplot()
    y = np.arange(len(ts))
    vals = np.array([t.value for t in ts])
    lo = np.array([t.ci[0] if t.ci else t.value for t in ts])
    hi = np.array([t.ci[1] if t.ci else t.value for t in ts])
    colours = ["#2a9d55" if t.met else "#c0392b" for t in ts]
    ax.errorbar(vals, y, xerr=[vals - lo, hi - vals], fmt="none", ecolor="#555", capsize=4)
    ax.scatter(vals, y, c=colours, zorder=3, label="measured (95% CI)")
    ax.scatter([t.threshold for t in ts], y, marker="|", s=300, c="k", label="target")
    ax.set_yticks(y, [t.text for t in ts])
    ax.set_ylim(len(ts) - 0.5, -0.5)
    ax.set_xlim(0, 1.02)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return True


def _per_class_figure(m, metric: str, path: Path) -> bool:
    names = [n for n in m.class_counts if (metric, n) in m.values]
    if not names:
        return False
    v = np.array([m.values[(metric, n)] for n in names], np.float64)
    cis = [m.ci.get((metric, n)) for n in names]
    lo = np.array([c[0] if c else x for c, x in zip(cis, v)])
    hi = np.array([c[1] if c else x for c, x in zip(cis, v)])
    fig = _fig(6.5, 0.32 * len(names) + 1.2)
    ax = fig.add_subplot()
    y = np.arange(len(names))
    ax.barh(y, np.nan_to_num(v), color="#4c72b0")
    ok = np.isfinite(v)
    ax.errorbar(v[ok], y[ok], xerr=[v[ok] - lo[ok], hi[ok] - v[ok]], fmt="none", ecolor="k",
                capsize=3)
    ax.set_yticks(y, names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"{metric} (bars: 95% CI)")
    fig.tight_layout()
    fig.savefig(path)
    return True


def _curve_figure(history, path: Path) -> None:
    fig = _fig(5, 3.2)
    ax = fig.add_subplot()
    n = [h[0] for h in history]
    ax.plot(n, [h[1] for h in history], "o-")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training images")
    ax.set_ylabel("metric")
    ax.set_title("learning curve (--history)")
    fig.tight_layout()
    fig.savefig(path)


def _overlays(a, gt: Path, fig_dir: Path) -> list[dict]:
    """Cards for the worst images: the ground truth and the prediction over the image."""
    from segflow.formats import open_dataset
    from segflow.io import read_mask, write_image
    from segflow.ops.draw import draw_overlay

    m = a.measurement
    if m.task != "semantic" or m.predictions is None or not m.worst:
        return []
    ds = open_dataset(gt)
    idx = {n: i for i, n in enumerate(ds.names)}
    pal = ds.schema.palette()
    cards = []
    for k, (name, score) in enumerate(m.worst):
        it = ds[idx[name]]
        img = it.image()
        pred = read_mask(m.predictions / f"{name}.png")
        g = np.where(it.semantic.ids == ds.schema.ignore_index, 0, it.semantic.ids)
        write_image(fig_dir / f"worst{k}_gt.png", draw_overlay(img, g, palette=pal))
        write_image(fig_dir / f"worst{k}_pred.png", draw_overlay(img, pred, palette=pal))
        cards.append({"title": name, "subtitle": f"mIoU {score:.4f}" if score == score else "",
                      "facts": [], "images": [
                          {"src": f"{fig_dir.name}/worst{k}_gt.png", "caption": "ground truth"},
                          {"src": f"{fig_dir.name}/worst{k}_pred.png", "caption": "prediction"}]})
    return cards


def write_assessment_report(path: str | Path, a, gt: str | Path, *, checkpoint: str = "",
                            history=None) -> Path:
    from segflow import __version__
    from segflow.report import write_report

    path = Path(path)
    fig_dir = path.parent / f"{path.stem}_files"
    fig_dir.mkdir(parents=True, exist_ok=True)
    m = a.measurement

    def num(v):
        return "—" if v is None or v != v else f"{v:.4f}"

    def ci(c):
        return "—" if not c else f"{c[0]:.4f} – {c[1]:.4f}"

    sections: list[dict] = [{"title": f"Verdict: {a.verdict}", "failures": a.reasons}
                            if a.targets and not all(t.met for t in a.targets)
                            else {"title": f"Verdict: {a.verdict}", "text": " ".join(a.reasons)}]
    sections.append({"title": "Targets", "text": f"{m.n_images} ground-truth images; 95% "
                     f"intervals from {m.resamples} bootstrap resamples of the images. "
                     + " ".join(f"Note: {n}." for n in m.notes),
                     "table": {"header": ["target", "value", "95% CI", "met"], "rows": [
                         [t.text, num(t.value), ci(t.ci), "yes" if t.met else "NO"]
                         for t in a.targets]}})
    figures = []
    if _targets_figure(a, fig_dir / "targets.png"):
        figures.append({"src": f"{fig_dir.name}/targets.png",
                        "caption": "targets: dots measured, bars 95% CI, ticks the target"})
    main = {"semantic": "iou", "panoptic": "pq"}.get(m.task)
    if main and _per_class_figure(m, main, fig_dir / "per_class.png"):
        figures.append({"src": f"{fig_dir.name}/per_class.png", "caption": f"per-class {main}"})
    if history:
        _curve_figure(history, fig_dir / "curve.png")
        figures.append({"src": f"{fig_dir.name}/curve.png",
                        "caption": "learning curve (--history): metric by training images"})
    if figures:
        sections.append({"title": "Figures", "figures": figures})
    if history:
        sections.append({"title": "Learning curve (--history)", "table": {
            "header": ["training images", "metric"], "rows": [[n, f"{v:.4f}"] for n, v in history]}})
    per_metrics = sorted({k[0] for k in m.values if k[1] is not None})
    unit = "pixels" if m.task == "semantic" else "objects"
    rows = []
    for name, c in m.class_counts.items():
        row = [name]
        for met in per_metrics:
            row += [num(m.values.get((met, name))), ci(m.ci.get((met, name)))]
        rows.append(row + [c[unit], c["images"]])
    sections.append({"title": "Per class", "table": {
        "header": ["class", *[h for met in per_metrics for h in (met, f"{met} 95% CI")],
                   f"GT {unit}", "GT images"], "rows": rows}})
    if m.worst:
        sections.append({"title": "Worst images", "table": {
            "header": ["image", m.worst_metric], "rows": [[n, num(v)] for n, v in m.worst]},
            "cards": _overlays(a, Path(gt), fig_dir)})
    if a.next_images:
        sections.append({"title": "Next images to label", "table": {
            "header": ["rank", "image", "uncertainty"],
            "rows": [[d["rank"], d["path"], f"{d['uncertainty']:.4f}"] for d in a.next_images]}})
    return write_report(path, "report.html", title=f"segflow assess: {a.verdict}",
                        subtitle=f"{checkpoint} against {gt} ({m.task})", sections=sections,
                        version=__version__, made=datetime.datetime.now().isoformat("T", "seconds"))
