"""Annotator agreement: segflow vs torchmetrics, measured in one run.

    .venv/bin/python benchmarks/agreement.py                  # 1,000 pairs + latency
    .venv/bin/python benchmarks/agreement.py --pairs 100      # a quick look

Cases and goals (issue 9):
  pairs    per-class IoU of 1,000 pairs of 1-MP (1024x1024) label maps: at least 10x faster
           than torchmetrics' MulticlassJaccardIndex (validate_args=False, its fastest setting;
           torch on 2 threads). Also segflow's full pair agreement (IoU, Dice and boundary F1
           at 2 px) against the same peer, which computes IoU only.
  latency  one 1-MP annotation scored against a reference as a studio submit would
           (segflow.quality.score_against_reference: IoU/Dice, boundary F1, PQ for panoptic,
           the error map as an indexed PNG to lay over the image): p95 under 50 ms.

The label maps are synthetic street scenes (9 classes) and a simulated annotator's redrawing
(objects over-painted by 2 px, some missed or mislabelled), 8 distinct pairs cycled.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_rows, row  # noqa: E402


def fixtures(n: int = 8, size: int = 1024):
    from segflow.synth import schema_of, synthesize
    from segflow.synth.annotators import simulate_annotator

    schema = schema_of("street")
    pairs = []
    for i in range(n):
        s = synthesize("street", seed=3, index=i, size=size)
        b = simulate_annotator(s.panoptic, schema, seed=i, grow=2, drop=0.1, relabel=0.1)
        pairs.append((s.semantic.ids.astype(np.uint8),
                      b.to_semantic(schema.ignore_index).ids.astype(np.uint8)))
    return pairs, schema


def bench_pairs(n_pairs: int = 1000) -> list[dict]:
    import os

    import torch
    from torchmetrics.classification import MulticlassJaccardIndex

    from segflow.metrics.agreement import PairStats, confusion, pair_stats, scores

    pairs, schema = fixtures()
    n = schema.num_classes
    torch.set_num_threads(2)
    if hasattr(os, "getloadavg"):
        print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    tpairs = [(torch.from_numpy(a.astype(np.int64)), torch.from_numpy(b.astype(np.int64)))
              for a, b in pairs]

    t0 = time.perf_counter()
    cm = np.zeros((n, n), np.int64)
    for i in range(n_pairs):
        a, b = pairs[i % len(pairs)]
        cm += confusion(a, b, n)
    ours_iou = scores(cm)["iou"]
    ours = time.perf_counter() - t0

    t0 = time.perf_counter()
    tot = PairStats(np.zeros((n, n), np.int64), np.zeros((n, 4), np.int64))
    for i in range(n_pairs):
        a, b = pairs[i % len(pairs)]
        tot += pair_stats(a, b, n, tolerance=2)
    full = tot.scores()
    ours_full = time.perf_counter() - t0

    ref = MulticlassJaccardIndex(num_classes=n, average=None, ignore_index=255,
                                 validate_args=False)
    t0 = time.perf_counter()
    for i in range(n_pairs):
        ta, tb = tpairs[i % len(tpairs)]
        ref.update(tb, ta)
    ref_iou = ref.compute().numpy()
    peer = time.perf_counter() - t0
    used = np.isfinite(ours_iou)
    diff = float(np.abs(ours_iou[used] - ref_iou[used]).max())
    print(f"pairs: {n_pairs} x 1024x1024, segflow IoU {ours:.2f} s, segflow IoU+Dice+boundary F1 "
          f"{ours_full:.2f} s, torchmetrics MulticlassJaccardIndex {peer:.2f} s; mIoU "
          f"{np.nanmean(ours_iou):.6f} vs {ref_iou[used].mean():.6f} (max per-class |diff| "
          f"{diff:.1e}); boundary F1 {full['boundary_f1_mean']:.4f}")
    return [row(f"IoU of {n_pairs} pairs of 1 MP", ours, peer, "torchmetrics MulticlassJaccardIndex",
                ">= 10x faster (ratio <= 0.1)", ours * 10 <= peer),
            row(f"IoU+Dice+boundary F1, {n_pairs} pairs", ours_full, peer,
                "torchmetrics (IoU only)", "(more work than the peer)", True)]


def bench_latency(n_calls: int = 200) -> list[dict]:
    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at the start: {load:.1f} on {os.cpu_count()} cores")
    from segflow.metrics.agreement import pair_stats
    from segflow.quality import score_against_reference
    from segflow.synth import schema_of, synthesize
    from segflow.synth.annotators import simulate_annotator

    pairs, schema = fixtures(4)
    n = schema.num_classes
    pans = []
    for i in range(4):
        s = synthesize("street", seed=3, index=i, size=1024)
        pans.append((simulate_annotator(s.panoptic, schema, seed=i, grow=2, drop=0.1,
                                        relabel=0.1), s.panoptic))
    cases = (
        ("IoU/Dice/boundary F1", pairs, lambda a, r: pair_stats(a, r, n, tolerance=2).scores()),
        ("score_against_reference, semantic (+ error-map PNG)", pairs,
         lambda a, r: score_against_reference(a, r, schema)),
        ("score_against_reference, panoptic (+ PQ, error-map PNG)", pans,
         lambda a, r: score_against_reference(a, r, schema_of("street"), task="panoptic")),
    )
    out = []
    for name, data, fn in cases:
        fn(*data[0])
        times, cpu = [], []
        for i in range(n_calls):
            a, r = data[i % len(data)]
            t0, c0 = time.perf_counter(), time.process_time()
            fn(a, r)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        p50, p95 = np.percentile(times, [50, 95])
        # CPU time (all threads of this process) says what a call costs when the machine is
        # shared: wall time then also counts waiting for a core.
        c50, c95 = np.percentile(cpu, [50, 95])
        print(f"latency, one 1-MP pair, {name}: wall p50 {p50 * 1000:.1f} ms, p95 "
              f"{p95 * 1000:.1f} ms; CPU p50 {c50 * 1000:.1f} ms, p95 {c95 * 1000:.1f} ms "
              f"({n_calls} calls)")
        out.append(row(f"one 1-MP pair, {name}: p95", float(p95), 0.050, "goal",
                       "p95 < 50 ms", p95 < 0.050))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=200, help="latency: calls per case")
    ap.add_argument("--only", nargs="*", choices=["pairs", "latency"], default=["pairs", "latency"])
    args = ap.parse_args()
    rows = []
    if "pairs" in args.only:
        rows += bench_pairs(args.pairs)
    if "latency" in args.only:
        rows += bench_latency(args.calls)
    print_rows(rows)
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
