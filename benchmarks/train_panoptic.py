"""Panoptic segmentation of synthetic street scenes, trained from scratch on the CPU.

    .venv/bin/python benchmarks/train_panoptic.py                     # ~14 minutes on 2 CPU cores
    .venv/bin/python benchmarks/train_panoptic.py --unet-steps 100 --mrcnn-steps 50   # a quick look

Stuff from segflow's U-Net (semantic, all classes), things from a ResNet-18-FPN Mask R-CNN,
fused with the Panoptic-FPN rules (`segflow.models.panoptic.fuse_panoptic`, the code behind
`segflow predict SEM --things MRCNN`). Trained on street scenes generated with seed 1, scored
(PQ, panopticapi rules) on a held-out set generated with seed 2. Beside it, the same U-Net
alone, its thing classes split into objects by watershed (`instances_from_semantic`). Goal
(issue 4): PQ >= 0.50 within 15 minutes.
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
from train_maskrcnn import maskrcnn_config  # noqa: E402
from train_unet import data as street_data  # noqa: E402
from train_unet import train as train_unet  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-train", type=int, default=300)
    ap.add_argument("--n-val", type=int, default=50)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--unet-steps", type=int, default=450)
    ap.add_argument("--mrcnn-steps", type=int, default=260)
    args = ap.parse_args()
    torch.set_num_threads(2)
    from segflow.annotations import SemanticMask, panoptic_from
    from segflow.metrics.panoptic import PanopticEvaluator
    from segflow.models import create_model
    from segflow.models.panoptic import fuse_panoptic, instances_from_semantic
    from segflow.train.config import parse_config
    from segflow.train.data import to_tensor_image
    from segflow.train.trainer import Trainer

    tr, va = street_data(args.n_train, args.n_val, args.size)
    schema = tr.schema
    t0 = time.perf_counter()
    torch.manual_seed(0)
    unet = create_model("unet", num_classes=schema.num_classes, depth=4, base_width=16,
                        block="residual")
    print(f"U-Net: {args.unet_steps} steps", flush=True)
    train_unet(unet, tr, args.unet_steps, batch=8, crop=192, lr=3e-3)
    t_unet = time.perf_counter() - t0
    print(f"Mask R-CNN: {args.mrcnn_steps} steps", flush=True)
    cfg = maskrcnn_config(synth_split("street", args.n_train, args.n_val, args.size)[0],
                          CACHE / "runs" / "panoptic-mrcnn", size=args.size, steps=args.mrcnn_steps,
                          batch=4, lr=4e-4)
    cfg["data"]["val_fraction"] = 0.0
    mr = Trainer(parse_config(cfg), device="cpu", progress=False)
    mr.fit()
    t_train = time.perf_counter() - t0

    unet.eval()
    mr.model.eval()
    fused, alone = PanopticEvaluator(schema), PanopticEvaluator(schema)
    t1 = time.perf_counter()
    with torch.no_grad():
        for it in va:
            img = it.image()
            x = to_tensor_image(img)
            sem = unet(x[None]).argmax(1)[0].numpy().astype(np.int32)
            out = mr.model([x])[0]
            masks = (out["masks"][:, 0] >= 0.5).numpy()
            labels = np.array([mr.cat_of[int(k)] for k in out["labels"]], np.int64)
            fused.update(it.panoptic, fuse_panoptic(sem, masks, out["scores"].numpy(), labels, schema,
                                                    score_threshold=0.5, min_stuff_area=32))
            inst = instances_from_semantic(sem, schema, min_distance=4, min_area=8)
            alone.update(it.panoptic, panoptic_from(SemanticMask(sem, schema.ignore_index), inst,
                                                    schema))
    rf, ra = fused.compute(), alone.compute()
    ok = rf.pq >= 0.50 and t_train / 60 <= 15
    print(f"street panoptic, {len(va)} held-out images (training {t_train / 60:.1f} min: U-Net "
          f"{t_unet / 60:.1f}, Mask R-CNN {(t_train - t_unet) / 60:.1f}; eval "
          f"{time.perf_counter() - t1:.0f} s)")
    print(f"  U-Net stuff + Mask R-CNN things (Panoptic-FPN fusion): PQ {rf.pq:.3f} "
          f"(things {rf.things['pq']:.3f}, stuff {rf.stuff['pq']:.3f}), SQ {rf.sq:.3f}, RQ {rf.rq:.3f}")
    print(f"  U-Net alone, things by watershed:                     PQ {ra.pq:.3f} "
          f"(things {ra.things['pq']:.3f}, stuff {ra.stuff['pq']:.3f})")
    print("  per class PQ (fused): " + ", ".join(
        f"{name} {v['pq']:.2f}" for name, v in sorted(rf.per_class.items(), key=lambda kv: kv[1]["id"])))
    print(f"  goal PQ >= 0.50 in 15 min: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
