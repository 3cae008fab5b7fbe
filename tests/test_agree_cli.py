"""``segflow agree`` and ``segflow consensus`` on simulated annotators of synthetic scenes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from segflow.formats import open_dataset
from segflow.metrics import PanopticEvaluator
from segflow.metrics.voting import majority_vote
from segflow.synth.annotators import export_annotators, simulate_annotator
from tests.test_cli import assert_one_line_error, segflow


@pytest.fixture(scope="module")
def annotators(tmp_path_factory):
    root = tmp_path_factory.mktemp("ann")
    return export_annotators("street", root, k=3, n=3, size=64, seed=5)


def test_agree_semantic_json(annotators, tmp_path):
    p = segflow("agree", *annotators, "--task", "semantic", "-o", tmp_path / "heat", "--json",
                check=0)
    d = json.loads(p.stdout)
    assert set(d) >= {"pairs", "per_class", "per_image", "outputs"}
    assert len(d["pairs"]) == 3 and len(d["per_image"]) == 3 and len(d["outputs"]) == 3
    assert all((tmp_path / "heat").joinpath(f"{r['name']}.png").is_file() for r in d["per_image"])
    mious = [r["miou"] for r in d["per_image"]]
    assert mious == sorted(mious)  # worst first
    # pair 1-2 against numpy over all images at once (torchmetrics: tests/test_agreement.py)
    a, b = (open_dataset(x) for x in annotators[:2])
    schema = a.schema
    ta = np.concatenate([it.semantic.ids.ravel() for it in a])
    tb = np.concatenate([it.semantic.ids.ravel() for it in b])
    used = [c for c in schema.ids if ((ta == c) | (tb == c)).any()]
    ref = [((ta == c) & (tb == c)).sum() / ((ta == c) | (tb == c)).sum() for c in used]
    assert d["pairs"][0]["miou"] == pytest.approx(float(np.mean(ref)))
    for c in used:
        assert d["per_class"][schema.by_id(c).name]["iou"] is not None
    assert all(set(p) >= {"miou", "boundary_f1"} and "pq" not in p for p in d["pairs"])


def test_agree_panoptic_pq_matches_the_panoptic_evaluator(annotators):
    p = segflow("agree", annotators[0], annotators[2], "--task", "panoptic", "--json", check=0)
    d = json.loads(p.stdout)
    gt, pred = open_dataset(annotators[0]), open_dataset(annotators[2])
    ev = PanopticEvaluator(gt.schema)
    for g, q in zip(gt, pred):
        ev.update(g.panoptic, q.panoptic)
    assert d["pairs"][0]["pq"] == pytest.approx(ev.compute().pq)
    assert all("pq" in r for r in d["per_image"])


def test_agree_instance_coco(tmp_path):
    paths = export_annotators("retail", tmp_path, k=2, n=2, size=64, seed=2, fmt="coco")
    p = segflow("agree", *paths, "--task", "instance", "--json", check=0)
    d = json.loads(p.stdout)
    assert 0 < d["pairs"][0]["pq"] < 1
    # the same labels agree perfectly
    d = json.loads(segflow("agree", paths[0], paths[0], "--task", "instance", "--json",
                           check=0).stdout)
    assert d["pairs"][0]["pq"] == 1.0 and d["pairs"][0]["miou"] == 1.0
    assert d["pairs"][0]["boundary_f1"] == 1.0


def test_agree_table(annotators):
    p = segflow("agree", *annotators[:2], check=0)
    assert "boundary F1" in p.stdout and "worst images" in p.stdout


def test_bad_input_one_line(annotators, tmp_path):
    assert_one_line_error(segflow("agree", annotators[0]), "at least two annotator datasets")
    assert_one_line_error(segflow("consensus", annotators[0], "-o", tmp_path / "c"),
                          "at least two annotator datasets")
    # an image missing from one annotator
    fewer = tmp_path / "fewer"
    shutil.copytree(annotators[1], fewer)
    first = sorted((fewer / "images").glob("*.png"))[0].stem
    for sub, ext in (("images", "png"), ("semantic", "png"), ("panoptic", "png"),
                     ("panoptic", "json")):
        (fewer / sub / f"{first}.{ext}").unlink()
    p = segflow("agree", annotators[0], fewer)
    assert p.returncode == 2
    assert_one_line_error(p, str(fewer), first)
    # an image of another size
    other = tmp_path / "other"
    export_annotators("street", other, k=1, n=3, size=72, seed=5)
    p = segflow("agree", annotators[0], other / "annotator1")
    assert p.returncode == 2
    assert_one_line_error(p, "72x72", "64x64", "street_5_00000")
    p = segflow("agree", *annotators[:2], "--tolerance", "-1")
    assert_one_line_error(p, "tolerance")
    assert_one_line_error(segflow("agree", *annotators[:2], "--task", "depth"), "unknown task")
    assert_one_line_error(segflow("consensus", *annotators, "-o", tmp_path / "x", "--method",
                                  "mean"), "unknown consensus method")


def test_consensus_majority_writes_the_vote(annotators, tmp_path):
    out = tmp_path / "cons"
    p = segflow("consensus", *annotators, "-o", out, "--method", "majority", "--json", check=0)
    assert json.loads(p.stdout)["outputs"] == [str(out)]
    got = open_dataset(out)
    sets = [open_dataset(a) for a in annotators]
    for i, it in enumerate(got):
        want = majority_vote([s[i].semantic.ids for s in sets], got.schema.num_classes)
        np.testing.assert_array_equal(it.semantic.ids, want)
        assert it.image_path is not None


def test_consensus_staple_semantic_writes_the_staple_labels(annotators, tmp_path):
    from segflow.metrics.consensus import staple

    out = tmp_path / "staple"
    segflow("consensus", *annotators, "-o", out, "--method", "staple", check=0)
    got = open_dataset(out)
    sets = [open_dataset(a) for a in annotators]
    for i, it in enumerate(got):
        want = staple([s[i].semantic.ids for s in sets], got.schema.num_classes)
        np.testing.assert_array_equal(it.semantic.ids, want)


@pytest.mark.parametrize("method", ["majority", "staple"])
def test_consensus_panoptic_is_closer_to_the_truth(tmp_path, method):
    """Three annotators with independent mistakes: their consensus beats the worst of them."""
    paths = export_annotators("street", tmp_path, k=4, n=2, size=64, seed=9)
    out = tmp_path / "cons"
    segflow("consensus", *paths[1:], "-o", out, "--method", method, "--task", "panoptic",
            check=0)
    truth = open_dataset(paths[0])  # annotator 1 draws exactly

    def pq(ds):
        ev = PanopticEvaluator(truth.schema)
        for g, q in zip(truth, ds):
            ev.update(g.panoptic, q.panoptic)
        return ev.compute().pq

    cons = open_dataset(out)
    assert cons.kind == "panoptic"
    assert pq(cons) >= min(pq(open_dataset(p)) for p in paths[1:])


def test_simulate_annotator_bad_values():
    from segflow.errors import SegflowError
    from segflow.synth import schema_of, synthesize

    s = synthesize("street", seed=0, size=64)
    for kw in ({"grow": 99}, {"drop": float("nan")}, {"relabel": 2.0}):
        with pytest.raises(SegflowError):
            simulate_annotator(s.panoptic, schema_of("street"), seed=0, **kw)
    same = simulate_annotator(s.panoptic, schema_of("street"), seed=0)
    np.testing.assert_array_equal(same.seg_ids, s.panoptic.seg_ids)


def test_help_shows_examples():
    for cmd in ("agree", "consensus"):
        out = segflow(cmd, "--help", check=0).stdout
        assert "Examples" in out and "segflow " + cmd in out
