"""The planned config (`segflow train DATA --minutes N`) against the hand-written configs, on
the same synthetic data and the same wall-clock budget.

    .venv/bin/python benchmarks/plan_vs_hand.py street                  # both arms, 8 min each
    .venv/bin/python benchmarks/plan_vs_hand.py retail --task instance --arm plan
    .venv/bin/python benchmarks/plan_vs_hand.py street --task panoptic --minutes 8

Arms (both through `segflow.train.Trainer`, the code behind `segflow train`):

* hand: the hand-written config of the benchmarks: semantic = configs/street_unet.yaml (the
  only hand-written semantic config, used as is on every domain); instance = Mask R-CNN of
  benchmarks/train_maskrcnn.py; panoptic = U-Net + Mask R-CNN fused as in
  benchmarks/train_panoptic.py, the budget split as there (56% U-Net, 44% Mask R-CNN). Its
  step count is the budget divided by the measured seconds per step (the median of 5 timed
  steps after 2 warm-up steps, `segflow.train.throughput`, as the planner times its own), as
  benchmarks/train_unet.py calibrates its steps.
* plan: `segflow.train.plan.auto_train` (`segflow train DATA --minutes N`): fingerprint,
  choices, timed steps, training.

Data: training scenes generated with seed 1, held-out scenes with seed 2 (never trained on);
both arms score their final weights (last.pt) on the held-out scenes with the same code:
semantic mIoU, instance mask AP50 (pycocotools), panoptic PQ (panopticapi rules). Results are
appended as JSON lines to benchmarks/.cache/plan_vs_hand.jsonl; `--table` prints them all.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import CACHE, synth_split  # noqa: E402
from train_maskrcnn import maskrcnn_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = CACHE / "plan_vs_hand.jsonl"
#: Seconds per training step of the hand-written configs on this 2-core CPU when idle (from the
#: runs recorded in docs/benchmarks.md): U-Net street 8 x 192 px crops at 10.33 img/s; Mask R-CNN
#: retail 192 px, 400 steps of 4 in 9.9 min; Mask R-CNN street 256 px, 260 steps in 5.6 min.
IDLE_S_PER_STEP = {"unet": 0.774, "maskrcnn-192": 1.485, "maskrcnn-256": 1.29}
#: "idle": a budget of N minutes means N minutes of this CPU when idle, whatever else runs:
#: the hand arm gets N*60 / IDLE_S_PER_STEP steps, and the plan arm a wall-clock budget of N
#: minutes times the slowdown measured just before it (the hand config's seconds per step
#: now / idle). "wall": both arms calibrate on the wall clock (an idle machine).
CLOCK = "idle"
#: default data per task: (n_train, n_val, size), as in the hand-config benchmarks
DATA = {"semantic": (300, 50, 256), "instance": (400, 50, 192), "panoptic": (300, 50, 256)}


def hand_semantic(train: Path, out: Path, *, distance: bool = False) -> dict:
    import yaml

    cfg = yaml.safe_load((ROOT / "src/segflow/resources/configs" / "street_unet.yaml").read_text())
    cfg.update(out=str(out), name=out.name)
    cfg["data"] = {"train": str(train), "val_fraction": 0.02}
    cfg["train"].pop("early_stopping", None)  # budget-limited: run every step
    cfg["train"].update(epochs=1000, checkpoint_every=10_000, log_every=25)
    if distance:
        cfg["loss"]["distance_weight"] = 1.0
    return cfg


def measure(cfg_dict: dict) -> float:
    from segflow.train.config import parse_config
    from segflow.train.throughput import seconds_per_step

    probe = dict(cfg_dict, train={**cfg_dict["train"], "max_steps": 10})
    # timed twice, the second kept: the first timing in a fresh process ran 15-30% slow (0.76
    # and 0.85 s/step for a U-Net that trained at 0.61-0.65 s/step), which gave the hand arm
    # fewer steps than its budget holds; the plan arm times its steps in a process that has
    # already fingerprinted the data (and, after the hand arm, trained)
    seconds_per_step(parse_config(probe), device="cpu", steps=2, warmup=1)
    return seconds_per_step(parse_config(probe), device="cpu")


def calibrated(cfg_dict: dict, seconds: float, idle_key: str) -> tuple[dict, float]:
    sps = IDLE_S_PER_STEP[idle_key] if CLOCK == "idle" else measure(cfg_dict)
    cfg_dict["train"]["max_steps"] = max(1, int(seconds / sps))
    return cfg_dict, sps


def fit(cfg_dict: dict):
    from segflow.train.config import parse_config
    from segflow.train.trainer import Trainer

    tr = Trainer(parse_config(cfg_dict), device="cpu", progress=False)
    tr.fit()
    return tr


def score(task: str, val_dir: Path, ckpt: Path, things: Path | None = None) -> dict:
    """Held-out quality of a checkpoint: the same code for both arms."""
    from segflow.annotations import SemanticMask, panoptic_from
    from segflow.formats import open_dataset
    from segflow.metrics import SemanticEvaluator
    from segflow.metrics.panoptic import PanopticEvaluator
    from segflow.predict.predictor import Predictor

    val = open_dataset(val_dir)
    pr = Predictor(ckpt, device="cpu")
    if task == "instance":
        from segflow.train.instance import InstDataset, coco_ap

        ds = InstDataset(val, list(range(len(val))), {c: k for k, c in pr.cat_of.items()},
                         hflip=False, seed=0)
        r = coco_ap(pr.model, ds, pr.cat_of, pr.device)
        return {"metric": "mask AP50", "value": r["ap50"], "ap": r["ap"]}
    if task == "semantic":
        ev = SemanticEvaluator(pr.num_classes, ignore_index=val.schema.ignore_index)
        for it in val:
            ev.update(it.semantic.ids, pr.predict(it.image()))
        return {"metric": "mIoU", "value": ev.compute().miou}
    ev = PanopticEvaluator(val.schema)
    mr = Predictor(things, device="cpu") if things else None
    for it in val:
        img = it.image()
        if mr is not None:
            pan = pr.panoptic(img, mr, score_threshold=0.5, min_stuff_area=32)
        else:
            inst, sem = pr.instances(img)
            pan = panoptic_from(SemanticMask(sem.astype(np.int32), val.schema.ignore_index), inst,
                                val.schema)
        ev.update(it.panoptic, pan)
    r = ev.compute()
    return {"metric": "PQ", "value": r.pq, "pq_things": r.things["pq"], "pq_stuff": r.stuff["pq"]}


def run_hand(task: str, train: Path, val: Path, minutes: float, runs: Path) -> dict:
    budget = minutes * 60
    t0 = time.perf_counter()
    if task == "semantic":
        cfg, sps = calibrated(hand_semantic(train, runs / "hand"), budget, "unet")
        fit(cfg)
        steps, ck, things = cfg["train"]["max_steps"], runs / "hand" / "last.pt", None
    elif task == "instance":
        size = DATA["instance"][2]
        cfg = maskrcnn_config(train, runs / "hand", size=size, steps=10, batch=4, lr=4e-4)
        cfg, sps = calibrated(cfg, budget, f"maskrcnn-{size}")
        fit(cfg)
        steps, ck, things = cfg["train"]["max_steps"], runs / "hand" / "last.pt", None
    else:  # U-Net stuff + Mask R-CNN things, budget split as in benchmarks/train_panoptic.py
        u, sps = calibrated(hand_semantic(train, runs / "hand-unet"), 0.56 * budget, "unet")
        fit(u)
        m = maskrcnn_config(train, runs / "hand-mrcnn", size=DATA["panoptic"][2], steps=10, batch=4,
                            lr=4e-4)
        m["data"]["val_fraction"] = 0.0
        m, _ = calibrated(m, 0.44 * budget, "maskrcnn-256")
        fit(m)
        steps = f"{u['train']['max_steps']}+{m['train']['max_steps']}"
        ck, things = runs / "hand-unet" / "last.pt", runs / "hand-mrcnn" / "last.pt"
    wall = time.perf_counter() - t0
    return {"steps": steps, "s_per_step": round(sps, 3), "train_min": round(wall / 60, 2),
            **score(task, val, ck, things)}


def run_plan(task: str, train: Path, val: Path, minutes: float, runs: Path) -> dict:
    from segflow.train.auto import auto_train

    slowdown = 1.0
    if CLOCK == "idle":  # the hand config's step, timed now, against its idle time
        if task == "instance":
            size = DATA["instance"][2]
            ref = maskrcnn_config(train, runs / "probe", size=size, steps=10, batch=4, lr=4e-4)
            slowdown = measure(ref) / IDLE_S_PER_STEP[f"maskrcnn-{size}"]
        else:
            slowdown = measure(hand_semantic(train, runs / "probe")) / IDLE_S_PER_STEP["unet"]
        slowdown = max(1.0, slowdown)
    t0 = time.perf_counter()
    res = auto_train(str(train), task=task, minutes=minutes * slowdown, device="cpu",
                     out=runs / "plan", progress=False, evaluate=False)
    wall = time.perf_counter() - t0
    return {"steps": res.steps, "s_per_step": round(res.plan.seconds_per_step / slowdown, 3),
            "slowdown": round(slowdown, 2), "train_min": round(wall / 60, 2),
            "config": str(res.config_path),
            **score(task, val, Path(res.out) / "last.pt")}


def print_table() -> None:
    rows = [json.loads(x) for x in RESULTS.read_text().splitlines()] if RESULTS.exists() else []
    print("| domain | task | arm | budget | steps | s/step | wall (plan+train) | load | held-out | value |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['domain']} | {r['task']} | {r['arm']} | {r['minutes']} min ({r['clock']}) | "
              f"{r['steps']} | {r['s_per_step']} | {r['train_min']} min | "
              f"{r['load_before']}-{r['load_after']} | {r['metric']} | {r['value']:.3f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("domain", nargs="?", choices=["street", "agriculture", "medical", "aerial", "retail"])
    ap.add_argument("--task", choices=["semantic", "instance", "panoptic"], default="semantic")
    ap.add_argument("--arm", choices=["hand", "plan", "both"], default="both")
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--n-train", type=int)
    ap.add_argument("--n-val", type=int)
    ap.add_argument("--size", type=int)
    ap.add_argument("--table", action="store_true", help="print the recorded results and exit")
    ap.add_argument("--clock", choices=["idle", "wall"], default="idle",
                    help="budget in minutes of this CPU when idle (a shared machine), or wall time")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (1 on a crowded CPU: "
                    "two threads wait for each other at every barrier)")
    ap.add_argument("--no-record", action="store_true", help="do not append to the results file")
    args = ap.parse_args()
    if args.table or args.domain is None:
        print_table()
        return 0
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = args.clock
    n_train, n_val, size = DATA[args.task]
    tr, va = synth_split(args.domain, args.n_train or n_train, args.n_val or n_val, args.size or size)
    runs = CACHE / "runs" / f"pvh-{args.domain}-{args.task}"
    for arm in (["hand", "plan"] if args.arm == "both" else [args.arm]):
        fn = run_hand if arm == "hand" else run_plan
        print(f"{args.domain} {args.task}: {arm} arm, {args.minutes} min budget", flush=True)
        r = {"domain": args.domain, "task": args.task, "arm": arm, "minutes": args.minutes,
             "clock": CLOCK, "threads": args.threads, "load_before": round(os.getloadavg()[0], 1),
             **fn(args.task, tr, va, args.minutes, runs)}
        r["load_after"] = round(os.getloadavg()[0], 1)
        print(json.dumps(r), flush=True)
        if not args.no_record:
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            with open(RESULTS, "a") as f:
                f.write(json.dumps(r) + "\n")
    if not args.no_record:
        print_table()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
