"""The command line as a user runs it: real processes, one-line errors, JSON results."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segflow.io import read_mask, write_image

ROOT = Path(__file__).resolve().parents[1]


def segflow(*args, check=None):
    p = subprocess.run([sys.executable, "-m", "segflow", *map(str, args)], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    if check is not None:
        assert p.returncode == check, p.stderr
    return p


def assert_one_line_error(p, *needles):
    assert p.returncode != 0
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    lines = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture
def coins(tmp_path, samples):
    return write_image(tmp_path / "coins.png", samples["coins"])


def test_segment_otsu_json(tmp_path, coins, samples):
    p = segflow("segment", "otsu", coins, "-o", tmp_path / "out", "--json", check=0)
    d = json.loads(p.stdout)
    from skimage.filters import threshold_otsu
    from skimage.measure import regionprops

    assert abs(d["threshold"] - threshold_otsu(samples["coins"])) <= 1
    lab = read_mask(tmp_path / "out" / "coins_instances.png")
    ref = regionprops(lab)
    assert len(d["regions"]) == len(ref)
    r0, p0 = d["regions"][0], ref[0]
    assert r0["bbox"] == [p0.bbox[1], p0.bbox[0], p0.bbox[3] - p0.bbox[1], p0.bbox[2] - p0.bbox[0]]
    assert r0["area"] == p0.area and set(r0) >= {"label", "bbox", "area", "centroid"}
    assert all(Path(o).exists() for o in d["outputs"])


def test_segment_kmeans_with_params(tmp_path, samples):
    img = write_image(tmp_path / "a.png", samples["astronaut"][::2, ::2])
    p = segflow("segment", "kmeans", img, "--k", "4", "--space", "lab", "-o", tmp_path / "o",
                "--json", check=0)
    d = json.loads(p.stdout)
    assert set(np.unique(read_mask(tmp_path / "o" / "a_mask.png"))) == {0, 1, 2, 3}
    assert "kmeans: k=4" in d["notes"][0]


def test_segment_grabcut_and_watershed(tmp_path, samples):
    from tests.conftest import touching_discs

    img = write_image(tmp_path / "d.png", touching_discs())
    d = json.loads(segflow("segment", "watershed", img, "--min-distance", "10", "-o",
                           tmp_path / "o", "--json", check=0).stdout)
    assert d["n_objects"] == 2
    d = json.loads(segflow("segment", "grabcut", img, "--box", "[10, 10, 140, 100]", "-o",
                           tmp_path / "g", "--json", check=0).stdout)
    assert d["n_objects"] >= 1


def test_run_folder_json_lists_failure(tmp_path, samples):
    src = tmp_path / "in"
    write_image(src / "a.png", samples["coins"])
    write_image(src / "b.png", samples["camera"])
    (src / "c.png").write_bytes(b"not really a png")
    p = segflow("run", "objects", src, "-o", tmp_path / "out", "--json")
    assert p.returncode == 1 and "Traceback" not in p.stderr
    d = json.loads(p.stdout)
    assert d["images"] == 3 and d["failed"] == 1
    assert "c.png" in d["errors"][0] and "not an image" in d["errors"][0]
    assert (tmp_path / "out" / "a_overlay.png").exists() and (tmp_path / "out" / "b_mask.png").exists()
    assert "c.png" in p.stderr


def test_inspect_json(coins):
    d = json.loads(segflow("inspect", coins, "--json", check=0).stdout)
    (r,) = d["images"]
    assert r["width"] == 384 and r["height"] == 303 and r["channels"] == 1
    assert r["suggestion"] and r["reason"]


def test_help_shows_examples():
    for cmd in ("run", "segment", "inspect"):
        out = segflow(cmd, "--help", check=0).stdout
        assert "Examples" in out and "segflow " + cmd in out


# ---- bad input: one clear line, non-zero exit, no traceback ---------------------------------


def test_cli_missing_file(tmp_path):
    assert_one_line_error(segflow("segment", "otsu", tmp_path / "no.png", "-o", tmp_path),
                          "no.png", "no such file")


def test_cli_not_an_image(tmp_path):
    f = tmp_path / "x.png"
    f.write_text("text")
    assert_one_line_error(segflow("segment", "otsu", f, "-o", tmp_path), "x.png", "not an image")


def test_cli_truncated(tmp_path, samples):
    f = write_image(tmp_path / "t.png", samples["astronaut"])
    f.write_bytes(f.read_bytes()[:3000])
    assert_one_line_error(segflow("segment", "otsu", f, "-o", tmp_path / "o"), "t.png", "corrupt")


def test_cli_pixel_cap(tmp_path):
    f = tmp_path / "big.png"
    Image.new("L", (2000, 1000)).save(f)
    assert_one_line_error(segflow("--max-pixels", "1000000", "segment", "otsu", f, "-o", tmp_path),
                          "big.png", "pixel cap", "--max-pixels")


def test_cli_unsupported_dtype(tmp_path):
    f = tmp_path / "f.tif"
    Image.fromarray(np.zeros((4, 4), np.float32)).save(f)
    assert_one_line_error(segflow("inspect", f), "f.tif", "floating-point")


def test_cli_bad_pipeline(tmp_path, coins):
    p = tmp_path / "p.yaml"
    p.write_text("steps:\n  - blur: {sigma: 2}\n  - threshold: {methd: otsu}\n")
    assert_one_line_error(segflow("run", p, coins, "-o", tmp_path / "o"),
                          "p.yaml", "step 2 (threshold)", "methd", "allowed fields")
    assert not (tmp_path / "o").exists()  # validated before any image is touched


def test_cli_bad_method_and_param(tmp_path, coins):
    assert_one_line_error(segflow("segment", "magic", coins, "-o", tmp_path), "unknown method")
    assert_one_line_error(segflow("segment", "kmeans", coins, "--k", "0", "-o", tmp_path),
                          "step 1 (kmeans)", "k")
