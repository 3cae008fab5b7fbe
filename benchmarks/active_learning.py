"""Active learning against random selection, on the same images and the same budget.

    .venv/bin/python benchmarks/active_learning.py                    # 5 seeds, agriculture
    .venv/bin/python benchmarks/active_learning.py --seeds 0 1 2 --domain street

For each seed: a synthetic pool (its ground truth plays the annotators) and a held-out test
set (another seed, never trained on). Both arms start from the same ``--initial`` randomly
chosen labelled images and the same round-1 model (``--steps1`` steps). Then each arm labels
``--batch`` more images from the pool, chosen

* uncertainty: by :func:`segflow.assess.next_images` (the code behind ``segflow assess
  --unlabelled``: highest mean softmax entropy of the round-1 model, spread by farthest-point
  sampling over the mean class-probability vectors);
* random: uniformly at random (``default_rng([seed, 20])``);

and trains a fresh model on its initial + batch images with the same config, seed and
``--steps2`` steps (the code of ``segflow.loop``). Score: held-out mIoU of each arm's last.pt
(:class:`segflow.metrics.SemanticEvaluator` over all test pixels). Results go to
benchmarks/.cache/active_learning.jsonl; the table is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import CACHE  # noqa: E402


def miou(ck: Path, test: Path) -> float:
    from segflow.formats import open_dataset
    from segflow.metrics import SemanticEvaluator
    from segflow.predict.predictor import Predictor

    pr = Predictor(ck, device="cpu")
    ds = open_dataset(test)
    ev = SemanticEvaluator(ds.schema.num_classes, ignore_index=ds.schema.ignore_index)
    for it in ds:
        ev.update(it.semantic.ids, pr.predict(it.image()))
    return float(ev.compute().miou)


def one_seed(args, seed: int) -> dict:
    from segflow.assess import next_images
    from segflow.formats import open_dataset
    from segflow.loop import LoopConfig, copy_item, train_round
    from segflow.predict.predictor import Predictor
    from segflow.synth.export import export_synthetic

    root = CACHE / "active_learning" / f"{args.domain}-{args.size}-s{seed}"
    shutil.rmtree(root, ignore_errors=True)
    cfg = LoopConfig(domain=args.domain, size=args.size, model_args={"depth": args.depth,
                                                                     "base_width": args.width},
                     batch_size=4, lr=3e-3)
    oracle = export_synthetic(args.domain, root / "oracle", n=args.pool, seed=100 + seed,
                              size=args.size, progress=False)
    test = export_synthetic(args.domain, root / "test", n=args.test, seed=200 + seed,
                            size=args.size, progress=False)
    names = list(open_dataset(oracle).names)
    rng = np.random.default_rng([seed, 10])
    initial = sorted(rng.choice(names, args.initial, replace=False).tolist())
    rest = [n for n in names if n not in initial]

    def folder(sub: str, labelled: list[str], unlabelled: list[str] = ()) -> Path:
        d = root / sub
        d.mkdir(parents=True)
        shutil.copyfile(oracle / "schema.json", d / "schema.json")
        for n in labelled:
            copy_item(oracle, n, d, label=True)
        for n in unlabelled:
            copy_item(oracle, n, d / "pool", label=False)
        return d

    t0 = time.perf_counter()
    r1_data = folder("r1", initial, rest)
    ck1 = train_round(cfg, r1_data, root / "r1-run", args.steps1, seed)
    r1 = miou(ck1, test)
    picked = [Path(d["path"]).stem for d in
              next_images(Predictor(ck1, device="cpu"), r1_data / "pool", args.batch)]
    randomly = sorted(np.random.default_rng([seed, 20]).choice(rest, args.batch,
                                                               replace=False).tolist())
    out = {"seed": seed, "domain": args.domain, "size": args.size, "initial": args.initial,
           "batch": args.batch, "steps1": args.steps1, "steps2": args.steps2, "round1_miou": r1}
    for arm, chosen in (("uncertainty", picked), ("random", randomly)):
        d = folder(f"r2-{arm}", initial + chosen)
        out[f"{arm}_miou"] = miou(train_round(cfg, d, root / f"r2-{arm}-run", args.steps2, seed),
                                  test)
    out["seconds"] = time.perf_counter() - t0
    out["load_avg"] = os.getloadavg()[0]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--domain", default="agriculture")
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--pool", type=int, default=60)
    p.add_argument("--test", type=int, default=16)
    p.add_argument("--initial", type=int, default=6)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--steps1", type=int, default=25)
    p.add_argument("--steps2", type=int, default=80)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--width", type=int, default=8)
    args = p.parse_args()
    torch.set_num_threads(1)  # two threads spin against each other on a loaded 2-core machine
    log = CACHE / "active_learning.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in args.seeds:
        r = one_seed(args, s)
        rows.append(r)
        with open(log, "a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"seed {s}: round 1 {r['round1_miou']:.4f}; uncertainty {r['uncertainty_miou']:.4f}"
              f", random {r['random_miou']:.4f} ({r['seconds']:.0f} s, load {r['load_avg']:.1f})",
              flush=True)
    u = np.array([r["uncertainty_miou"] for r in rows])
    rnd = np.array([r["random_miou"] for r in rows])
    print("\n| seed | round 1 mIoU | uncertainty mIoU | random mIoU | difference |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['seed']} | {r['round1_miou']:.4f} | {r['uncertainty_miou']:.4f} | "
              f"{r['random_miou']:.4f} | {r['uncertainty_miou'] - r['random_miou']:+.4f} |")
    print(f"| mean | {np.mean([r['round1_miou'] for r in rows]):.4f} | {u.mean():.4f} | "
          f"{rnd.mean():.4f} | {(u - rnd).mean():+.4f} |")
    sd = (u - rnd).std(ddof=1) if len(rows) > 1 else 0.0
    print(f"uncertainty beats random on {(u > rnd).sum()} of {len(rows)} seeds; mean gain "
          f"{(u - rnd).mean():+.4f} (sd of the differences {sd:.4f})")


if __name__ == "__main__":
    main()
