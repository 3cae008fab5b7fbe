"""Metrics and synthetic data: segflow vs its peers, measured in one run.

    .venv/bin/python benchmarks/metrics.py                 # all cases (a few minutes)
    .venv/bin/python benchmarks/metrics.py --only synth baselines

Cases and goals (issue 3):
  semantic   1,000 512x512 masks, 19 classes: at least as fast as torchmetrics MeanIoU (CPU)
  panoptic   500 512x512 images: at least 2x faster than a per-image port of panopticapi
  instance   COCO mask AP: segflow calls pycocotools' COCOeval, so the ratio is 1 by design
  synth      synthetic generation at 256x256 on one core: at least 50 images/s per domain
  baselines  Otsu and k-means per domain (not a speed goal: how hard the scenes are)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_rows, row  # noqa: E402


def bench_semantic(n_img: int = 1000, n_cls: int = 19) -> list[dict]:
    import torch
    from torchmetrics.segmentation import MeanIoU

    from segflow.metrics import SemanticEvaluator

    rng = np.random.default_rng(0)
    base = rng.integers(0, n_cls, (8, 64, 64))
    gts = [np.kron(base[i % 8], np.ones((8, 8), np.int64)) for i in range(8)]
    preds = [np.where(rng.random((512, 512)) < 0.2, rng.integers(0, n_cls, (512, 512)), g)
             for g in gts]
    torch.set_num_threads(2)
    tg = [torch.from_numpy(g)[None] for g in gts]
    tp = [torch.from_numpy(p)[None] for p in preds]
    t0 = time.perf_counter()
    ev = SemanticEvaluator(n_cls)
    for i in range(n_img):
        ev.update(gts[i % 8], preds[i % 8])
    ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = MeanIoU(num_classes=n_cls, input_format="index")
    for i in range(n_img):
        ref.update(tp[i % 8], tg[i % 8])
    peer = time.perf_counter() - t0
    print(f"semantic: {n_img} x 512x512, segflow {ours:.2f} s, torchmetrics MeanIoU {peer:.2f} s "
          f"(mIoU per image {ev.compute().miou_image:.6f} vs {float(ref.compute()):.6f})")
    return [row(f"semantic eval {n_img} x 512²", ours, peer, "torchmetrics MeanIoU",
                "<= 1x", ours <= peer)]


def bench_panoptic(n_img: int = 500) -> list[dict]:
    from _panopticapi_port import new_stats, pq_single

    from segflow.annotations import Panoptic
    from segflow.metrics import PanopticEvaluator
    from segflow.synth import DOMAINS, synthesize

    schema = DOMAINS["street"][1]
    scenes = [synthesize("street", seed=7, index=i, size=512) for i in range(10)]
    pairs = []
    for i in range(n_img):
        g = scenes[i % 10].panoptic
        p = scenes[(i + 1) % 10].panoptic if i % 3 == 0 else g
        pairs.append((g, Panoptic(p.seg_ids, list(p.segments))))
    t0 = time.perf_counter()
    ev = PanopticEvaluator(schema)
    for g, p in pairs:
        ev.update(g, p)
    res = ev.compute()
    ours = time.perf_counter() - t0

    def segs(pan):
        return {s.id: {"category_id": s.category_id, "iscrowd": int(s.iscrowd)}
                for s in pan.segments}

    t0 = time.perf_counter()
    stats = new_stats()
    for g, p in pairs:
        pq_single(g.seg_ids, segs(g), p.seg_ids, segs(p), stats)
    peer = time.perf_counter() - t0
    # same answer
    for c, s in stats.items():
        name = schema.by_id(c).name
        assert res.per_class[name]["tp"] == s["tp"] and res.per_class[name]["fp"] == s["fp"]
    print(f"panoptic: {n_img} x 512x512, segflow {ours:.2f} s, panopticapi port {peer:.2f} s, "
          f"PQ {res.pq:.4f} (same TP/FP/FN per class)")
    return [row(f"panoptic eval {n_img} x 512²", ours, peer, "panopticapi per-image port",
                ">= 2x faster (ratio <= 0.5)", ours * 2 <= peer)]


def bench_synth(n: int = 100) -> list[dict]:
    import cv2

    from segflow.synth import DOMAINS, synthesize

    cv2.setNumThreads(1)  # one core
    rows = []
    for d in DOMAINS:
        synthesize(d, seed=0)
        t0 = time.perf_counter()
        for i in range(n):
            synthesize(d, seed=1, index=i)
        dt = (time.perf_counter() - t0) / n
        print(f"synth {d}: {1 / dt:.0f} images/s at 256x256 (one core)")
        rows.append(row(f"synth {d} 256² (img/s)", 1 / dt, 50.0, "goal", ">= 50 images/s",
                        1 / dt >= 50, unit="img/s"))
    return rows


def bench_baselines(n: int = 20) -> list[dict]:
    """Otsu and k-means against the synthetic ground truth, with oracle label mapping."""
    import cv2

    from segflow.metrics import SemanticEvaluator, majority_mapping
    from segflow.segment import kmeans
    from segflow.synth import DOMAINS, synthesize

    print("| domain | Otsu IoU (things vs rest, best polarity) | k-means mIoU (k = classes, "
          "majority mapping) |")
    print("|---|---|---|")
    for d, (_, schema, _) in DOMAINS.items():
        ious, ev = [], SemanticEvaluator(schema.num_classes)
        for i in range(n):
            s = synthesize(d, seed=1000, index=i)
            img = s.image
            grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            _, m = cv2.threshold(grey, 0, 1, cv2.THRESH_OTSU)
            fg = np.isin(s.semantic.ids, schema.thing_ids)
            ious.append(max(((m > 0) & fg).sum() / max(((m > 0) | fg).sum(), 1),
                            ((m == 0) & fg).sum() / max(((m == 0) | fg).sum(), 1)))
            k = len(schema.classes)
            lab = kmeans(img, k=k, space="lab" if img.ndim == 3 else "rgb", seed=0).labels
            mapping = majority_mapping(lab, s.semantic.ids, k)
            ev.update(s.semantic.ids, mapping[lab])
        print(f"| {d} | {np.mean(ious):.3f} | {ev.compute().miou:.3f} |")
    return []


BENCHES = {"semantic": bench_semantic, "panoptic": bench_panoptic, "synth": bench_synth,
           "baselines": bench_baselines}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", choices=list(BENCHES), default=list(BENCHES))
    args = ap.parse_args()
    rows = []
    for name in args.only:
        rows += BENCHES[name]()
    if rows:
        print_rows(rows)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
