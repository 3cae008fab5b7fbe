"""Synthetic scenes, dataset formats (round trips, pycocotools) and evaluation end to end."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from segflow.errors import SegflowError
from segflow.formats import open_dataset
from segflow.metrics import PanopticEvaluator
from segflow.synth import DOMAINS, Difficulty, synthesize
from segflow.synth.export import export_synthetic

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("domain", list(DOMAINS))
def test_synth_is_deterministic_and_consistent(domain):
    a = synthesize(domain, seed=5, index=2, size=96)
    b = synthesize(domain, seed=5, index=2, size=96)
    c = synthesize(domain, seed=6, index=2, size=96)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.panoptic.seg_ids, b.panoptic.seg_ids)
    assert not np.array_equal(a.image, c.image)
    # panoptic and semantic ground truth agree everywhere
    assert np.array_equal(a.panoptic.to_semantic().ids, a.semantic.ids)
    things = [s for s in a.panoptic.segments if s.isthing]
    assert things and all(a.schema.by_id(s.category_id).isthing for s in things)
    assert len(a.instances) == len(things)


def test_synth_controls_and_errors():
    easy = synthesize("street", seed=1, difficulty="easy", size=64)
    hard = synthesize("street", seed=1, difficulty="hard", size=64)
    assert easy.image.shape == hard.image.shape == (64, 64, 3)
    assert synthesize("medical", seed=1, size=64).image.ndim == 2  # grey slices
    n = sum(s.isthing for s in synthesize("aerial", seed=1, n_objects=3, size=128).panoptic.segments)
    assert 1 <= n <= 3  # later objects may hide earlier ones entirely
    with pytest.raises(SegflowError, match="unknown domain"):
        synthesize("moon", seed=1)
    with pytest.raises(SegflowError, match="texture must be in 0..1"):
        Difficulty(texture=2)
    with pytest.raises(SegflowError, match="unknown difficulty"):
        synthesize("street", seed=1, difficulty="brutal")


def test_synth_is_not_solved_by_one_global_threshold():
    """Textured scenes: Otsu's best binary split of the grey image misses the things."""
    import cv2

    ious = []
    for i in range(4):
        s = synthesize("agriculture", seed=0, index=i)
        g = cv2.cvtColor(s.image, cv2.COLOR_RGB2GRAY)
        _, m = cv2.threshold(g, 0, 1, cv2.THRESH_OTSU)
        fg = np.isin(s.panoptic.to_semantic().ids, s.schema.thing_ids)
        iou = max(((m > 0) & fg).sum() / ((m > 0) | fg).sum(),
                  ((m == 0) & fg).sum() / ((m == 0) | fg).sum())
        ious.append(iou)
    assert np.mean(ious) < 0.6


def test_folders_round_trip_bit_exact(tmp_path):
    export_synthetic("street", tmp_path, n=3, seed=2, size=64, progress=False)
    ds = open_dataset(tmp_path)
    assert ds.kind == "panoptic" and len(ds) == 3
    for i, it in enumerate(ds):
        s = synthesize("street", seed=2, index=i, size=64)
        assert np.array_equal(it.image(), s.image)
        assert np.array_equal(it.semantic.ids, s.semantic.ids)
        assert np.array_equal(it.panoptic.seg_ids, s.panoptic.seg_ids)
        assert it.panoptic.segments == s.panoptic.segments


def test_coco_panoptic_round_trip_and_same_pq_as_folders(tmp_path):
    export_synthetic("retail", tmp_path / "f", n=3, seed=4, size=96, progress=False)
    export_synthetic("retail", tmp_path / "c", n=3, seed=4, size=96, fmt="coco_panoptic",
                     progress=False)
    f, c = open_dataset(tmp_path / "f"), open_dataset(tmp_path / "c")
    assert c.kind == "panoptic" and [x.id for x in c.schema.classes] == f.schema.ids
    for a, b in zip(f, c):
        assert np.array_equal(a.panoptic.seg_ids, b.panoptic.seg_ids)
        assert [(s.id, s.category_id, s.isthing) for s in a.panoptic.segments] == \
               [(s.id, s.category_id, s.isthing) for s in b.panoptic.segments]
    # a degraded prediction scores the same PQ against either copy of the ground truth
    pq = []
    for ds in (f, c):
        ev = PanopticEvaluator(ds.schema)
        for k, it in enumerate(ds):
            pred = synthesize("retail", seed=4, index=(k + 1) % 3, size=96).panoptic
            ev.update(it.panoptic, pred)
        pq.append(ev.compute().pq)
    assert pq[0] == pq[1] and 0 < pq[0] < 1


def test_coco_instances_open_in_pycocotools_with_identical_masks(tmp_path):
    export_synthetic("retail", tmp_path, n=2, seed=1, size=96, fmt="coco", progress=False)
    ds = open_dataset(tmp_path)
    api = COCO(str(tmp_path / "annotations" / "instances_default.json"))
    for k, it in enumerate(ds):
        s = synthesize("retail", seed=1, index=k, size=96)
        ref = s.instances
        anns = api.loadAnns(api.getAnnIds(imgIds=[k + 1]))
        assert len(anns) == len(ref) == len(it.instances)
        for a, r, got in zip(anns, ref.items, it.instances.items):
            assert np.array_equal(api.annToMask(a), r.mask)
            assert np.array_equal(got.mask, r.mask) and got.category_id == r.category_id


def _coco_file(tmp_path, anns, cats=None):
    d = {"images": [{"id": 1, "file_name": "a.png", "height": 10, "width": 10}],
         "annotations": anns, "categories": cats or [{"id": 1, "name": "x"}]}
    p = tmp_path / "annotations" / "instances_default.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(d))
    return tmp_path


@pytest.mark.parametrize("ann,message", [
    ({"id": 1, "image_id": 1, "category_id": 7, "segmentation": [[0, 0, 5, 0, 5, 5]]},
     "unknown category_id 7"),
    ({"id": 1, "image_id": 9, "category_id": 1, "segmentation": [[0, 0, 5, 0, 5, 5]]},
     "unknown image_id 9"),
    ({"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[0, 0, 5, 0]]},
     "at least 3 points"),
    ({"id": 1, "image_id": 1, "category_id": 1,
      "segmentation": {"size": [10, 10], "counts": "@@@@garbage"}}, "does not decode"),
    ({"id": 1, "image_id": 1, "category_id": 1,
      "segmentation": {"size": [12, 10], "counts": [120]}}, "differs from the image"),
])
def test_malformed_coco_is_refused_with_file_and_entry(tmp_path, ann, message):
    root = _coco_file(tmp_path, [ann])
    with pytest.raises(SegflowError, match=message) as e:
        ds = open_dataset(root)
        ds[0]
    assert "instances_default.json" in str(e.value)


def test_bad_json_and_wrong_size_panoptic_png(tmp_path):
    p = tmp_path / "annotations" / "panoptic_default.json"
    p.parent.mkdir(parents=True)
    p.write_text("{not json")
    with pytest.raises(SegflowError, match="panoptic_default.json: not valid JSON"):
        open_dataset(tmp_path)
    export_synthetic("street", tmp_path / "c", n=1, seed=1, size=64, fmt="coco_panoptic",
                     progress=False)
    j = tmp_path / "c" / "annotations" / "panoptic_default.json"
    d = json.loads(j.read_text())
    d["images"][0]["width"] = 65
    j.write_text(json.dumps(d))
    with pytest.raises(SegflowError, match="the JSON says 65x64"):
        open_dataset(tmp_path / "c")[0]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "segflow", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_cli_synth_and_eval_semantic_json(tmp_path):
    p = _cli("data", "synth", "aerial", "-n", "3", "--size", "64", "--seed", "2", "-o",
             tmp_path / "gt")
    assert p.returncode == 0, p.stderr
    # predictions: the ground truth of other scenes
    pred = tmp_path / "pred"
    pred.mkdir()
    from segflow.io import write_mask

    gts, preds = [], []
    for i in range(3):
        g = synthesize("aerial", seed=2, index=i, size=64).semantic.ids
        q = synthesize("aerial", seed=2, index=(i + 1) % 3, size=64).semantic.ids
        write_mask(pred / f"aerial_2_{i:05d}.png", q)
        gts.append(g)
        preds.append(q)
    p = _cli("eval", "--task", "semantic", "--gt", tmp_path / "gt", "--pred", pred, "--json",
             "--report", tmp_path / "r.html")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    from segflow.metrics import SemanticEvaluator

    ev = SemanticEvaluator(DOMAINS["aerial"][1].num_classes)
    for g, q in zip(gts, preds):
        ev.update(g, q)
    assert abs(d["miou"] - ev.compute().miou) < 1e-12
    assert set(d["per_class"]) == {c.name for c in DOMAINS["aerial"][1].classes}
    assert (tmp_path / "r.html").exists() and (tmp_path / "r_files" / "confusion.png").exists()


def test_cli_eval_instance_perfect_predictions(tmp_path):
    export_synthetic("retail", tmp_path / "gt", n=2, seed=3, size=96, fmt="coco", progress=False)
    d = json.loads((tmp_path / "gt" / "annotations" / "instances_default.json").read_text())
    (tmp_path / "res.json").write_text(json.dumps([dict(a, score=0.9) for a in d["annotations"]]))
    p = _cli("eval", "--task", "instance", "--gt", tmp_path / "gt", "--pred", tmp_path / "res.json",
             "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["ap"] == 1.0 and r["ap50"] == 1.0 and r["counting_error"] == 0.0
    # against pycocotools run directly on the same files
    from pycocotools.cocoeval import COCOeval

    api = COCO(str(tmp_path / "gt" / "annotations" / "instances_default.json"))
    dets = [dict(a, score=0.9) for a in d["annotations"][::2]]  # half the objects found
    (tmp_path / "half.json").write_text(json.dumps(dets))
    e = COCOeval(api, api.loadRes(dets), iouType="segm")
    e.evaluate()
    e.accumulate()
    e.summarize()
    half = json.loads(_cli("eval", "--task", "instance", "--gt", tmp_path / "gt", "--pred",
                           tmp_path / "half.json", "--json").stdout)
    assert abs(half["ap"] - e.stats[0]) < 1e-12 and abs(half["ap50"] - e.stats[1]) < 1e-12
    assert half["counting_error"] > 0


def test_cli_eval_errors_are_one_line(tmp_path):
    p = _cli("eval", "--task", "semantic", "--gt", tmp_path / "none", "--pred", tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = _cli("data", "synth", "moon", "-o", tmp_path / "x")
    assert p.returncode == 2 and "unknown domain 'moon'" in p.stderr


@pytest.mark.parametrize("fmt", ["cityscapes", "voc", "coco_panoptic", "folders"])
def test_convert_round_trips_panoptic_exactly(tmp_path, fmt):
    """folders -> FMT -> folders keeps images and every segment's pixels and class."""
    from segflow.formats.convert import convert

    export_synthetic("street", tmp_path / "src", n=2, seed=8, size=96, progress=False)
    lost = convert(tmp_path / "src", tmp_path / fmt, to=fmt, progress=False)
    assert not lost or fmt == "voc"
    back = open_dataset(tmp_path / fmt)
    for a, b in zip(open_dataset(tmp_path / "src"), back):
        assert np.array_equal(a.image(), b.image())
        assert np.array_equal(a.panoptic.category_map(), b.panoptic.category_map())
        # same partition into segments (ids may be renumbered)
        pa, pb = a.panoptic.seg_ids.ravel(), b.panoptic.seg_ids.ravel()
        pairs = np.unique(np.stack([pa, pb]), axis=1)
        assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def test_same_set_as_coco_panoptic_and_cityscapes_gives_same_pq(tmp_path):
    from segflow.formats.convert import convert

    export_synthetic("street", tmp_path / "src", n=3, seed=9, size=96, progress=False)
    convert(tmp_path / "src", tmp_path / "cp", to="coco_panoptic", progress=False)
    convert(tmp_path / "src", tmp_path / "cs", to="cityscapes", progress=False)
    pq = []
    for root in ("cp", "cs"):
        ds = open_dataset(tmp_path / root)
        ev = PanopticEvaluator(ds.schema)
        for k, it in enumerate(ds):
            ev.update(it.panoptic, synthesize("street", seed=9, index=(k + 1) % 3, size=96).panoptic)
        pq.append(ev.compute().to_dict())
    assert pq[0] == pq[1]


def test_convert_says_what_is_lost(tmp_path):
    export_synthetic("street", tmp_path / "src", n=1, seed=8, size=64, progress=False)
    p = _cli("convert", tmp_path / "src", "-o", tmp_path / "coco", "--to", "coco", "--json")
    assert p.returncode == 0, p.stderr
    assert any("stuff" in x for x in json.loads(p.stdout)["lost"])
    p = _cli("convert", tmp_path / "src", "-o", tmp_path / "x", "--to", "yaml")
    assert p.returncode == 2 and "unknown target format" in p.stderr


@pytest.mark.parametrize("fmt,dm_format,level", [
    ("coco", "coco_instances", "things"),
    ("coco_panoptic", "coco_panoptic", "segments"),
    ("cityscapes", "cityscapes", "classes"),
    ("voc", "voc_instance_segmentation", "things"),
])
def test_exports_open_in_datumaro_with_identical_masks(tmp_path, fmt, dm_format, level):
    """A second, independent reader (datumaro) sees exactly the masks we wrote."""
    import datumaro as dm

    from segflow.formats.convert import convert

    export_synthetic("street", tmp_path / "src", n=2, seed=12, size=96, progress=False)
    convert(tmp_path / "src", tmp_path / fmt, to=fmt, progress=False)
    ds = dm.Dataset.import_from(str(tmp_path / fmt), dm_format)
    names = ds.categories()[dm.AnnotationType.label]
    ours = {it.name: it for it in open_dataset(tmp_path / "src")}
    assert len(ds) == len(ours)
    for item in ds:
        ref = ours[Path(item.id).name]
        pan, schema = ref.panoptic, open_dataset(tmp_path / "src").schema
        got = sorted((names[a.label].name, a.image.astype(bool).tobytes())
                     for a in item.annotations if hasattr(a, "image"))
        if level == "classes":  # one mask per class present
            cats = pan.category_map()
            exp = [(schema.by_id(int(c)).name, (cats == c).tobytes())
                   for c in np.unique(cats) if c != schema.ignore_index]
        else:
            segs = [s for s in pan.segments if s.isthing or level == "segments"]
            exp = [(schema.by_id(s.category_id).name, (pan.seg_ids == s.id).tobytes())
                   for s in segs]
        assert got == sorted(exp)


def test_yolo_text_round_trip_and_polygon_fidelity(tmp_path):
    from segflow.formats import yolo

    export_synthetic("retail", tmp_path / "src", n=2, seed=5, size=128, fmt="coco",
                     progress=False)
    from segflow.formats.convert import convert

    lost = convert(tmp_path / "src", tmp_path / "y", to="yolo", progress=False)
    assert any("polygons" in x for x in lost)
    ds = open_dataset(tmp_path / "y")
    src = open_dataset(tmp_path / "src")
    for a, b in zip(src, ds):
        assert len(a.instances) == len(b.instances)
        for x, y in zip(a.instances.items, b.instances.items):  # boxes and bottles: near exact
            inter = (x.mask & y.mask).sum()
            assert inter / (x.mask | y.mask).sum() > 0.9 and x.category_id == y.category_id
    # YOLO -> YOLO is exact on the text
    convert(tmp_path / "y", tmp_path / "y2", to="yolo", progress=False)
    for p in sorted((tmp_path / "y" / "labels").rglob("*.txt")):
        q = tmp_path / "y2" / p.relative_to(tmp_path / "y")
        assert p.read_text() == q.read_text()
    # malformed lines are refused with file and line
    bad = tmp_path / "y" / "labels" / "train" / "retail_5_00000.txt"
    bad.write_text("0 0.1 0.1 0.2 0.2\n")
    with pytest.raises(SegflowError, match="line 1: a polygon needs at least 3 points"):
        yolo.read(tmp_path / "y")[0]
    bad.write_text("9 0.1 0.1 0.2 0.2 0.3 0.1\n")
    with pytest.raises(SegflowError, match="class 9 outside"):
        yolo.read(tmp_path / "y")[0]


@pytest.mark.parametrize("args,msg", [
    (["street", "-n", str(2**64)], "-n must be 1..1000000"),  # used to generate forever
    (["medical3d", "-n", "0"], "-n must be 1..1000000"),
    (["street", "-n", "1", "--size", str(10**9)], "size must be 32..8192"),  # was a traceback
])
def test_cli_synth_bounds_are_one_line(tmp_path, args, msg):
    p = _cli("data", "synth", *args, "-o", tmp_path / "x")
    assert p.returncode == 2 and msg in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "x").exists()
