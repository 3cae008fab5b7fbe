"""The Ray engine against the local engine on the same cores, measured in one run.

    .venv/bin/python benchmarks/engines.py                 # 2,000 x 1 MP (issue 13's size)
    .venv/bin/python benchmarks/engines.py -n 400 --rounds 2 --json engines.json

Case and goal (issue 13): N one-megapixel PNGs through the built-in otsu pipeline (no
overlays), local with 2 worker processes against Ray with 2 CPUs on the same 2 cores: Ray's
time at most 1.15x the local time. Ray's time is reported twice: with the start of the local
Ray (``ray.init`` to ``ray.shutdown``, what a one-off ``segflow run --engine ray`` pays) and
with Ray already running (what a cluster that is up pays). Rounds are interleaved; the minimum
of each is kept. The per-node throughput feeds the 100-node calculation in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import CACHE, print_rows, row  # noqa: E402
from classical import grey_scene  # noqa: E402


def make_images(n: int) -> Path:
    """``n`` 1000x1000 crops of one noisy grey scene, generated once into the cache."""
    import numpy as np

    from segflow.io import write_image

    root = CACHE / f"engines-{n}"
    if len(list(root.glob("*.png"))) == n:
        return root
    base = grey_scene(2048, seed=1)
    rng = np.random.default_rng(0)
    for i in range(n):
        y, x = rng.integers(0, 2048 - 1000, 2)
        write_image(root / f"img_{i:05d}.png", base[y:y + 1000, x:x + 1000])
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000, help="images (default 2000)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()

    import ray

    from segflow.engines import get_engine
    from segflow.pipeline import load_pipeline, run_pipeline

    spec = load_pipeline("otsu")
    src = make_images(a.n)
    out = CACHE / "engines-out"
    w = a.workers
    times: dict[str, list[float]] = {"local": [], "ray (with start)": [], "ray (running)": []}

    def one(name: str, engine) -> None:
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        rep = run_pipeline(spec, [src], out, engine=engine, overlay=False, progress=False)
        times[name].append(time.perf_counter() - t0)
        assert len(rep.results) == a.n and not rep.failures, rep.failures[:1]

    init = dict(num_cpus=w, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                object_store_memory=256 * 2**20)
    for _ in range(a.rounds):
        one("local", get_engine("local", workers=w))
        one("ray (with start)", get_engine("ray", workers=w))  # starts and stops its own Ray
        ray.init(**init)
        try:
            one("ray (running)", get_engine("ray", workers=w))
        finally:
            ray.shutdown()
        print({k: [round(x, 2) for x in v] for k, v in times.items()}, flush=True)
    best = {k: min(v) for k, v in times.items()}
    rows = [row(f"{a.n} x 1 MP otsu, {name} vs local {w} workers", best[name], best["local"],
                f"local, {w} workers", "<= 1.15x", best[name] <= 1.15 * best["local"])
            for name in ("ray (with start)", "ray (running)")]
    print_rows(rows)
    per_node = a.n / best["local"]
    print(f"local throughput: {per_node:.1f} images/s on {w} cores "
          f"({a.n / best['ray (running)']:.1f} images/s on a running Ray)")
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "times": times, "n": a.n, "workers": w,
                                      "images_per_s_local": per_node}, indent=1))


if __name__ == "__main__":
    main()
