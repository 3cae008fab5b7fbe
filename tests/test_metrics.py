"""Metrics against torchmetrics (and known answers), on hypothesis-generated fixtures."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.classification import MulticlassJaccardIndex
from torchmetrics.detection import PanopticQuality
from torchmetrics.segmentation import MeanIoU

from segflow.annotations import LabelSchema, Panoptic, Segment
from segflow.metrics import PanopticEvaluator, SemanticEvaluator


def _blocky(rng, shape, values, block=3, p=None):
    small = rng.choice(values, size=(shape[0] // block + 1, shape[1] // block + 1), p=p)
    return np.kron(small, np.ones((block, block), small.dtype))[: shape[0], : shape[1]]


@st.composite
def semantic_batch(draw, ignore=True):
    seed = draw(st.integers(0, 2**31 - 1))
    n_img = draw(st.integers(1, 4))
    n_cls = draw(st.integers(2, 6))
    rng = np.random.default_rng(seed)
    h, w = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    gts, preds = [], []
    for _ in range(n_img):
        gt = _blocky(rng, (h, w), np.arange(n_cls), block=int(rng.integers(1, 4)))
        pred = gt.copy()
        flip = rng.random((h, w)) < rng.uniform(0, 0.6)
        pred[flip] = rng.integers(0, n_cls, flip.sum())
        if ignore:
            gt[rng.random((h, w)) < 0.1] = 255
        gts.append(gt)
        preds.append(pred)
    return n_cls, gts, preds


@settings(max_examples=60, deadline=None)
@given(semantic_batch(ignore=True))
def test_dataset_iou_equals_torchmetrics_jaccard(batch):
    n_cls, gts, preds = batch
    ev = SemanticEvaluator(n_cls, ignore_index=255)
    ref = MulticlassJaccardIndex(num_classes=n_cls, average="none", ignore_index=255)
    for g, p in zip(gts, preds):
        ev.update(g, p)
        ref.update(torch.from_numpy(p).long()[None], torch.from_numpy(g).long()[None])
    res = ev.compute()
    ref_iou = ref.compute().numpy()
    present = np.isfinite(res.iou)
    assert np.allclose(res.iou[present], ref_iou[present], atol=1e-6)
    valid = np.concatenate([g.ravel() != 255 for g in gts])
    if valid.any():
        acc = np.mean(np.concatenate([(g == p).ravel() for g, p in zip(gts, preds)])[valid])
        assert abs(res.pixel_accuracy - acc) < 1e-9


@settings(max_examples=60, deadline=None)
@given(semantic_batch(ignore=False))
def test_image_miou_equals_torchmetrics_meaniou(batch):
    n_cls, gts, preds = batch
    ev = SemanticEvaluator(n_cls)
    ref = MeanIoU(num_classes=n_cls, input_format="index")
    ref_pc = MeanIoU(num_classes=n_cls, input_format="index", per_class=True)
    for g, p in zip(gts, preds):
        ev.update(g, p)
        tp, tg = torch.from_numpy(p).long()[None], torch.from_numpy(g).long()[None]
        ref.update(tp, tg)
        ref_pc.update(tp, tg)
    res = ev.compute()
    assert abs(res.miou_image - float(ref.compute())) < 1e-6
    pc = ref_pc.compute().numpy()
    assert np.allclose(np.nan_to_num(res.iou_image, nan=-1.0), pc, atol=1e-6)


def test_known_answer_and_dice():
    gt = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 2]])
    ev = SemanticEvaluator(4, class_names=["bg", "a", "b", "unused"])
    ev.update(gt, pred)
    r = ev.compute()
    assert r.pixel_accuracy == 6 / 8
    assert np.allclose(r.iou[:3], [3 / 4, 3 / 5, 0.0]) and np.isnan(r.iou[3])
    assert np.isclose(r.miou, (3 / 4 + 3 / 5 + 0) / 3)
    assert np.allclose(r.dice[:3], [2 * 3 / 7, 2 * 3 / 8, 0.0])
    assert np.isclose(r.fw_iou, 0.5 * 3 / 4 + 0.5 * 3 / 5)
    d = r.to_dict()
    assert d["per_class"]["unused"]["iou"] is None and set(d) >= {"miou", "pixel_accuracy", "dice"}


def test_empty_image_and_all_ignored():
    ev = SemanticEvaluator(3)
    ev.update(np.full((4, 4), 255), np.zeros((4, 4), int))
    r = ev.compute()
    assert np.isnan(r.miou) and np.isnan(r.pixel_accuracy)
    ev.update(np.zeros((0, 0), int), np.zeros((0, 0), int))  # empty image: no pixels, no error


def test_boundary_f1_perfect_and_shifted():
    gt = np.zeros((40, 40), int)
    gt[10:30, 10:30] = 1
    ev = SemanticEvaluator(2, boundary_tolerance=2)
    ev.update(gt, gt)
    assert ev.compute().boundary_f1[1] == 1.0
    shifted = np.roll(gt, 1, axis=1)
    ev = SemanticEvaluator(2, boundary_tolerance=2)
    ev.update(gt, shifted)
    assert ev.compute().boundary_f1[1] == 1.0  # within tolerance
    far = np.roll(gt, 6, axis=1)
    ev = SemanticEvaluator(2, boundary_tolerance=2)
    ev.update(gt, far)
    assert ev.compute().boundary_f1[1] < 0.7


def test_semantic_errors_name_the_problem():
    from segflow.errors import SegflowError

    ev = SemanticEvaluator(2)
    with pytest.raises(SegflowError, match="must match"):
        ev.update(np.zeros((2, 2), int), np.zeros((3, 2), int), where="img.png")
    with pytest.raises(SegflowError, match="outside 0..1"):
        ev.update(np.zeros((2, 2), int), np.full((2, 2), 5), where="img.png")


# ---- panoptic ---------------------------------------------------------------------------------

THINGS, STUFF = (1, 2), (3, 4)
SCHEMA = LabelSchema.from_list(
    [{"id": c, "name": f"c{c}", "isthing": c in THINGS} for c in THINGS + STUFF])


def _to_panoptic(cat: np.ndarray, inst: np.ndarray) -> Panoptic:
    seg = np.zeros(cat.shape, np.int32)
    segments, nid = [], 0
    for c in THINGS + STUFF:
        m = cat == c
        if not m.any():
            continue
        if c in STUFF:
            nid += 1
            seg[m] = nid
            segments.append(Segment(nid, c, False))
            continue
        for i in np.unique(inst[m]):
            nid += 1
            seg[m & (inst == i)] = nid
            segments.append(Segment(nid, c, True, int(i)))
    return Panoptic(seg, segments)


@st.composite
def panoptic_pair(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    h, w = draw(st.integers(2, 24)), draw(st.integers(2, 24))
    block = int(rng.integers(1, 5))
    cat = _blocky(rng, (h, w), np.array([0, 1, 2, 3, 4]), block, p=[0.1, 0.25, 0.25, 0.2, 0.2])
    inst = _blocky(rng, (h, w), np.arange(1, 4), block * 2)
    pcat, pinst = cat.copy(), inst.copy()
    noise = rng.random((h, w)) < rng.uniform(0, 0.5)
    # Predictions leave no pixel unlabelled where the ground truth has a segment: there
    # torchmetrics departs from the COCO rules (it also discounts prediction void), see below.
    pcat[noise & (cat != 0)] = rng.choice([1, 2, 3, 4], (noise & (cat != 0)).sum())
    pinst[rng.random((h, w)) < 0.2] = rng.integers(1, 4)
    return cat, inst, pcat, pinst


@settings(max_examples=80, deadline=None)
@given(st.lists(panoptic_pair(), min_size=1, max_size=3))
def test_pq_equals_torchmetrics(images):
    ev = PanopticEvaluator(SCHEMA)
    ref = PanopticQuality(things=set(THINGS), stuffs=set(STUFF), return_sq_and_rq=True,
                          return_per_class=True, allow_unknown_preds_category=True)
    for cat, inst, pcat, pinst in images:
        ev.update(_to_panoptic(cat, inst), _to_panoptic(pcat, pinst))
        tgt = torch.from_numpy(np.stack([cat, inst * np.isin(cat, THINGS)], -1))[None]
        prd = torch.from_numpy(np.stack([pcat, pinst * np.isin(pcat, THINGS)], -1))[None]
        ref.update(prd.long(), tgt.long())
    res = ev.compute()
    r = ref.compute().numpy().reshape(len(THINGS + STUFF), 3).T  # pq, sq, rq x classes 1..4
    for k, c in enumerate(THINGS + STUFF):
        got = res.per_class.get(f"c{c}")
        exp = r[:, k]
        if got is None:
            continue  # a class never seen: torchmetrics reports 0 for it; we leave it out
        assert np.allclose([got["pq"], got["sq"], got["rq"]], exp, atol=1e-6), (c, got, exp)
    seen = [k for k, c in enumerate(THINGS + STUFF) if f"c{c}" in res.per_class]
    if seen:
        assert abs(res.pq - r[0, seen].mean()) < 1e-6


def test_pq_known_answer_with_crowd_and_void():
    # gt: a thing of class 1 (id 1), a crowd region of class 1 (id 2), stuff 3 (id 3), void.
    gt = np.zeros((10, 10), np.int32)
    gt[:, :4] = 1
    gt[:, 4:6] = 2
    gt[:, 6:9] = 3
    gpan = Panoptic(gt, [Segment(1, 1, True), Segment(2, 1, True, iscrowd=True),
                         Segment(3, 3, False)])
    pr = np.zeros((10, 10), np.int32)
    pr[:, :4] = 5  # matches thing 1 exactly
    pr[:, 4:6] = 6  # lies on the crowd region of its class: not a false positive
    pr[:, 6:8] = 7  # stuff: IoU 2/3 with gt 3 -> match
    pr[:, 8:] = 8  # class 4 over stuff 3 and void: 50% void, not more -> false positive
    ppan = Panoptic(pr, [Segment(5, 1, True), Segment(6, 1, True), Segment(7, 3, False),
                         Segment(8, 4, False)])
    ev = PanopticEvaluator(SCHEMA)
    ev.update(gpan, ppan)
    res = ev.compute()
    assert res.per_class["c1"]["pq"] == 1.0 and res.per_class["c1"]["fp"] == 0
    assert np.isclose(res.per_class["c3"]["pq"], 2 / 3)
    assert res.per_class["c4"]["fp"] == 1 and res.per_class["c4"]["pq"] == 0
    assert np.isclose(res.pq, (1 + 2 / 3 + 0) / 3)
    assert np.isclose(res.things["pq"], 1.0) and np.isclose(res.stuff["pq"], (2 / 3) / 2)


def test_pq_prediction_void_follows_coco_not_torchmetrics():
    """COCO (panopticapi): unlabelled prediction pixels on a ground-truth segment still count
    in its union. torchmetrics subtracts them; we follow the reference."""
    gt = np.ones((2, 4), np.int32)  # one thing of class 1, area 8
    pr = np.ones((2, 4), np.int32)
    pr[0, 0] = 0  # one unlabelled prediction pixel
    pr[1, 0] = 0
    ev = PanopticEvaluator(SCHEMA)
    ev.update(Panoptic(gt, [Segment(1, 1, True)]), Panoptic(pr, [Segment(1, 1, True)]))
    assert ev.compute().per_class["c1"]["sq"] == 6 / 8  # panopticapi; torchmetrics gives 6/6


@settings(max_examples=8, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_semantic_iou_equals_cityscapesscripts(tmp_path_factory, seed):
    """Cityscapes' own evaluator: class IoU over its 19 evaluated labels, ignoreInEval
    ground truth skipped, equals our dataset IoU with those ids mapped to the ignore id."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as cs
    from cityscapesscripts.helpers.labels import labels as cs_labels
    from PIL import Image

    tmp = tmp_path_factory.mktemp("cs")
    rng = np.random.default_rng(seed)
    ids = np.array([lb.id for lb in cs_labels if lb.id >= 0])
    ignored = [lb.id for lb in cs_labels if lb.ignoreInEval and lb.id >= 0]
    gts, preds = [], []
    for k in range(2):
        g = _blocky(rng, (24, 32), ids, block=4).astype(np.uint8)
        p = np.where(rng.random(g.shape) < 0.3, rng.choice(ids, g.shape), g).astype(np.uint8)
        Image.fromarray(g).save(tmp / f"g{k}_gtFine_labelIds.png")
        Image.fromarray(p).save(tmp / f"p{k}.png")
        gts.append(g)
        preds.append(p)
    import copy

    args = copy.copy(cs.args)
    args.quiet, args.JSONOutput, args.evalInstLevelScore = True, False, False
    args.evalLabels = [lb.id for lb in cs_labels if lb.id >= 0 and not lb.ignoreInEval]
    args.exportFile = str(tmp / "r.json")
    res = cs.evaluateImgLists([str(tmp / f"p{k}.png") for k in range(2)],
                              [str(tmp / f"g{k}_gtFine_labelIds.png") for k in range(2)], args)
    ev = SemanticEvaluator(34)
    for g, p in zip(gts, preds):
        ev.update(np.where(np.isin(g, ignored), 255, g), p)
    ours = ev.compute()
    for lb in cs_labels:
        if lb.id in args.evalLabels:
            ref = res["classScores"][lb.name]
            if np.isnan(ref):
                assert np.isnan(ours.iou[lb.id]) or ours.iou[lb.id] == 0
            else:
                assert abs(ours.iou[lb.id] - ref) < 1e-6


def test_majority_mapping_names_clusters_by_overlap():
    from segflow.metrics import majority_mapping

    labels = np.array([0, 0, 1, 1, 1, 2])
    gt = np.array([5, 5, 3, 3, 5, 7])
    assert majority_mapping(labels, gt, 4).tolist() == [5, 3, 7, 0]


def _shift_ids(p: Panoptic, by: int) -> Panoptic:
    seg = np.where(p.seg_ids > 0, p.seg_ids + by, 0).astype(np.int32)
    return Panoptic(seg, [Segment(s.id + by, s.category_id, s.isthing, s.instance_id)
                          for s in p.segments])


@settings(max_examples=40, deadline=None)
@given(st.lists(panoptic_pair(), min_size=1, max_size=3))
def test_pq_and_category_map_same_on_the_fast_and_the_general_path(images):
    # ids below 256 take OpenCV's look-up table and 2-D histogram; ids shifted past 255 take
    # the general numpy path: the results must not differ.
    fast, general = PanopticEvaluator(SCHEMA), PanopticEvaluator(SCHEMA)
    for cat, inst, pcat, pinst in images:
        g, p = _to_panoptic(cat, inst), _to_panoptic(pcat, pinst)
        assert (g.small_index() is not None) == bool(g.segments)  # no segments: general path
        gs, ps = _shift_ids(g, 1000), _shift_ids(p, 700)
        assert gs.small_index() is None
        fast.update(g, p)
        general.update(gs, ps)
        want = np.full(cat.shape, 255, np.int32)
        for s in g.segments:
            want[g.seg_ids == s.id] = s.category_id
        assert np.array_equal(g.category_map(), want)
        assert np.array_equal(gs.category_map(), want)
        assert g.category_map().dtype == gs.category_map().dtype
    a, b = fast.compute(), general.compute()
    assert a.per_class == b.per_class and a.pq == b.pq
