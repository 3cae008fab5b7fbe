"""Objects from a semantic model: a U-Net with a distance head vs the distance transform, on
synthetic retail shelves (products stand side by side and touch).

    .venv/bin/python benchmarks/train_distance.py                # ~8 minutes on 2 CPU cores

Trains segflow's U-Net with `loss.distance_weight: 1` through the Trainer (the code behind
`segflow train`) on retail scenes generated with seed 1, then splits the predicted thing
classes of held-out scenes (seed 2) into objects by watershed, seeded by (a) the peaks of the
learned distance map, (b) the peaks of the distance transform of the predicted mask (no
learning). Both use the same semantic prediction; PQ of the thing classes tells which splits
objects better. With --mrcnn, the Mask R-CNN of benchmarks/train_maskrcnn.py is scored too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import CACHE, synth_split  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=400)
    ap.add_argument("--n-val", type=int, default=50)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--mrcnn", action="store_true", help="also score runs/maskrcnn/last.pt")
    args = ap.parse_args()
    torch.set_num_threads(2)
    from segflow.annotations import SemanticMask, panoptic_from
    from segflow.formats import open_dataset
    from segflow.metrics.panoptic import PanopticEvaluator
    from segflow.models.panoptic import instances_from_semantic
    from segflow.predict.predictor import Predictor
    from segflow.train.config import parse_config
    from segflow.train.trainer import Trainer

    tr, va = synth_split("retail", args.n_train, args.n_val, args.size)
    out = CACHE / "runs" / "distance-unet"
    cfg = parse_config({
        "name": "distance-unet", "seed": 0, "out": str(out),
        "data": {"train": str(tr), "val_fraction": 0.02},
        "model": {"name": "unet", "args": {"depth": 4, "base_width": 16, "block": "residual",
                                           "full_res_convs": 1}},
        "loss": {"name": "ce+dice", "distance_weight": 1.0},
        "optim": {"name": "adamw", "lr": 3e-3}, "schedule": {"name": "poly", "warmup_steps": 50},
        "augment": {"hflip": True, "color_jitter": 0.2},
        "train": {"epochs": 1000, "max_steps": args.steps, "batch_size": 8,
                  "checkpoint_every": 10_000, "log_every": 25}})
    t0 = time.perf_counter()
    Trainer(cfg, device="cpu", progress=sys.stdout.isatty()).fit()
    minutes = (time.perf_counter() - t0) / 60
    pr = Predictor(out / "last.pt", device="cpu")
    mr = Predictor(CACHE / "runs" / "maskrcnn" / "last.pt", device="cpu") if args.mrcnn else None
    val = open_dataset(va)
    schema = val.schema
    ev = {k: PanopticEvaluator(schema) for k in ("distance head", "distance transform", "mask r-cnn")}
    for it in val:
        img = it.image()
        sem, dist = pr.predict_with_distance(img)
        sem = sem.astype(np.int32)
        smask = SemanticMask(sem, schema.ignore_index)
        for name, inst in (("distance head", instances_from_semantic(sem, schema, distance=dist)),
                           ("distance transform", instances_from_semantic(sem, schema))):
            ev[name].update(it.panoptic, panoptic_from(smask, inst, schema))
        if mr is not None:
            inst, _ = mr.instances(img)
            ev["mask r-cnn"].update(it.panoptic, panoptic_from(smask, inst, schema))
    print(f"retail, U-Net with a distance head: {args.steps} steps in {minutes:.1f} min; "
          f"{len(val)} held-out scenes")
    for name, e in ev.items():
        if name == "mask r-cnn" and mr is None:
            continue
        r = e.compute()
        print(f"  things split by {name:18s}: PQ things {r.things['pq']:.3f} (SQ "
              f"{r.things['sq']:.3f}, RQ {r.things['rq']:.3f}), PQ all {r.pq:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
