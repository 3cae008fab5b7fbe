"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

#: generated data sets and training runs of the benchmarks (git-ignored)
CACHE = Path(__file__).resolve().parent / ".cache"


def synth_split(domain: str, n_train: int, n_val: int, size: int) -> tuple[Path, Path]:
    """A synthetic training set (seed 1) and a held-out set (seed 2, never used for
    training), generated once into the cache; returns their folders."""
    from segflow.synth.export import export_synthetic

    tr, va = CACHE / f"{domain}-train-{n_train}-{size}", CACHE / f"{domain}-val-{n_val}-{size}"
    if not (tr / "schema.json").exists():
        export_synthetic(domain, tr, n=n_train, seed=1, size=size, progress=False)
    if not (va / "schema.json").exists():
        export_synthetic(domain, va, n=n_val, seed=2, size=size, progress=False)
    return tr, va


def timeit(fn: Callable[[], object], *, repeat: int = 7, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs, after ``warmup`` runs (seconds)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def row(name: str, ours: float, peer: float, peer_name: str, goal: str, ok: bool,
        unit: str = "s") -> dict:
    """One result; ``unit`` "s" prints milliseconds, anything else prints the value with it."""
    return {"case": name, "segflow": ours, "peer_value": peer, "peer": peer_name, "unit": unit,
            "ratio": ours / peer if peer else float("nan"), "goal": goal, "ok": ok}


def _fmt(v: float, unit: str) -> str:
    return f"{v * 1000:.1f} ms" if unit == "s" else f"{v:.2f} {unit}"


def print_rows(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="segflow vs peer (same run)")
    for c in ("case", "segflow", "peer", "ratio (segflow/peer)", "goal", "ok"):
        t.add_column(c)
    for r in rows:
        t.add_row(r["case"], _fmt(r["segflow"], r["unit"]),
                  f"{_fmt(r['peer_value'], r['unit'])} ({r['peer']})",
                  f"{r['ratio']:.2f}x", r["goal"], "yes" if r["ok"] else "NO")
    Console(width=160).print(t)
