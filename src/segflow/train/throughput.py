"""Timed training steps: how many seconds one optimiser step of a config takes here.

The planner turns a time budget into a step count with it, and the plan-vs-hand benchmark
calibrates the hand-written configs the same way, so both arms spend their budget alike.
"""

from __future__ import annotations

import statistics
import time

from segflow.train.config import TrainConfig


def seconds_per_step(cfg: TrainConfig, *, device: str = "cpu", steps: int = 5,
                     warmup: int = 2, clock: str = "wall") -> float:
    """Median time of ``steps`` full training steps (data loading, augmentation, forward,
    backward, optimiser) of ``cfg`` after ``warmup`` untimed ones. Nothing is written: the
    model is built, stepped and thrown away.

    Two warm-up steps and the median of five: in a fresh process the first steps after the
    first one still run slow (kernels and memory pools settling), and with 1 + 3 the
    measured time of the same config moved by 25% between a fresh and a warmed process
    (0.76 vs 0.61 s on the agriculture U-Net, benchmarks/plan_vs_hand.py), which moves the
    planned step count as much.

    ``clock="wall"`` measures wall time (what a user's budget means). ``clock="cpu"`` measures
    the process's CPU time divided by torch's thread count: the wall time the step would take
    on an otherwise idle machine, which stays put when other processes share the CPU (the
    benchmarks use it so that arms run at different times get the same budget)."""
    import torch

    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be wall or cpu, got {clock!r}")
    now = time.perf_counter if clock == "wall" else time.process_time
    div = 1 if clock == "wall" else max(1, torch.get_num_threads())
    from segflow.train.data import epoch_order
    from segflow.train.trainer import Trainer

    tr = Trainer(cfg, device=device, progress=False)
    tr.model.train()
    order = epoch_order(len(tr.train_set), cfg.seed, 0)
    times = []
    n_batches = tr.batches_per_epoch
    for k in range(warmup + steps):
        t0 = now()
        tr.opt.zero_grad(set_to_none=True)
        for a in range(cfg.train.grad_accum):
            imgs, masks = tr._batch(order, (k * cfg.train.grad_accum + a) % n_batches)
            tr.train_step(imgs, masks, 1.0 / cfg.train.grad_accum)
        tr.opt.step()
        if tr.cuda:
            torch.cuda.synchronize()
        if k >= warmup:
            times.append((now() - t0) / div)
    return statistics.median(times)
