"""The planner: fingerprints with known values, the choices they lead to, determinism, bad
input, and the `segflow plan` / `segflow train DATA` commands."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from segflow.annotations import LabelSchema, Panoptic, Segment, SemanticMask
from segflow.errors import SegflowError
from segflow.formats import Sample, folders, open_dataset
from segflow.io import write_image
from segflow.train.config import load_config
from segflow.train.fingerprint import compute_fingerprint, sample_indices
from segflow.train.plan import anchors_for, class_weights, make_plan, round_steps

SCHEMA = LabelSchema.from_list([
    {"id": 1, "name": "ground", "isthing": False},
    {"id": 2, "name": "grass", "isthing": False},
    {"id": 3, "name": "stone", "isthing": True},
])


def _scene(squares, *, h=64, w=64, grass_rows=0, rgb=True):
    """Ground everywhere, grass in the first ``grass_rows`` rows, one 'stone' object per
    (y, x, height, width) in ``squares``."""
    sem = np.ones((h, w), np.int32)
    sem[:grass_rows] = 2
    seg = np.zeros((h, w), np.int32)
    seg[sem == 1] = 1
    seg[sem == 2] = 2
    segs = [Segment(1, 1, False), Segment(2, 2, False)]
    for k, (y, x, hh, ww) in enumerate(squares, start=3):
        sem[y:y + hh, x:x + ww] = 3
        seg[y:y + hh, x:x + ww] = k
        segs.append(Segment(k, 3, True, instance_id=k - 2))
    segs = [s for s in segs if (seg == s.id).any()]
    rng = np.random.default_rng(len(squares))
    img = (sem * 60 + rng.integers(0, 20, (h, w))).astype(np.uint8)
    if rgb:
        img = np.stack([img, img // 2, 255 - img], -1)
    return img, SemanticMask(sem, 255), Panoptic(seg, segs)


def _write(root, scenes):
    folders.write(root, SCHEMA, (Sample(f"s{i}", img, pan, semantic=sem)
                                 for i, (img, sem, pan) in enumerate(scenes)))
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Two 64x64 scenes with known classes and objects:
    - scene 0: stones 8x8 and 16x16, grass rows 0..7 (8 rows)
    - scene 1: stones 32x32 and 8x8 (height 8, width 8), no grass
    ground: the rest."""
    root = tmp_path_factory.mktemp("tiny")
    return _write(root, [_scene([(40, 4, 8, 8), (40, 30, 16, 16)], grass_rows=8),
                         _scene([(10, 10, 32, 32), (50, 50, 8, 8)])])


def test_fingerprint_has_the_known_values(tiny):
    fp = compute_fingerprint(open_dataset(tiny))
    assert fp.n_images == 2 and fp.height == (64, 64, 64) and fp.channels == [3]
    total = 2 * 64 * 64
    stone = 64 + 256 + 1024 + 64
    grass = 8 * 64
    by = {c.name: c for c in fp.classes}
    assert by["stone"].pixel_fraction == pytest.approx(stone / total)
    assert by["grass"].pixel_fraction == pytest.approx(grass / total)
    assert by["ground"].pixel_fraction == pytest.approx((total - stone - grass) / total)
    assert by["grass"].image_fraction == 0.5
    assert by["grass"].row_center == pytest.approx(3.5 / 63)
    sizes = np.array([8, 16, 32, 8], float)  # sqrt(bbox area) of the four stones
    assert by["stone"].n_objects == 4
    assert by["stone"].size_p50 == pytest.approx(np.percentile(sizes, 50))
    assert by["stone"].size_p95 == pytest.approx(np.percentile(sizes, 95))
    assert by["stone"].aspect_p5 == pytest.approx(1.0)
    assert fp.objects_per_image_max == 2 and fp.objects_from == "instances"


def test_object_sizes_choose_the_anchors(tiny):
    # known answers: the smallest anchor is the power of two at or below 1.41 x the 5th
    # percentile, doubling per level; big objects shift the ladder up
    assert anchors_for((8, 29.6), 1.0) == [8, 16, 32, 64, 128]
    assert anchors_for((40, 200), 1.0) == [32, 64, 128, 256, 512]
    assert anchors_for((3, 1000), 1.0) == [64, 128, 256, 512, 1024]  # reach the largest
    assert anchors_for((8, 30), 2.0) == [16, 32, 64, 128, 256]  # the model's resize counts
    plan = make_plan(tiny, task="instance", steps=5, out="runs/x")
    args = plan.config["model"]["args"]
    assert args["anchor_sizes"] == anchors_for(plan.fingerprint.object_sizes(), 1.0)
    assert args["anchor_sizes"][0] == 8  # 5th percentile of 8, 8, 16, 32 px is 8
    assert args["aspect_ratios"] == [1.0]  # square stones only
    assert args["min_size"] == 64 and args["image_mean"] == plan.fingerprint.mean


def test_class_frequencies_choose_the_weights(tmp_path):
    # 3 scenes 100x100: ground 90%, grass 9%, stone 1% exactly
    scenes = [_scene([(50, 50, 10, 10)], h=100, w=100, grass_rows=9) for _ in range(3)]
    fp = compute_fingerprint(open_dataset(_write(tmp_path / "d", scenes)))
    f = {"ground": 0.90, "grass": 0.09, "stone": 0.01}
    assert {c.name: round(c.pixel_fraction, 6) for c in fp.classes} == f
    w, why = class_weights(fp, 4)
    raw = np.array([(0.09 / v) ** 0.25 for v in f.values()])  # damped median frequency
    raw = np.clip(raw, 0.5, 2.0)
    assert w[0] == 0.0  # id 0 is no class
    assert w[1:] == pytest.approx(list(raw / raw.mean()), abs=1e-3)
    assert w[3] > w[2] > w[1]  # the rarer, the heavier
    assert "90x" in why
    plan = make_plan(tmp_path / "d", steps=3, out="runs/x")
    assert plan.config["loss"]["class_weights"] == w
    # balanced classes: no weights
    bal = [_scene([], h=64, w=64, grass_rows=32) for _ in range(2)]
    fp2 = compute_fingerprint(open_dataset(_write(tmp_path / "b", bal)))
    assert class_weights(fp2, 4)[0] is None


def test_plan_yaml_validates_loads_back_and_explains(tiny, tmp_path):
    from segflow.train.auto import save_plan

    plan = make_plan(tiny, steps=7, out=str(tmp_path / "run"))
    path = save_plan(plan, tmp_path / "plan.yaml")
    cfg = load_config(path)
    assert cfg.train.max_steps == 7 and cfg.model.name == "unet"
    text = path.read_text()
    for key in ("depth:", "crop:", "batch_size:", "lr:", "class_weights:", "vflip:", "max_steps:"):
        line = next(x for x in text.splitlines() if x.strip().startswith(key))
        assert "  # " in line, line  # every choice says why
    assert yaml.safe_load(text)["train"]["crop"] == plan.config["train"]["crop"]
    # grass only at the top: classes keep their place, so no vertical flips
    assert plan.config["augment"]["vflip"] is False
    pan = make_plan(tiny, task="panoptic", steps=3, out="runs/x")
    assert pan.config["loss"]["distance_weight"] == 1.0 and pan.config["task"] == "semantic"


def test_same_data_and_budget_give_the_same_plan(tiny, tmp_path):
    cache = tmp_path / "tp.json"
    a = make_plan(tiny, minutes=2, out="runs/x", cache=cache)
    b = make_plan(tiny, minutes=2, out="runs/x", cache=cache)
    assert a.throughput_source.startswith("median of 5 timed steps")
    assert b.throughput_source.startswith("cached")
    assert a.config == b.config
    assert a.steps == round_steps(a.steps) and a.steps >= 1
    # a longer budget never plans fewer steps
    c = make_plan(tiny, minutes=20, out="runs/x", cache=cache)
    assert c.steps >= a.steps


def test_round_steps_grid():
    assert [round_steps(x) for x in (0, 1, 19.9, 20, 23, 99, 100, 104, 1099, 1100, 123456)] == \
        [1, 1, 19, 20, 22, 90, 100, 100, 1000, 1100, 120000]
    assert round_steps(float("nan")) == 1 and round_steps(float("inf")) == 1


@pytest.mark.parametrize("kw, msg", [
    ({"minutes": float("nan")}, "--minutes"), ({"minutes": float("inf")}, "--minutes"),
    ({"minutes": -1}, "--minutes"), ({"steps": 2**63}, "--steps"), ({"task": "depth"}, "--task"),
    ({"preset": "turbo"}, "--preset"), ({"device": "tpu"}, "--device"),
])
def test_bad_arguments_are_one_line(tiny, kw, msg):
    with pytest.raises(SegflowError, match=msg):
        make_plan(tiny, **kw)


def test_bad_folders_get_one_clear_line(tmp_path):
    imgs = tmp_path / "photos"
    write_image(imgs / "a.png", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(SegflowError, match="1 image\\(s\\) but no labels"):
        make_plan(imgs, steps=1)
    labels = _write(tmp_path / "labels", [_scene([(4, 4, 8, 8)])])
    for p in (labels / "images").iterdir():
        p.unlink()
    (labels / "images").rmdir()
    with pytest.raises(SegflowError, match="labels without images"):
        make_plan(labels, steps=1)
    with pytest.raises(SegflowError, match="no such dataset folder"):
        make_plan(tmp_path / "nope", steps=1)
    sem_only = tmp_path / "sem"
    img, sem, _ = _scene([(4, 4, 8, 8)])
    folders.write(sem_only, SCHEMA, [Sample("a", img, semantic=sem)])
    with pytest.raises(SegflowError, match="needs object labels"):
        make_plan(sem_only, task="panoptic", steps=1)


def test_mixed_sizes_and_channels_and_one_image(tmp_path):
    from segflow.train.auto import auto_train

    mixed = _write(tmp_path / "mixed", [_scene([(4, 4, 8, 8)], h=48, w=64, rgb=False),
                                        _scene([(10, 10, 8, 8)], h=64, w=80)])
    plan = make_plan(mixed, steps=2, out=str(tmp_path / "r1"))
    notes = " ".join(plan.notes)
    assert "mixed image sizes (64x48 to 80x64)" in notes and "grey, RGB" in notes
    res = auto_train(mixed, steps=2, out=tmp_path / "r1", progress=False)
    assert res.steps == 2
    one = _write(tmp_path / "one", [_scene([(4, 4, 8, 8), (30, 30, 8, 8)])])
    for task in ("semantic", "instance", "panoptic"):
        res = auto_train(one, task=task, steps=1, out=tmp_path / f"one-{task}", progress=False)
        assert res.steps == 1 and res.plan.config["data"]["val_fraction"] == 0.0
        assert res.metrics == {}  # nothing held out to score
        assert load_config(res.config_path).train.max_steps == 1


def test_sample_indices_are_even_and_deterministic():
    assert sample_indices(5, 10) == [0, 1, 2, 3, 4]
    idx = sample_indices(1000, 4)
    assert idx == [0, 333, 666, 999] and sample_indices(1000, 4) == idx


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "segflow", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def _run(*args):
    """The CLI in this process (no second torch import): (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from segflow.cli.main import app

    r = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_cli_plan_and_train_data_and_the_saved_config_reproduces(tiny, tmp_path):
    code, out, _ = _run("plan", tiny, "--steps", "3", "-o", tmp_path / "p.yaml", "--run-dir",
                        tmp_path / "run")
    assert code == 0
    assert load_config(tmp_path / "p.yaml").train.max_steps == 3
    code, _, err = _run("train", tiny, "--steps", "2", "--run-dir", tmp_path / "run2")
    assert code == 0 and "config saved:" in err and (tmp_path / "run2" / "plan.yaml").is_file()
    # the saved config reproduces the run: same steps, same losses step by step
    code, out, _ = _run("train", tmp_path / "run2" / "plan.yaml", "--json")
    assert code == 0 and json.loads(out)["step"] == 2
    recs = [json.loads(x) for x in (tmp_path / "run2" / "metrics.jsonl").read_text().splitlines()]
    first = {r["step"]: r["loss"] for r in recs[:len(recs) // 2] if r["type"] == "train"}
    again = {r["step"]: r["loss"] for r in recs[len(recs) // 2:] if r["type"] == "train"}
    assert first and first == again


def test_cli_mistakes_are_one_line(tmp_path):
    r = _cli("plan", tmp_path / "missing")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "no such dataset" in r.stderr
    (tmp_path / "c.yaml").write_text("data: {train: x}\n")
    r = _cli("train", tmp_path / "c.yaml", "--minutes", "3")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "dataset folder" in r.stderr


def test_help_describes_the_tool():
    r = _cli("--help")
    for word in ("classical", "instance", "panoptic", "plan", "studio", "COCO", "export"):
        assert word in r.stdout
    r = _cli("train", "--help")
    assert "Mask R-CNN" in r.stdout and "--minutes" in r.stdout
