"""The data model: RLE round trips, conversions and overlap rules (known answers)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from segflow.annotations import (
    Instance,
    Instances,
    LabelSchema,
    Panoptic,
    Segment,
    SemanticMask,
    decode_rle,
    encode_rle,
    panoptic_from,
)
from segflow.errors import SegflowError

SCHEMA = LabelSchema.from_list([
    {"id": 0, "name": "background", "isthing": False},
    {"id": 1, "name": "road", "color": [128, 64, 128]},
    {"id": 2, "name": "car", "color": [0, 0, 142], "isthing": True},
    {"id": 3, "name": "person", "color": [220, 20, 60], "isthing": True},
])


@settings(max_examples=50, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30)),
              elements=st.integers(0, 1)))
def test_rle_round_trip(mask):
    rle = encode_rle(mask)
    assert isinstance(rle["counts"], str)
    assert np.array_equal(decode_rle(rle), mask)
    # uncompressed (list) counts, as some COCO files carry, decode to the same mask
    fortran = mask.T.ravel()
    counts, last, run = [], 0, 0
    for v in fortran:
        if v != last:
            counts.append(run)
            run, last = 0, v
        run += 1
    counts.append(run)
    assert np.array_equal(decode_rle({"size": list(mask.shape), "counts": counts}), mask)


def test_instance_box_and_area_agree_with_pycocotools():
    m = np.zeros((20, 30), np.uint8)
    m[3:9, 5:17] = 1
    inst = Instance.from_mask(m, 2, id=7)
    assert inst.bbox == [5.0, 3.0, 12.0, 6.0] and inst.area == 72
    assert inst.area == int(mask_utils.area(mask_utils.encode(np.asfortranarray(m))))


def _scene():
    sem = np.zeros((20, 20), np.int32)
    sem[10:] = 1  # road
    sem[2:8, 2:8] = 2  # a car
    sem[12:18, 12:18] = 3  # a person
    sem[0, 0] = 255  # ignore
    a = np.zeros((20, 20), np.uint8)
    a[2:8, 2:8] = 1
    b = np.zeros((20, 20), np.uint8)
    b[12:18, 12:18] = 1
    inst = Instances(20, 20, [Instance.from_mask(a, 2, id=1), Instance.from_mask(b, 3, id=2)])
    return SemanticMask(sem), inst


def test_semantic_plus_instances_round_trip_through_panoptic():
    sem, inst = _scene()
    pan = panoptic_from(sem, inst, SCHEMA)
    back = pan.to_semantic()
    assert np.array_equal(back.ids, sem.ids)
    got = pan.to_instances()
    assert [i.category_id for i in got.items] == [2, 3]
    for g, o in zip(got.items, inst.items):
        assert np.array_equal(g.mask, o.mask)


def test_overlap_rules_highest_score_wins_and_uncovered_things_are_void():
    sem = np.zeros((10, 10), np.int32)
    sem[:, 5:] = 2  # car pixels on the right half
    a = np.zeros((10, 10), np.uint8)
    a[2:6, 2:8] = 1
    b = np.zeros((10, 10), np.uint8)
    b[4:8, 4:9] = 1
    inst = Instances(10, 10, [Instance.from_mask(a, 2, id=1, score=0.4),
                              Instance.from_mask(b, 2, id=2, score=0.9)])
    pan = panoptic_from(SemanticMask(sem), inst, SCHEMA)
    seg_of = {s.instance_id: s.id for s in pan.segments if s.isthing}
    assert pan.seg_ids[5, 5] == seg_of[2]  # overlap goes to the higher score
    assert pan.seg_ids[2, 2] == seg_of[1]
    assert pan.seg_ids[9, 9] == 0  # car pixel without an instance: void
    assert pan.seg_ids[0, 0] != 0  # background stuff
    assert sorted(pan.areas().values()) == sorted(
        [int((pan.seg_ids == s.id).sum()) for s in pan.segments])


def test_instance_masks_may_overlap_but_panoptic_segments_may_not():
    m = np.ones((4, 4), np.uint8)
    inst = Instances(4, 4, [Instance.from_mask(m, 2, id=1), Instance.from_mask(m, 2, id=2)])
    assert len(inst) == 2
    with pytest.raises(SegflowError, match="unique"):
        Panoptic(np.zeros((4, 4), np.int32), [Segment(1, 2, True), Segment(1, 3, True)])


def test_schema_validation():
    with pytest.raises(SegflowError, match="duplicate class ids"):
        LabelSchema.from_list([{"id": 1, "name": "a"}, {"id": 1, "name": "b"}])
    with pytest.raises(SegflowError, match="ignore_index"):
        LabelSchema.from_list([{"id": 255, "name": "a"}])
    with pytest.raises(SegflowError, match="needs id and name"):
        LabelSchema.from_list([{"name": "a"}])
    assert SCHEMA.thing_ids == [2, 3] and SCHEMA.stuff_ids == [0, 1]
    assert LabelSchema.from_list([{"id": 2, "name": "a"}]).names_by_id() == [None, None, "a"]
    assert tuple(SCHEMA.palette()[2]) == (0, 0, 142)
    assert LabelSchema.from_list(SCHEMA.to_list()) == SCHEMA
