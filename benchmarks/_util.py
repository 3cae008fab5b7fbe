"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


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
