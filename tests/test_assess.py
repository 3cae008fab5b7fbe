"""segflow assess: values equal segflow eval's, intervals, brief grammar, verdict, next images."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from segflow.assess import (
    MEETS,
    RETRAIN,
    TargetResult,
    decide,
    entropy_score,
    load_history,
    parse_brief,
    parse_target,
    select_diverse,
)
from segflow.assess.measure import bootstrap
from segflow.errors import ConfigError

BRIEF = """task: semantic
targets:
  - "miou >= 0.80"
  - "dice >= 0.1"
  - "pixel_accuracy >= 0.05"
  - "iou[road] >= 0.01"
  - "dice[sky] >= 0.01"
"""


def _segflow(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "segflow", *map(str, args)], capture_output=True,
                       text=True)
    if check and r.returncode not in (0, 1):
        raise AssertionError(r.stderr)
    return r


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from segflow.synth.export import export_synthetic
    from segflow.train import parse_config
    from segflow.train.trainer import Trainer

    root = tmp_path_factory.mktemp("assess")
    export_synthetic("street", root / "train", n=6, seed=1, size=48, progress=False)
    export_synthetic("street", root / "test", n=6, seed=2, size=48, progress=False)
    Trainer(parse_config({
        "name": "t", "seed": 3, "out": str(root / "run"),
        "data": {"train": str(root / "train"), "val_fraction": 0.2},
        "model": {"name": "unet", "args": {"depth": 2, "base_width": 8}},
        "train": {"epochs": 1, "batch_size": 4}}), progress=False).fit()
    (root / "brief.yaml").write_text(BRIEF)
    return root


def test_assess_equals_evaluate_in_process_semantic_and_panoptic(tiny, tmp_path):
    from segflow import evaluate
    from segflow.assess import assess
    from segflow.predict.predictor import Predictor

    ck = tiny / "run" / "last.pt"
    pred = Predictor(ck, device="cpu")
    pred.run([tiny / "test" / "images"], tmp_path / "p", overlay=False, progress=False)
    for p in (tmp_path / "p").glob("*_mask.png"):
        p.rename(p.with_name(p.name.replace("_mask.png", ".png")))
    res, *_ = evaluate.evaluate_semantic(tiny / "test", tmp_path / "p")
    brief = parse_brief({"task": "semantic", "targets": ["miou >= 0.5", "iou[building] >= 0.1"]})
    a = assess(ck, tiny / "test", brief, resamples=200, seed=1, device="cpu")
    assert a.targets[0].value == res.miou
    assert a.targets[1].value == res.iou[4] or np.isnan(res.iou[4])
    assert a.targets[0].ci[0] <= res.miou <= a.targets[0].ci[1]
    assert a.verdict == RETRAIN and a.measurement.resamples == 200
    scratch = a.measurement.predictions
    a.cleanup()
    assert scratch.exists() is False  # the temporary predictions are removed

    pred.run_panoptic([tiny / "test" / "images"], tmp_path / "pan", progress=False)
    pres, _ = evaluate.evaluate_panoptic(tiny / "test", tmp_path / "pan")
    brief = parse_brief({"task": "panoptic", "targets": ["pq >= 0.9", "sq[road] >= 0.1"]})
    a = assess(ck, tiny / "test", brief, resamples=200, seed=1, device="cpu")
    assert a.targets[0].value == pytest.approx(pres.pq, abs=1e-12)
    assert a.targets[1].value == pytest.approx(pres.per_class["road"]["sq"], abs=1e-12)
    lo, hi = a.targets[0].ci
    assert lo <= pres.pq <= hi
    assert a.to_dict()["worst_images"][0]["pq"] <= pres.pq + 1e-12
    a.cleanup()


@pytest.mark.slow
def test_assess_values_equal_segflow_eval_and_the_ci_covers_them(tiny, tmp_path):
    ck = tiny / "run" / "last.pt"
    _segflow("predict", ck, tiny / "test" / "images", "-o", tmp_path / "p", "--device", "cpu")
    masks = tmp_path / "masks"
    masks.mkdir()
    for p in (tmp_path / "p").glob("*_mask.png"):
        p.rename(masks / p.name.replace("_mask.png", ".png"))
    ev = json.loads(_segflow("eval", "--task", "semantic", "--gt", tiny / "test", "--pred", masks,
                             "--json").stdout)
    r = _segflow("assess", ck, "--gt", tiny / "test", "--brief", tiny / "brief.yaml", "--json",
                 "--device", "cpu", "--resamples", "300", "--report", tmp_path / "r" / "a.html")
    a = json.loads(r.stdout)
    got = {(t["metric"], t["scope"]): t for t in a["targets"]}
    assert got[("miou", None)]["value"] == pytest.approx(ev["miou"], abs=1e-12)
    assert got[("dice", None)]["value"] == pytest.approx(ev["dice"], abs=1e-12)
    assert got[("pixel_accuracy", None)]["value"] == pytest.approx(ev["pixel_accuracy"], abs=1e-12)
    assert got[("iou", "road")]["value"] == pytest.approx(ev["per_class"]["road"]["iou"], abs=1e-12)
    assert got[("dice", "sky")]["value"] == pytest.approx(ev["per_class"]["sky"]["dice"], abs=1e-12)
    for t in a["targets"]:
        assert set(t) >= {"metric", "scope", "threshold", "value", "ci", "met"}
        lo, hi = t["ci"]
        assert lo <= t["value"] <= hi  # the bootstrap interval covers the full-data value
        assert t["met"] == (t["value"] >= t["threshold"])
    assert a["resamples"] == 300 and a["images"] == 6
    # an untrained-for-long model cannot meet miou >= 0.80: the verdict says retrain, exit 1
    assert a["verdict"] == RETRAIN and r.returncode == 1
    assert any("miou >= 0.80" in s for s in a["reasons"])
    assert a["next_images"] == []
    # the worst images are eval's (it lists 5, assess 6), with eval's per-image mIoU
    assert a["worst_images"][:5] == ev["worst_images"]
    html = (tmp_path / "r" / "a.html").read_text()
    assert "retrain" in html and "a_files/worst0_pred.png" in html
    assert (tmp_path / "r" / "a_files" / "targets.png").stat().st_size > 1000


def test_next_images_from_a_checkpoint(tiny, tmp_path):
    from segflow.assess import next_images
    from segflow.io import read_image, write_image
    from segflow.predict.predictor import Predictor

    pred = Predictor(tiny / "run" / "last.pt", device="cpu")
    rng = np.random.default_rng(0)
    for k in range(4):
        write_image(tmp_path / f"im{k}.png", rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    got = next_images(pred, tmp_path, 2)
    assert [g["rank"] for g in got] == [1, 2] and len({g["path"] for g in got}) == 2
    # the reported uncertainty is the entropy score of the model's probabilities on that image
    us = [entropy_score(pred.probabilities(read_image(g["path"])))[0] for g in got]
    assert us == pytest.approx([g["uncertainty"] for g in got])
    all_u = [entropy_score(pred.probabilities(read_image(tmp_path / f"im{k}.png")))[0]
             for k in range(4)]
    assert got[0]["uncertainty"] == pytest.approx(max(all_u))  # the most uncertain comes first


@pytest.mark.parametrize("target, says", [
    ("iou[tumor] >= 0.5", "unknown class 'tumor'"),
    ("mioux >= 0.5", "unknown metric 'mioux'"),
    ("ap50 >= 0.85", "unknown metric 'ap50' for task semantic"),
    ("pq[road] >= 0.5", "unknown per-class metric 'pq'"),
])
def test_unknown_class_or_metric_is_one_line_and_exit_2(tiny, tmp_path, target, says):
    b = tmp_path / "b.yaml"
    b.write_text(f'task: semantic\ntargets: ["{target}"]\n')
    r = _segflow("assess", tiny / "run" / "last.pt", "--gt", tiny / "test", "--brief", b,
                 "--device", "cpu", check=False)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and says in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("text", ["miou >= nan", "miou >= NaN", "miou >= inf", "miou >= -inf",
                                  "miou >= Infinity", "miou >= 1e999", "miou >= 0x10",
                                  "miou >= 1_0", "miou >= ", "miou", "", ">= 0.5", "miou => 0.5",
                                  "miou >= 0.5 extra", "iou[] >= 0.5", 0.8, None, 2**63, True,
                                  ["miou >= 0.8"]])
def test_garbage_targets_are_refused(text):
    with pytest.raises(ConfigError):
        parse_target(text, "semantic")


def test_targets_parse():
    t = parse_target("  iou[ pedestrian ] >= 0.60 ", "semantic")
    assert (t.metric, t.scope, t.op, t.threshold) == ("iou", "pedestrian", ">=", 0.6)
    assert parse_target("pq<.5", "panoptic").threshold == 0.5
    assert parse_target("AP50 >= 0.85", "instance").metric == "ap50"
    t = parse_target("pq_stuff <= 1e-1", "panoptic")
    assert t.met(0.1) and not t.met(0.2) and not t.met(None) and not t.met(float("nan"))


@pytest.mark.parametrize("data", [None, [], "x", {"task": "semantic"},
                                  {"task": "x", "targets": ["miou >= 1"]},
                                  {"task": "semantic", "targets": []},
                                  {"task": "semantic", "targets": "miou >= 0.8"},
                                  {"task": "semantic", "targets": ["miou >= 0.8"], "extra": 1}])
def test_bad_briefs_are_refused(data):
    with pytest.raises(ConfigError):
        parse_brief(data)


def _res(value, thr, ci=None, scope=None, metric="miou"):
    return TargetResult(metric, scope, ">=", thr, value, ci, value is not None and value >= thr,
                        f"{metric}{f'[{scope}]' if scope else ''} >= {thr}")


def test_verdict_on_a_hand_made_case():
    plenty = {"road": {"pixels": 10**6, "images": 50}, "car": {"pixels": 10**5, "images": 40}}
    v, reasons = decide([_res(0.85, 0.8), _res(0.7, 0.6, scope="car", metric="iou")], plenty)
    assert v == MEETS and not any("not met" in r for r in reasons)
    few = {**plenty, "cyclist": {"pixels": 300, "images": 2}}
    rising = [(50, 0.60), (100, 0.65), (200, 0.70)]
    v, reasons = decide([_res(0.75, 0.8, ci=(0.72, 0.78)), _res(0.7, 0.6, "car", "iou")], few,
                        history=rising)
    assert v == RETRAIN
    assert sum("not met" in r for r in reasons) == 1 and "miou >= 0.8 measured 0.7500" in reasons[0]
    assert any("'cyclist' lacks examples: 300 pixels in 2" in r for r in reasons)
    assert not any("'road'" in r or "'car'" in r for r in reasons)
    # +0.05 per doubling from 200 images: 0.75 -> 0.80 needs one more doubling, 400 images
    assert any("+0.050 per doubling" in r and "about 400 training images" in r for r in reasons)
    _, reasons = decide([_res(0.75, 0.8)], plenty, history=[(50, 0.70), (100, 0.702), (400, 0.70)])
    assert any("flat" in r and "more data alone is unlikely" in r for r in reasons)
    _, reasons = decide([_res(None, 0.8)], plenty)
    assert "no value" in reasons[0] and any("not judged" in r for r in reasons)
    _, reasons = decide([_res(0.5, 0.8)], {"car": {"objects": 5, "images": 9}})
    assert any("'car' lacks examples: 5 objects" in r for r in reasons)


@pytest.mark.parametrize("text", ['[[10, NaN]]', '[[10, Infinity]]', '[[0, 0.5]]', '[[true, 0.5]]',
                                  '[[10, "0.5"]]', '[{"n": 10}]', '{"a": 1}', 'garbage',
                                  '[[10.5, 0.5]]', '[[1e30, 0.5]]'])
def test_garbage_history_is_refused(tmp_path, text):
    p = tmp_path / "h.json"
    p.write_text(text)
    with pytest.raises(ConfigError):
        load_history(p)


def test_next_image_ranking_puts_the_high_entropy_image_first():
    rng = np.random.default_rng(0)

    def peaked(cls, noise=0.02):
        p = np.full((4, 16, 16), noise / 3)
        p[cls] = 1 - noise
        return p + rng.uniform(0, 1e-4, p.shape)

    uniform = np.full((4, 16, 16), 0.25)
    probs = [peaked(0), peaked(1), uniform, peaked(2, noise=0.3), peaked(2, noise=0.31)]
    scores = [entropy_score(p / p.sum(0)) for p in probs]
    u = np.array([s[0] for s in scores])
    assert u[2] == pytest.approx(1.0) and u.argmax() == 2
    assert entropy_score(np.eye(4)[:, :, None].repeat(3, 2))[0] == pytest.approx(0.0)
    emb = np.stack([s[1] for s in scores])
    assert select_diverse(u, emb, 1) == [2]
    # 3 and 4 are near-copies: after 2 and 3 the third pick is 0 or 1, not the copy 4
    pick = select_diverse(u, emb, 3)
    assert pick[0] == 2 and set(pick[1:]) != {3, 4} and len(set(pick)) == 3
    assert select_diverse(u, emb, 0) == [] and len(select_diverse(u, emb, 99)) == 5


def test_bootstrap_intervals():
    # identical images: every resample gives the same aggregate, the interval is a point
    stats = np.ones((7, 2))
    ci = bootstrap(stats, lambda s: {("m", None): s[0] / s.sum()}, resamples=50, seed=0)
    assert ci[("m", None)] == (0.5, 0.5)
    # the mean of per-image values: a known answer, and the same seed gives the same interval
    x = np.random.default_rng(1).normal(0.6, 0.1, 200)
    stats = np.stack([x, np.ones_like(x)], 1)

    def agg(s):
        return {("m", None): s[0] / s[1]}

    a = bootstrap(stats, agg, resamples=400, seed=3)[("m", None)]
    assert a == bootstrap(stats, agg, resamples=400, seed=3)[("m", None)]
    half = 1.96 * x.std() / np.sqrt(len(x))
    assert a[0] == pytest.approx(x.mean() - half, abs=0.006)
    assert a[1] == pytest.approx(x.mean() + half, abs=0.006)


def _coco_case(tmp_path, keep=None):
    """Three 40x40 images, two square objects each; detections good, partial and shifted."""
    from pycocotools import mask as mask_util

    def rle(y, x, s=10):
        m = np.zeros((40, 40), np.uint8, order="F")
        m[y:y + s, x:x + s] = 1
        r = mask_util.encode(np.asfortranarray(m))
        return {"size": r["size"], "counts": r["counts"].decode()}

    objs = [(2, 2), (20, 20)]
    dets = {1: [((2, 2), 0.9), ((20, 20), 0.8)], 2: [((2, 2), 0.7), ((5, 30), 0.95)],
            3: [((4, 4), 0.6), ((23, 21), 0.85)]}
    ids = keep or [1, 2, 3]
    gt = {"images": [{"id": i, "file_name": f"im{i}.png", "height": 40, "width": 40} for i in ids],
          "categories": [{"id": 1, "name": "thing"}],
          "annotations": [{"id": 10 * i + k, "image_id": i, "category_id": 1, "iscrowd": 0,
                           "segmentation": rle(*o), "area": 100, "bbox": [o[1], o[0], 10, 10]}
                          for i in ids for k, o in enumerate(objs)]}
    det = [{"image_id": i, "category_id": 1, "segmentation": rle(*o), "score": s}
           for i in ids for o, s in dets[i]]
    tag = "-".join(map(str, ids))
    (tmp_path / f"gt{tag}.json").write_text(json.dumps(gt))
    (tmp_path / f"det{tag}.json").write_text(json.dumps(det))
    return tmp_path / f"gt{tag}.json", tmp_path / f"det{tag}.json"


def test_instance_bootstrap_resamples_cocoeval_matches(tmp_path):
    from segflow.assess.measure import _coco_bootstrap, coco_resample
    from segflow.evaluate import coco_instance_eval

    d, e = coco_instance_eval(*_coco_case(tmp_path))
    assert coco_resample(e, [0, 1, 2])[:3] == pytest.approx([d["ap"], d["ap50"], d["ap75"]])
    # image 2 alone, drawn three times, scores as image 2 evaluated on its own
    d2, _ = coco_instance_eval(*_coco_case(tmp_path, keep=[2]))
    assert coco_resample(e, [1, 1, 1])[:3] == pytest.approx([d2["ap"], d2["ap50"], d2["ap75"]])
    d13, _ = coco_instance_eval(*_coco_case(tmp_path, keep=[1, 3]))
    assert coco_resample(e, [2, 0])[:3] == pytest.approx([d13["ap"], d13["ap50"], d13["ap75"]])
    ci = _coco_bootstrap(e, resamples=200, seed=0)
    for m in ("ap", "ap50", "ap75"):
        assert ci[(m, None)][0] <= d[m] <= ci[(m, None)][1]


@pytest.mark.slow
def test_instance_brief_end_to_end_equals_segflow_eval(tmp_path):
    """A U-Net with a distance head makes objects; its AP is segflow eval's on its detections."""
    from segflow.assess import assess
    from segflow.evaluate import evaluate_instances
    from segflow.predict.predictor import Predictor
    from segflow.synth.export import export_synthetic
    from segflow.train import parse_config
    from segflow.train.trainer import Trainer

    export_synthetic("street", tmp_path / "train", n=6, seed=1, size=48, progress=False)
    export_synthetic("street", tmp_path / "test", n=4, seed=2, size=48, fmt="coco", progress=False)
    Trainer(parse_config({
        "name": "t", "seed": 3, "out": str(tmp_path / "run"),
        "data": {"train": str(tmp_path / "train"), "val_fraction": 0.2},
        "model": {"name": "unet", "args": {"depth": 2, "base_width": 8}},
        "loss": {"distance_weight": 1.0}, "train": {"epochs": 2, "batch_size": 4}}),
        progress=False).fit()
    ck = tmp_path / "run" / "last.pt"
    Predictor(ck, device="cpu").run([tmp_path / "test" / "images"], tmp_path / "p",
                                    overlay=False, progress=False)
    ref = evaluate_instances(tmp_path / "test", tmp_path / "p" / "detections.json")
    brief = parse_brief({"task": "instance", "targets": ["ap50 >= 0.99", "ap >= 0.0"]})
    a = assess(ck, tmp_path / "test", brief, resamples=50, device="cpu")
    assert a.targets[0].value == ref["ap50"] and a.targets[1].value == ref["ap"]
    assert a.verdict == RETRAIN and a.targets[1].met
    assert set(a.measurement.class_counts) == {"car", "pedestrian", "cyclist"}
    a.cleanup()


def test_help_shows_examples():
    out = _segflow("assess", "--help").stdout
    assert "Examples" in out and "segflow assess" in out and "--brief" in out


def test_next_images_of_a_mask_rcnn_rank_by_one_minus_mean_score(tmp_path):
    """A stand-in for a Mask R-CNN Predictor: its detection scores depend on the image."""
    from types import SimpleNamespace

    from segflow.assess import next_images
    from segflow.io import write_image

    scores = {10: [0.9, 0.95], 60: [0.5, 0.7], 110: [], 160: [0.8]}
    for v in scores:
        write_image(tmp_path / f"im{v}.png", np.full((8, 8), v, np.uint8))

    class FakeMaskRCNN:
        instance = True
        schema = SimpleNamespace(ids=[1, 2])

        def instances(self, image, score_threshold):
            s = scores[int(image.mean())]
            return SimpleNamespace(items=[SimpleNamespace(score=x, category_id=1 + k % 2)
                                          for k, x in enumerate(s)]), None

    got = next_images(FakeMaskRCNN(), tmp_path, 2)
    assert [g["path"].rsplit("/", 1)[1] for g in got] == ["im110.png", "im60.png"]
    assert [g["uncertainty"] for g in got] == pytest.approx([1.0, 0.4])
