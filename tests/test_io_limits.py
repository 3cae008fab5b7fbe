"""Pixel caps: the most explicit one wins, each thread keeps its own, and Pillow's process-wide
setting is never toggled per call."""

import os
import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segflow.errors import ImageReadError, SegflowError
from segflow.io import get_max_pixels, pixel_limit, read_image, read_mask

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def img_6mp(tmp_path):
    p = tmp_path / "big.png"
    Image.new("L", (3000, 2000)).save(p)
    return p


def test_explicit_cap_wins_over_the_environment(img_6mp, monkeypatch):
    monkeypatch.setenv("SEGFLOW_MAX_PIXELS", "1000000000")
    with pixel_limit(5_000_000), pytest.raises(ImageReadError, match="pixel cap of 5.0 MP"):
        read_image(img_6mp)
    with pytest.raises(ImageReadError, match="pixel cap of 1.0 MP"):
        read_image(img_6mp, max_pixels=1_000_000)
    assert read_image(img_6mp).shape == (2000, 3000)  # the environment's cap, 1000 MP
    monkeypatch.setenv("SEGFLOW_MAX_PIXELS", "1000")
    with pixel_limit(7_000_000):
        assert get_max_pixels() == 7_000_000 and read_image(img_6mp).shape == (2000, 3000)
    assert get_max_pixels() == 1000 and get_max_pixels(9) == 9


def test_cli_max_pixels_wins_over_the_environment(img_6mp, tmp_path):
    """Today's bug: SEGFLOW_MAX_PIXELS silently overrode --max-pixels."""
    env = {**os.environ, "SEGFLOW_MAX_PIXELS": "1000000000"}
    p = subprocess.run([sys.executable, "-m", "segflow", "--max-pixels", "1000000", "segment",
                        "otsu", str(img_6mp), "-o", str(tmp_path / "o")], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=120)
    assert p.returncode == 2 and "pixel cap of 1.0 MP" in p.stderr, p.stderr
    env["SEGFLOW_MAX_PIXELS"] = "1000"  # and the other way round
    p = subprocess.run([sys.executable, "-m", "segflow", "--max-pixels", "7000000", "segment",
                        "otsu", str(img_6mp), "-o", str(tmp_path / "o")], capture_output=True,
                       text=True, cwd=ROOT, env=env, timeout=120)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("bad", [0, -5, 2.5, float("nan"), float("inf"), "many", None])
def test_bad_caps_are_one_line_errors(bad, monkeypatch, img_6mp):
    if bad is None:
        monkeypatch.setenv("SEGFLOW_MAX_PIXELS", "1e9x")
        with pytest.raises(SegflowError, match="SEGFLOW_MAX_PIXELS must be a positive whole"):
            read_image(img_6mp)
        return
    with pytest.raises(SegflowError, match="max_pixels must be a positive whole number"):
        read_image(img_6mp, max_pixels=bad)
    assert read_image(img_6mp, max_pixels=2**63).shape == (2000, 3000)


def test_threads_with_different_caps_never_see_each_other(tmp_path, monkeypatch):
    """Many threads read at once, each under its own cap (argument or pixel_limit); each gets
    exactly its own answer, and Pillow's global MAX_IMAGE_PIXELS is never written."""
    small = tmp_path / "s.png"
    Image.fromarray(np.full((100, 100), 7, np.uint8)).save(small)  # 10 000 pixels
    writes = []
    image_module = sys.modules["PIL.Image"]

    class Spy(types.ModuleType):
        def __setattr__(self, key, value):
            if key == "MAX_IMAGE_PIXELS":
                writes.append(value)
            super().__setattr__(key, value)

    monkeypatch.setattr(image_module, "__class__", Spy)
    n_threads, rounds = 8, 25
    barrier = threading.Barrier(n_threads)
    wrong: list[str] = []

    def work(k: int) -> None:
        cap = 5_000 if k % 2 else 50_000  # odd threads must be refused, even ones must read
        barrier.wait()
        for r in range(rounds):
            try:
                if r % 2:
                    with pixel_limit(cap):
                        (read_image if k % 4 < 2 else read_mask)(small)
                else:
                    read_image(small, max_pixels=cap)
                refused = False
            except ImageReadError as e:
                refused = "pixel cap" in str(e)
            if refused != bool(k % 2):
                wrong.append(f"thread {k} round {r}: refused={refused}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong, wrong[:3]
    assert writes == [], "segflow.io wrote PIL.Image.MAX_IMAGE_PIXELS during reads"
    assert Image.MAX_IMAGE_PIXELS is None  # set once, when segflow.io is imported


def test_pipeline_workers_get_the_cap_explicitly(tmp_path, img_6mp):
    """Worker processes do not inherit a pixel_limit: run_pipeline hands it to them."""
    from segflow.pipeline import parse_pipeline, run_pipeline

    other = tmp_path / "big2.png"
    other.write_bytes(img_6mp.read_bytes())
    spec = parse_pipeline({"steps": ["threshold"]})
    with pixel_limit(1_000_000):
        rep = run_pipeline(spec, [img_6mp, other], tmp_path / "out", workers=2, progress=False,
                           overlay=False)
    assert len(rep.failures) == 2 and all("pixel cap of 1.0 MP" in r.error for r in rep.failures)
