"""A raster larger than memory allows: peak RSS of `segflow run` on a 20,000 x 20,000 GeoTIFF.

    nice -n 10 .venv/bin/python benchmarks/geo_large.py                 # 20k x 20k (minutes)
    nice -n 10 .venv/bin/python benchmarks/geo_large.py --size 8000     # quicker

Goal (issue 15): pipelines/otsu.yaml (grey, Gaussian blur, Otsu) on a 20k x 20k RGB GeoTIFF
(400 MP, 1.2 GB of pixels) with peak RSS < 1.5 GB. The raster is read by windows with a halo,
Otsu's level comes from a histogram streamed over the windows, and the mask is written window
by window into a tiled GeoTIFF. The mask is then vectorised (`segflow vectorize` to a
GeoPackage, window by window) and its peak RSS reported too.

The peer is segflow's own whole-raster run, measured in the same run on an 8,000 x 8,000 raster
(64 MP, small enough to hold; ``--peer-size``): its peak RSS against the windowed run's on the
same file, and the two masks must be equal. The 20k raster is generated strip by strip (never
whole in memory).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

_PEAK_WRAPPER = """
import atexit, sys
def _peak():
    for line in open("/proc/self/status"):  # VmHWM: this process' peak resident set since exec
        if line.startswith("VmHWM:"):
            sys.stderr.write("PEAK_KB " + line.split()[1] + "\\n")
atexit.register(_peak)
from segflow.cli.main import main
sys.argv = ["segflow", *sys.argv[1:]]
main()
"""


def make_raster(path: Path, size: int, strip: int = 512) -> None:
    """An RGB uint8 GeoTIFF (UTM 32N, 0.5 m pixels) of smooth bright and dark fields plus noise,
    tiled and uncompressed (fast to make), written in strips of ``strip`` rows."""
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    x = np.arange(size, dtype=np.float32)[None, :]
    with rasterio.open(path, "w", driver="GTiff", width=size, height=size, count=3, dtype="uint8",
                       crs="EPSG:32632", transform=from_origin(500000, 5200000, 0.5, 0.5),
                       tiled=True, blockxsize=512, blockysize=512, BIGTIFF="IF_SAFER") as ds:
        for r in range(0, size, strip):
            h = min(strip, size - r)
            y = np.arange(r, r + h, dtype=np.float32)[:, None]
            v = 128 + 70 * np.sin(x / 173.0) * np.cos(y / 251.0) + 35 * np.sin((x + y) / 97.0)
            for b, gain in enumerate((1.0, 0.85, 0.7)):
                band = v * gain + rng.normal(0, 10, v.shape).astype(np.float32)
                ds.write(np.clip(band, 0, 255).astype(np.uint8), b + 1,
                         window=rasterio.windows.Window(0, r, size, h))


def run(src: Path, out: Path, *extra: str) -> tuple[float, float]:
    """`segflow [extra] run pipelines/otsu.yaml src -o out`: (seconds, peak RSS in MiB)."""
    return segflow(*extra, "run", "otsu", str(src), "-o", str(out),
                   "--no-overlay", "--json")


def segflow(*args: str) -> tuple[float, float]:
    """A segflow command in a child process: (seconds, peak RSS in MiB)."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", _PEAK_WRAPPER, *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr
    return elapsed, int(p.stderr.split("PEAK_KB")[-1].split()[0]) / 1024


def read_mask(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as ds:
        return ds.read(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=20000, help="side of the large raster")
    ap.add_argument("--peer-size", type=int, default=8000, help="side of the whole-vs-windowed raster")
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp dir)")
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="segflow-geo-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        small = work / "small.tif"
        make_raster(small, args.peer_size)
        t_w, rss_w = run(small, work / "small_win", "--max-pixels", "1000000")  # forced windows
        t_m, rss_m = run(small, work / "small_whole")
        same = np.array_equal(read_mask(work / "small_win" / "small_mask.tif"),
                              read_mask(work / "small_whole" / "small_mask.tif"))
        big = work / "big.tif"
        t0 = time.perf_counter()
        make_raster(big, args.size)
        t_make = time.perf_counter() - t0
        t_b, rss_b = run(big, work / "big_out")
        fg = float(read_mask(work / "big_out" / "big_mask.tif")[::50, ::50].mean())
        t_v, rss_v = segflow("vectorize", str(work / "big_out" / "big_mask.tif"), "-o",
                             str(work / "big.gpkg"), "--json")
        import pyogrio

        n_poly = pyogrio.read_info(work / "big.gpkg")["features"]
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    mp, ps = args.size * args.size / 1e6, args.peer_size
    peer = f"{ps}x{ps} RGB ({ps * ps / 1e6:.0f} MP)"
    print(f"| raster | mode | wall | peak RSS |\n|---|---|---|---|\n"
          f"| {peer} | whole raster in memory | {t_m:.1f} s | {rss_m:.0f} MiB |\n"
          f"| {peer} | windowed (2048 px windows) | {t_w:.1f} s | {rss_w:.0f} MiB |\n"
          f"| {args.size}x{args.size} RGB ({mp:.0f} MP, {3 * mp / 1e3:.2f} GB of pixels) | windowed"
          f" | {t_b:.1f} s | **{rss_b:.0f} MiB** |\n"
          f"| its mask -> `segflow vectorize` -> GeoPackage ({n_poly} polygons) | windowed"
          f" | {t_v:.1f} s | {rss_v:.0f} MiB |")
    print(f"windowed mask == whole-raster mask on {ps}x{ps}: {same}; whole/windowed peak RSS "
          f"{rss_m / rss_w:.2f}x")
    print(f"{args.size}x{args.size}: generated in {t_make:.0f} s; foreground fraction (1/50 sample) "
          f"{fg:.3f}; goal peak RSS < 1536 MiB: {'met' if rss_b < 1536 else 'NOT met'}")


if __name__ == "__main__":
    main()
