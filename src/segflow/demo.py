"""``make demo``: the main job on built-in data, with an HTML report.

Runs the example pipelines on scikit-image's bundled sample images (no download) and on a
generated image of touching cells, characterises every image with ``inspect``, and writes
``out/report.html`` with the overlays, thresholds and region counts.

Run it as ``python -m segflow.demo --out out`` (``make demo`` does).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

import numpy as np

from segflow import __version__
from segflow.inspect import characterise
from segflow.io import write_image
from segflow.pipeline import load_pipeline, run_pipeline
from segflow.report import relpath, write_report

#: sample image -> pipeline that suits it
JOBS = {
    "coins": "coins",
    "blobs": "objects",
    "camera": "otsu",
    "page": "document",
    "astronaut": "kmeans",
    "coffee": "kmeans",
    "chelsea": "kmeans",
    "cells": "cells",
    "moon": "otsu",
}


def touching_cells(size: int = 384, n: int = 45, seed: int = 0) -> np.ndarray:
    """A fluorescence-like image of round cells, many touching: blurred discs plus noise."""
    import cv2

    rng = np.random.default_rng(seed)
    img = np.zeros((size, size), np.float32)
    for _ in range(n):
        r = rng.uniform(14, 24)
        cx, cy = rng.uniform(r, size - r, 2)
        cv2.circle(img, (int(cx), int(cy)), int(r), float(rng.uniform(0.6, 1.0)), -1, cv2.LINE_AA)
    img = cv2.GaussianBlur(np.minimum(img, 1.0), (0, 0), 1.5)
    img = 0.1 + 0.8 * img + rng.normal(0, 0.04, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def blobs(size: int = 384, seed: int = 1) -> np.ndarray:
    """Bright blobs on a dark background (scikit-image's binary_blobs), blurred and noisy."""
    import cv2
    from skimage.data import binary_blobs

    rng = np.random.default_rng(seed)
    b = binary_blobs(size, blob_size_fraction=0.06, volume_fraction=0.25, rng=seed)
    img = cv2.GaussianBlur(b.astype(np.float32), (0, 0), 2.0) * 150 + 50
    return np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)


def sample_images() -> dict[str, np.ndarray]:
    from skimage import data

    imgs = {name: getattr(data, name)() for name in JOBS if name not in ("cells", "blobs")}
    imgs["cells"] = touching_cells()
    imgs["blobs"] = blobs()
    return imgs


def _fmt_thr(t) -> str:
    if t is None:
        return "local (adaptive)"
    if isinstance(t, list):
        return ", ".join(f"{v:g}" for v in t)
    return f"{t:g}"


def synthetic_baseline(out: Path, *, domain: str = "street", n: int = 8, seed: int = 1000):
    """Generate a small synthetic set and score the classical baseline on it.

    The baseline is k-means in Lab with k = the number of classes, each cluster then named
    by the ground-truth class it overlaps most (an oracle mapping: an upper bound for an
    unsupervised method, which is what a trained model has to beat).
    """
    from segflow.formats import open_dataset
    from segflow.metrics import SemanticEvaluator, majority_mapping
    from segflow.ops.draw import draw_overlay
    from segflow.segment import kmeans
    from segflow.synth.export import export_synthetic

    root = export_synthetic(domain, out / "synthetic" / domain, n=n, seed=seed, progress=False)
    ds = open_dataset(root)
    schema = ds.schema
    ev = SemanticEvaluator(schema.num_classes, class_names=schema.names_by_id())
    cards = []
    for it in ds:
        img = it.image()
        k = len(schema.classes)
        lab = kmeans(img, k=k, space="lab" if img.ndim == 3 else "rgb", seed=0).labels
        mapping = majority_mapping(lab, it.semantic.ids, k)
        pred = mapping[lab]
        image_miou = ev.update(it.semantic.ids, pred)
        pal = schema.palette()
        gt_png = write_image(out / "synthetic" / "overlays" / f"{it.name}_gt.png",
                             draw_overlay(img, it.semantic.ids, palette=pal, alpha=0.6))
        bl_png = write_image(out / "synthetic" / "overlays" / f"{it.name}_kmeans.png",
                             draw_overlay(img, pred, palette=pal, alpha=0.6))
        cards.append({"title": it.name, "subtitle": f"mIoU {image_miou:.3f}",
                      "images": [{"src": relpath(gt_png, out), "caption": "ground truth"},
                                 {"src": relpath(bl_png, out), "caption": "k-means baseline"}],
                      "facts": []})
    res = ev.compute()
    rows = [[name, f"{v['iou']:.3f}" if v["iou"] is not None else "—",
             f"{v['dice']:.3f}" if v["dice"] is not None else "—"]
            for name, v in res.to_dict()["per_class"].items()]
    return {"title": f"Synthetic {domain} set: classical baseline",
            "text": f"{n} generated {domain} scenes (segflow data synth {domain} -n {n} --seed "
                    f"{seed}). k-means (Lab, k = {len(schema.classes)}) with each cluster named by "
                    f"its majority ground-truth class: mIoU {res.miou:.3f}, pixel accuracy "
                    f"{res.pixel_accuracy:.3f}. One global threshold cannot solve these scenes; "
                    "this is the bar a trained model must clear.",
            "table": {"header": ["class", "IoU", "Dice"], "rows": rows}, "cards": cards}


def deep_model(out: Path, *, seconds: float = 120, domain: str = "street",
               steps: int | None = None) -> dict:
    """Train a small U-Net on a generated set for about ``seconds`` on this machine (or for
    ``steps`` steps), score it on held-out scenes beside the classical baseline, and return a
    report section."""
    import time

    import torch

    from segflow.formats import open_dataset
    from segflow.metrics import SemanticEvaluator, majority_mapping
    from segflow.ops.draw import draw_overlay
    from segflow.predict.predictor import Predictor
    from segflow.segment import kmeans
    from segflow.synth.export import export_synthetic
    from segflow.train import parse_config
    from segflow.train.trainer import Trainer

    torch.set_num_threads(2)
    root = out / "deep"
    tr = export_synthetic(domain, root / "train", n=120, seed=1, size=128, progress=False)
    va = export_synthetic(domain, root / "val", n=12, seed=2, size=128, progress=False)

    def cfg(steps):
        return parse_config({
            "name": f"demo-{domain}-unet", "seed": 0, "out": str(root / "run"),
            "data": {"train": str(tr), "val": str(va)},
            "model": {"name": "unet", "args": {"depth": 3, "base_width": 16,
                                               "block": "residual", "full_res_convs": 1}},
            "loss": {"name": "ce+dice"}, "optim": {"lr": 3e-3},
            "schedule": {"name": "poly", "warmup_steps": min(20, steps // 5)},
            "augment": {"hflip": True, "scale": [0.8, 1.25], "color_jitter": 0.2},
            "train": {"epochs": 1000, "max_steps": steps, "batch_size": 8, "crop": 96,
                      "checkpoint_every": 10**6, "log_every": 5}})

    if steps is None:
        probe = Trainer(cfg(3), progress=False)
        t0 = time.perf_counter()
        for _ in range(3):
            probe.train_step(*probe._batch(list(range(len(probe.train_set))), 0))
        per_step = (time.perf_counter() - t0) / 3
        steps = max(5, int(seconds / per_step))
    t0 = time.perf_counter()
    trainer = Trainer(cfg(steps), progress=sys.stderr.isatty())
    trainer.fit()
    train_s = time.perf_counter() - t0
    pred = Predictor(root / "run" / "last.pt", device="cpu")
    ds = open_dataset(va)
    schema = ds.schema
    ev_u, ev_k = SemanticEvaluator(schema.num_classes), SemanticEvaluator(schema.num_classes)
    cards = []
    for n, it in enumerate(ds):
        img = it.image()
        p = pred.predict(img)
        k = len(schema.classes)
        lab = kmeans(img, k=k, space="lab", seed=0).labels
        mapping = majority_mapping(lab, it.semantic.ids, k)
        img_miou = ev_u.update(it.semantic.ids, p)
        ev_k.update(it.semantic.ids, mapping[lab])
        if n < 6:  # the input, then ground truth and prediction drawn over it, side by side
            pal = schema.palette()
            x = write_image(root / "overlays" / f"{it.name}_input.png", img)
            a = write_image(root / "overlays" / f"{it.name}_unet.png",
                            draw_overlay(img, p, palette=pal, alpha=0.55))
            b = write_image(root / "overlays" / f"{it.name}_gt.png",
                            draw_overlay(img, it.semantic.ids, palette=pal, alpha=0.55))
            cards.append({"title": it.name, "subtitle": f"held-out scene, mIoU {img_miou:.3f}",
                          "layout": "trio",
                          "images": [{"src": relpath(x, out), "caption": "input"},
                                     {"src": relpath(b, out), "caption": "ground truth"},
                                     {"src": relpath(a, out), "caption": "U-Net prediction"}],
                          "facts": []})
    ru, rk = ev_u.compute(), ev_k.compute()
    from segflow.train.curves import plot_curves

    curves = plot_curves(root / "run" / "metrics.jsonl", root / "curves.png", metric="miou",
                         title=f"U-Net on synthetic {domain} scenes: {steps} steps")
    if curves is not None:
        cards.insert(0, {"title": "training curves", "subtitle": "loss per step; validation "
                         "mIoU on the held-out scenes after each epoch", "facts": [],
                         "layout": "wide",
                         "images": [{"src": relpath(curves, out), "caption": ""}]})
    return {"title": f"Deep model: U-Net trained from scratch on synthetic {domain} scenes",
            "text": f"{steps} steps ({train_s:.0f} s on this machine's CPU) on 120 generated "
                    f"128x128 scenes, scored on 12 held-out scenes (another seed). "
                    f"U-Net mIoU {ru.miou:.3f} vs the k-means baseline {rk.miou:.3f}; a "
                    "longer run does better (benchmarks/train_unet.py).",
            "table": {"header": ["method", "mIoU", "pixel accuracy", "mean Dice"], "rows": [
                ["U-Net (segflow train)", f"{ru.miou:.3f}", f"{ru.pixel_accuracy:.3f}",
                 f"{ru.mean_dice:.3f}"],
                ["k-means + majority mapping", f"{rk.miou:.3f}", f"{rk.pixel_accuracy:.3f}",
                 f"{rk.mean_dice:.3f}"]]},
            "legend": [{"name": c.name, "color": "#{:02x}{:02x}{:02x}".format(*c.color)}
                       for c in schema.classes],
            "cards": cards}


def run_demo(out: Path, *, workers: int = 2, train_seconds: float = 120,
             train_steps: int | None = None) -> Path:
    """Run the demo into ``out`` and return the report's path."""
    out = Path(out)
    images_dir = out / "images"
    imgs = sample_images()
    paths = {n: write_image(images_dir / f"{n}.png", im) for n, im in imgs.items()}

    chars = {n: characterise(im, str(paths[n])) for n, im in imgs.items()}
    rows = [[n, f"{c.width}x{c.height}", c.dtype, c.channels, f"{c.brightness:.0f}",
             f"{c.contrast:.1f}", f"{c.noise:.2f}", f"{c.sharpness:.0f}", f"{c.bimodality:.2f}",
             c.suggestion, c.reason] for n, c in chars.items()]

    cards, failures = [], []
    by_pipeline: dict[str, list[str]] = {}
    for n, p in JOBS.items():
        by_pipeline.setdefault(p, []).append(n)
    t0 = time.perf_counter()
    for pipe, names in by_pipeline.items():
        spec = load_pipeline(pipe)  # a built-in pipeline (package data)
        rep = run_pipeline(spec, [paths[n] for n in names], out / pipe, workers=workers,
                           progress=sys.stderr.isatty())
        for r in rep.results:
            name = Path(r.input).stem
            if not r.ok:
                failures.append(r.error)
                continue
            overlay = out / pipe / f"{name}_overlay.png"
            facts = [("pipeline", f"built-in pipeline {pipe}: " + " → ".join(s.name for s in spec.steps))]
            if any(s.name == "threshold" for s in spec.steps):
                facts.append(("threshold", _fmt_thr(r.threshold)))
            if r.n_objects is not None:
                facts.append(("objects", r.n_objects))
                if r.regions:
                    areas = [g["area"] for g in r.regions]
                    facts.append(("area (px)", f"median {int(np.median(areas))}, "
                                                f"range {min(areas)}–{max(areas)}"))
            facts += [(k, v) for k, v in (("notes", "; ".join(r.notes)),) if v]
            facts.append(("time", f"{r.seconds:.2f} s"))
            cards.append({
                "title": name, "subtitle": f"suggested: {chars[name].suggestion}",
                "images": [{"src": relpath(paths[name], out), "caption": "input"},
                           {"src": relpath(overlay, out), "caption": "segmentation"}],
                "facts": facts,
            })
    elapsed = time.perf_counter() - t0
    sections = [
        _deep_section(out, train_seconds, train_steps),
        synthetic_baseline(out),
        {"title": "Segmentations", "cards": cards,
         "text": f"{len(cards)} images through {len(by_pipeline)} example pipelines in "
                 f"{elapsed:.1f} s ({workers} workers). Masks, instance ids, regions JSON and "
                 "overlays are in the sub-folders named after each pipeline.",
         "failures": failures},
        {"title": "Image characteristics (segflow inspect)",
         "table": {"header": ["image", "size", "dtype", "ch", "brightness", "contrast", "noise σ",
                              "sharpness", "bimodality η", "suggested", "because"],
                   "rows": rows}},
    ]
    return write_report(
        out / "report.html", "report.html", title="segflow demo",
        subtitle="Classical segmentation of scikit-image's sample images, generated cells and a "
                 "synthetic street set with exact ground truth",
        sections=sections, version=__version__,
        made=_dt.datetime.now().isoformat(timespec="seconds"),
    )


def _deep_section(out: Path, seconds: float, steps: int | None = None) -> dict:
    """The deep-model section, or a note naming the extra when torch is not installed."""
    from segflow._extras import MissingExtraError, require

    try:
        require("deep", what="the demo's U-Net")
    except MissingExtraError as e:
        print(f"note: {e} (the deep-model section is skipped)", file=sys.stderr)
        return {"title": "Deep model", "text": f"Skipped: {e}."}
    return deep_model(out, seconds=seconds, steps=steps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m segflow.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out", help="output folder (default: out)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--train-seconds", type=float, default=120,
                    help="CPU time budget for the demo's U-Net (default 120)")
    ap.add_argument("--train-steps", type=int, default=None,
                    help="train the demo's U-Net for this many steps instead (a busy machine)")
    args = ap.parse_args(argv)
    report = run_demo(Path(args.out), workers=args.workers, train_seconds=args.train_seconds,
                      train_steps=args.train_steps)
    print(f"report: {report.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
