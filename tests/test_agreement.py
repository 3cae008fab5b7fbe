"""Agreement and consensus of annotators, against independent references and hand-worked cases."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from segflow.annotations import Instance, Instances
from segflow.errors import SegflowError
from segflow.metrics import agreement as ag
from segflow.metrics import boundary_f1
from segflow.metrics import voting as vt
from segflow.metrics.consensus import (
    instance_consensus,
    iou_matrix,
    match_objects,
    semantic_consensus,
    staple,
)


def blocky(rng, n, shape=(64, 97), cells=(8, 12), noise=0.05, dtype=np.uint8):
    base = rng.integers(0, n, cells).astype(np.uint16)
    a = cv2.resize(base, shape[::-1], interpolation=cv2.INTER_NEAREST).astype(dtype)
    b = np.where(rng.random(shape) < noise, rng.integers(0, n, shape), a).astype(dtype)
    return a, np.roll(b, 1, axis=1)


# ---- IoU / Dice -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 5, 14, 15, 40])
def test_iou_matches_torchmetrics(n):
    import torch
    from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex

    rng = np.random.default_rng(n)
    a, b = blocky(rng, n)
    s = ag.scores(ag.confusion(a, b, n))
    ta, tb = torch.from_numpy(a.astype(np.int64)), torch.from_numpy(b.astype(np.int64))
    ref = MulticlassJaccardIndex(num_classes=n, average=None)(tb, ta).numpy()
    dice = MulticlassF1Score(num_classes=n, average=None)(tb, ta).numpy()
    present = np.isfinite(s["iou"])
    np.testing.assert_allclose(s["iou"][present], ref[present], rtol=1e-6)
    np.testing.assert_allclose(s["dice"][present], dice[present], rtol=1e-6)
    assert s["miou"] == pytest.approx(ref[present].mean())


def test_confusion_with_ignore_matches_numpy():
    rng = np.random.default_rng(3)
    for dtype, n, ign in ((np.uint8, 6, 255), (np.int32, 300, -1), (np.uint16, 20, 255)):
        a, b = blocky(rng, n, dtype=dtype)
        a[rng.random(a.shape) < 0.1] = ign
        b[rng.random(b.shape) < 0.1] = ign
        keep = (a != ign) & (b != ign)
        ref = np.zeros((n, n), np.int64)
        np.add.at(ref, (a[keep].astype(int), b[keep].astype(int)), 1)
        np.testing.assert_array_equal(ag.confusion(a, b, n, ignore_index=ign), ref)


def test_bad_label_maps_and_parameters():
    a = np.zeros((4, 4), np.uint8)
    with pytest.raises(SegflowError, match="integer class ids"):
        ag.confusion(a.astype(float), a, 3)
    with pytest.raises(SegflowError, match="class id 7 is outside 0..2"):
        ag.confusion(a, np.full((4, 4), 7, np.uint8), 3)
    with pytest.raises(SegflowError, match="outside"):
        ag.confusion(a, np.full((4, 4), 2**62, np.int64), 3)
    with pytest.raises(SegflowError, match="differ in size"):
        ag.confusion(a, np.zeros((4, 5), np.uint8), 3)
    with pytest.raises(SegflowError, match="2-D"):
        ag.confusion(np.zeros((2, 2, 2), np.uint8), a, 3)
    for tol in (float("nan"), float("inf"), -1, 2.5, 2**63, "2", None, True):
        with pytest.raises(SegflowError, match="tolerance"):
            ag.boundary_counts(a, a, 3, tolerance=tol)
    for n in (0, -3, 2**63, 2.0, float("nan")):
        with pytest.raises(SegflowError, match="num_classes"):
            ag.confusion(a, a, n)
    empty = np.zeros((0, 0), np.uint8)
    assert ag.confusion(empty, empty, 3).sum() == 0
    assert ag.boundary_counts(empty, empty, 3).sum() == 0
    assert np.isnan(ag.pair_stats(empty, empty, 3).scores()["miou"])
    assert vt.disagreement([empty, empty, empty], 3).fraction == 0.0


# ---- boundary F1 --------------------------------------------------------------------------------


def test_boundary_f1_hand_worked():
    """A 5x5 square (class 1) and the same square one pixel to the right.

    Each outline has 16 pixels. At tolerance 0 the shared outline pixels are the top and bottom
    rows, columns 3..6: 8 on each side, so P = R = 8/16 and F1 = 0.5. At tolerance 1 every
    outline pixel has the other outline within one pixel: F1 = 1."""
    a = np.zeros((10, 10), np.uint8)
    b = np.zeros((10, 10), np.uint8)
    a[2:7, 2:7] = 1
    b[2:7, 3:8] = 1
    c0 = ag.boundary_counts(a, b, 2, tolerance=0)
    assert c0[1].tolist() == [8, 16, 8, 16]
    assert ag.bf1_scores(c0)[1] == pytest.approx(0.5)
    c1 = ag.boundary_counts(a, b, 2, tolerance=1)
    assert c1[1].tolist() == [16, 16, 16, 16]
    assert ag.bf1_scores(c1)[1] == 1.0
    # Nothing of class 2 anywhere: no boundary, no score.
    assert np.isnan(ag.bf1_scores(ag.boundary_counts(a, b, 3))[2])


@pytest.mark.parametrize("tol", [0, 1, 2, 3, 6])
def test_boundary_counts_equal_the_evaluators_per_class_definition(tol):
    rng = np.random.default_rng(tol)
    for n, dtype in ((3, np.uint8), (12, np.uint8), (300, np.uint16)):
        a, b = blocky(rng, n, dtype=dtype)
        ign = 255 if n < 255 else 1000
        a[:5, :7] = ign  # an ignored corner
        got = ag.boundary_counts(a, b, n, tolerance=tol, ignore_index=ign)
        valid = (a != ign) & (b != ign)
        for c in range(n):
            assert tuple(got[c]) == boundary_f1(a, b, c, tol, valid), (n, c)


# ---- disagreement and majority ----------------------------------------------------------------


def test_majority_vote_hand_computed():
    a1 = np.array([[0, 1, 2, 255], [3, 3, 1, 255]], np.uint8)
    a2 = np.array([[0, 2, 2, 1], [3, 1, 255, 255]], np.uint8)
    a3 = np.array([[1, 1, 0, 2], [3, 2, 255, 255]], np.uint8)
    # column by column: {0,0,1} -> 0; {1,2,1} -> 1; {2,2,0} -> 2; {-,1,2} tie -> 1 (lowest);
    # {3,3,3} -> 3; {3,1,2} three-way tie -> 1; {1,-,-} -> 1; nobody -> 255
    want = np.array([[0, 1, 2, 1], [3, 1, 1, 255]])
    np.testing.assert_array_equal(vt.majority_vote([a1, a2, a3], 4), want)
    tie = want.copy()
    tie[0, 3] = tie[1, 1] = 255
    np.testing.assert_array_equal(vt.majority_vote([a1, a2, a3], 4, tie="ignore"), tie)
    d = vt.disagreement([a1, a2, a3], 4)
    np.testing.assert_array_equal(d.count, [[1, 1, 1, 1], [0, 2, 0, 0]])
    np.testing.assert_array_equal(d.runner_up, [[1, 2, 0, 2], [255, 2, 255, 255]])
    np.testing.assert_array_equal(semantic_consensus([a1, a2, a3], 4), want)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_disagreement_matches_brute_force(k):
    rng = np.random.default_rng(k)
    for _ in range(10):
        n = int(rng.integers(1, 6))
        maps = [rng.integers(0, n + 1, (6, 7)).astype(np.uint8) for _ in range(k)]
        for m in maps:
            m[m == n] = 255
        d = vt.disagreement(maps, n)
        st = np.stack(maps)
        for y, x in np.ndindex(6, 7):
            v = [int(t) for t in st[:, y, x] if t != 255]
            cnt = np.bincount(v, minlength=n)
            if not v:
                assert (d.majority[y, x], d.count[y, x]) == (255, 0)
                continue
            assert d.majority[y, x] == np.argmax(cnt)
            assert d.count[y, x] == len(v) - cnt.max()
            rest = cnt.copy()
            rest[np.argmax(cnt)] = -1
            assert d.runner_up[y, x] == (np.argmax(rest) if rest.max() > 0 else 255)


def test_fewer_than_two_annotators():
    a = np.zeros((3, 3), np.uint8)
    with pytest.raises(SegflowError, match="at least two annotators"):
        vt.disagreement([a], 2)
    with pytest.raises(SegflowError, match="at least two annotators"):
        vt.majority_vote([a], 2)
    with pytest.raises(SegflowError, match="at least two annotators"):
        ag.AgreementEvaluator(1, 2)


# ---- STAPLE -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_staple_equals_simpleitk(seed):
    sitk = pytest.importorskip("SimpleITK")
    rng = np.random.default_rng(seed)
    ids = np.array([0, 3, 7])  # not 0..C-1: our wrapper renumbers them
    truth = ids[cv2.resize(rng.integers(0, 3, (6, 6)).astype(np.uint8), (40, 30),
                           interpolation=cv2.INTER_NEAREST)]
    k = 3 + seed % 3
    maps = [np.where(rng.random(truth.shape) < 0.1 + 0.1 * j, rng.choice(ids, truth.shape),
                     truth).astype(np.uint8) for j in range(k)]
    f = sitk.MultiLabelSTAPLEImageFilter()
    f.SetLabelForUndecidedPixels(255)
    ref = sitk.GetArrayFromImage(f.Execute([sitk.GetImageFromArray(m.astype(np.uint16))
                                            for m in maps]))
    np.testing.assert_array_equal(staple(maps, 8), ref)
    # STAPLE weighs the annotators: it recovers the truth at least as well as their majority.
    assert (staple(maps, 8) == truth).mean() >= (vt.majority_vote(maps, 8) == truth).mean() - 0.01


def test_staple_with_ignore_and_unanimous():
    a = np.array([[0, 1], [255, 2]], np.uint8)
    np.testing.assert_array_equal(staple([a, a, a], 3), a)
    one = np.full((3, 3), 2, np.uint8)
    np.testing.assert_array_equal(staple([one, one], 3), one)


# ---- objects: Hungarian matching and consensus -----------------------------------------------


def _obj(y0, y1, x0, x1, cat=1, shape=(40, 60)):
    m = np.zeros(shape, np.uint8)
    m[y0:y1, x0:x1] = 1
    return Instance.from_mask(m, cat)


def test_match_objects_is_the_optimal_assignment():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = [_obj(*sorted(rng.integers(0, 40, 2) + [0, 3]), *sorted(rng.integers(0, 60, 2) + [0, 3]))
             for _ in range(4)]
        b = [_obj(*sorted(rng.integers(0, 40, 2) + [0, 3]), *sorted(rng.integers(0, 60, 2) + [0, 3]))
             for _ in range(3)]
        iou = iou_matrix(a, b)
        best = max(sum(iou[i, j] for i, j in zip(p, range(3))) for p in itertools.permutations(range(4), 3))
        got = match_objects(a, b, min_iou=1e-9)
        assert sum(v for _, _, v in got) == pytest.approx(best)


def test_match_objects_beats_greedy_and_drops_weak_pairs():
    # Strips along x: a0 [0, 20), a1 [10, 30); b0 [0, 16), b1 [1, 21). The best single pair is
    # a0-b1 (IoU 19/21); greedy takes it and is left with a1-b0 (6/30, below 0.3). The
    # Hungarian assignment pairs a0-b0 (0.8) and a1-b1 (11/29): a larger sum, both kept.
    a = [_obj(0, 10, 0, 20), _obj(0, 10, 10, 30)]
    b = [_obj(0, 10, 0, 16), _obj(0, 10, 1, 21)]
    iou = iou_matrix(a, b)
    np.testing.assert_allclose(iou, [[0.8, 19 / 21], [6 / 30, 11 / 29]])
    assert [(i, j) for i, j, _ in match_objects(a, b, min_iou=0.3)] == [(0, 0), (1, 1)]
    assert match_objects(a, b, min_iou=0.99) == []
    assert match_objects([], b) == []
    # order does not matter
    assert [(i, j) for i, j, _ in match_objects(a[::-1], b, min_iou=0.3)] == [(0, 1), (1, 0)]
    with pytest.raises(SegflowError, match="min_iou"):
        match_objects(a, b, min_iou=float("nan"))


def test_instance_consensus_hand_computed():
    shape = (20, 30)
    car = (2, 10, 2, 12)
    ann = [
        Instances(*shape, [_obj(2, 10, 2, 12, 1, shape), _obj(12, 18, 20, 28, 2, shape)]),
        Instances(*shape, [_obj(2, 10, 3, 13, 1, shape)]),                      # misses object 2
        Instances(*shape, [_obj(12, 18, 20, 27, 2, shape), _obj(2, 10, 2, 12, 2, shape),
                           _obj(0, 3, 0, 3, 1, shape)]),                       # an extra object
    ]
    out = instance_consensus(ann, method="majority")
    assert len(out) == 2  # the extra object has one vote of three
    masks = {it.category_id: it.mask.astype(bool) for it in out.items}
    # object 1: classes {1, 1, 2} -> 1; pixels in at least two of three masks: columns 2..12
    want = np.zeros(shape, bool)
    want[car[0]:car[1], 2:12] = True
    np.testing.assert_array_equal(masks[1], want)
    # object 2: two of three annotators; a pixel needs two votes: columns 20..26
    want2 = np.zeros(shape, bool)
    want2[12:18, 20:27] = True
    np.testing.assert_array_equal(masks[2], want2)
    # with two annotators both must have drawn an object (a tie is no object)
    assert len(instance_consensus(ann[:2])) == 1
    staple_out = instance_consensus(ann, method="staple")
    assert len(staple_out) == 2


# ---- one annotation against a reference ------------------------------------------------------


def test_error_kinds_hand_worked():
    ref = np.array([[0, 1, 1, 2], [0, 0, 255, 2]], np.uint8)
    ann = np.array([[1, 0, 1, 1], [0, 2, 1, 255]], np.uint8)
    # (0,0) over-painted; (0,1) missed; (0,2) agree; (0,3) wrong class;
    # (1,0) agree; (1,1) over-painted; (1,2) and (1,3) ignored by one side
    want = [[2, 1, 0, 3], [0, 2, 0, 0]]
    np.testing.assert_array_equal(ag.error_kinds(ann, ref, 3, background=0), want)
    np.testing.assert_array_equal(ag.error_kinds(ann, ref, 3), [[3, 3, 0, 3], [0, 3, 0, 0]])
    with pytest.raises(SegflowError, match="background"):
        ag.error_kinds(ann, ref, 3, background=7)


def test_score_against_reference_semantic():
    import io

    from PIL import Image

    from segflow.annotations import LabelSchema
    from segflow.quality import score_against_reference

    schema = LabelSchema.from_list([{"id": 0, "name": "bg"}, {"id": 1, "name": "cell"}])
    ref = np.zeros((20, 20), np.uint8)
    ref[5:15, 5:15] = 1
    ann = np.zeros_like(ref)
    ann[5:15, 7:17] = 1  # two columns missed on the left, two over-painted on the right
    r = score_against_reference(ann, ref, schema, tolerance=0)
    assert r.pixels == {"missed": 20, "overpainted": 20, "wrong_class": 0, "total": 400}
    iou_cell = 80 / 120
    iou_bg = 280 / 320
    assert r.per_class["cell"]["iou"] == pytest.approx(iou_cell)
    assert r.score == r.miou == pytest.approx((iou_cell + iou_bg) / 2)
    png = Image.open(io.BytesIO(r.heatmap_png))
    assert png.size == (20, 20) and png.mode == "P"
    kinds = np.asarray(png)
    assert kinds[10, 5] == 1 and kinds[10, 16] == 2 and kinds[10, 10] == 0
    same = score_against_reference(ref, ref, schema, metric="boundary_f1")
    assert same.score == 1.0 and same.pixels["missed"] == same.pixels["overpainted"] == 0
    with pytest.raises(SegflowError, match="does not fit"):
        score_against_reference(ann, ref, schema, metric="pq")
    with pytest.raises(SegflowError, match="differ in size"):
        score_against_reference(ann[:10], ref, schema)


def test_score_against_reference_panoptic_pq_is_the_evaluators():
    from segflow.metrics import PanopticEvaluator
    from segflow.quality import score_against_reference
    from segflow.synth import schema_of, synthesize
    from segflow.synth.annotators import simulate_annotator

    schema = schema_of("street")
    s = synthesize("street", seed=4, size=96)
    ann = simulate_annotator(s.panoptic, schema, seed=1, grow=2, drop=0.3)
    r = score_against_reference(ann, s.panoptic, schema, task="panoptic")
    ev = PanopticEvaluator(schema)
    ev.update(s.panoptic, ann)
    assert r.score == r.pq == pytest.approx(ev.compute().pq)
    assert r.pixels["overpainted"] > 0  # objects grown over the road
    inst = score_against_reference(s.panoptic.to_instances(), s.panoptic, schema, task="instance")
    assert inst.score == 1.0 and inst.miou == 1.0
    assert set(inst.to_dict()) >= {"score", "per_class", "pixels"}


def test_heat_map_drawing_round_trips():
    import io

    from PIL import Image

    from segflow.ops.draw import draw_disagreement, heat_palette, heatmap_png

    count = np.array([[0, 1, 2], [0, 0, 2]], np.uint8)
    img = np.full((2, 3, 3), 200, np.uint8)
    out = draw_disagreement(count, 3, img, dim=0.5)
    assert out[0, 0].tolist() == [100, 100, 100]  # agreeing: only dimmed
    assert out[0, 1, 0] > out[0, 1, 2] and out[0, 2, 1] < out[0, 1, 1]  # yellow, then red
    assert (img == 200).all()  # never the caller's array
    png = Image.open(io.BytesIO(heatmap_png(count, 3)))
    np.testing.assert_array_equal(np.asarray(png), count)
    assert png.info["transparency"][0] == 0 and png.info["transparency"][1] > 0
    np.testing.assert_array_equal(np.asarray(png.getpalette()[:9]).reshape(3, 3), heat_palette(3)[:3])
    with pytest.raises(ValueError):
        draw_disagreement(count[None], 3)
    with pytest.raises(ValueError):
        draw_disagreement(count, 3, img[:1])
    with pytest.raises(ValueError):
        heatmap_png(count, 3, alpha=float("nan"))


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.integers(0, 4), st.data())
def test_pair_statistics_property(h, w, tol, data):
    n = data.draw(st.integers(1, 6))
    labels = st.sampled_from([*range(n), 255])
    a = data.draw(arrays(np.uint8, (h, w), elements=labels))
    b = data.draw(arrays(np.uint8, (h, w), elements=labels))
    keep = (a != 255) & (b != 255)
    ref = np.zeros((n, n), np.int64)
    np.add.at(ref, (a[keep].astype(int), b[keep].astype(int)), 1)
    st_ = ag.pair_stats(a, b, n, tolerance=tol)
    np.testing.assert_array_equal(st_.confusion, ref)
    for c in range(n):
        assert tuple(st_.boundary[c]) == boundary_f1(a, b, c, tol, keep)
    # the two-annotator disagreement map and the error kinds, on the same tiny maps
    d = vt.disagreement([a, b], n)
    np.testing.assert_array_equal(d.count, (keep & (a != b)).astype(np.uint8))
    both_ign = (a == 255) & (b == 255)
    want_major = np.where(a == 255, b, np.where(b == 255, a, np.minimum(a, b)))
    np.testing.assert_array_equal(d.majority, np.where(both_ign, 255, want_major))
    kinds = ag.error_kinds(a, b, n, background=0)
    np.testing.assert_array_equal(kinds > 0, keep & (a != b))
    np.testing.assert_array_equal(kinds == 1, keep & (a == 0) & (b != 0))
