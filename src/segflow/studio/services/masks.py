"""Annotations on the wire and in the database.

An annotation is a *label map*: one segment id per pixel (0 = unlabelled) plus the segments
``[{"id", "category_id", "iscrowd"}]``. On the wire (the REST API and the editor) the map is
row-major runs ``[value, length, value, length, ...]``; in the database it is the same runs as
little-endian int32, zlib-compressed (a 1-megapixel map with 20 objects is ~15 kB). One run
encoding for the whole map keeps a save or a fetch at a few milliseconds; per-object COCO RLE
(pycocotools) is derived when exporting, where it is needed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from segflow.annotations import LabelSchema, Panoptic, Segment


class MaskError(ValueError):
    """A malformed annotation; the message names the field."""


def encode_runs(ids: np.ndarray) -> list[int]:
    flat = np.ascontiguousarray(ids).ravel()
    if flat.size == 0:
        return []
    starts = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1])
    lengths = np.diff(np.concatenate([starts, [flat.size]]))
    return np.stack([flat[starts], lengths], 1).ravel().astype(np.int64).tolist()


MAX_ID = 2**31 - 1


def decode_runs(runs, height: int, width: int) -> np.ndarray:
    """Runs ``[id, length, ...]`` to an ``(height, width)`` int32 label map (``check_runs``
    first: nothing is allocated for runs that do not fit the image)."""
    values, lengths = check_runs(runs, height, width)
    return np.repeat(values.astype(np.int32), lengths).reshape(height, width)


def check_runs(runs, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The ids and lengths (int64) of runs that exactly cover a ``height`` x ``width`` image.

    The lengths are bounded before they are summed: an int64 sum can wrap around (four lengths
    of 2^62 plus the image size sum to the image size in 64 bits), and ``np.repeat`` would then
    write far past its buffer (a SIGSEGV that took the server down).
    """
    if isinstance(runs, np.ndarray) and runs.dtype.kind in "iu" and runs.ndim == 1:
        arr = runs.astype(np.int64, copy=False)  # stored runs: int32, cannot overflow below
    else:
        try:
            arr = np.asarray(runs)
            if arr.dtype.kind == "O":  # integers beyond int64 (OverflowError), mixed types
                arr = np.asarray(runs, dtype=np.int64)
            elif arr.dtype.kind not in "iu" and arr.size:
                raise TypeError(arr.dtype)  # floats, strings, booleans
            arr = arr.astype(np.int64, copy=False)
        except (TypeError, ValueError, OverflowError):
            raise MaskError("runs: expected a flat list of integers [id, length, ...] with ids "
                            f"between 0 and {MAX_ID} and lengths between 1 and the image size"
                            ) from None
    if arr.ndim != 1 or arr.size % 2:
        raise MaskError("runs: expected an even-length flat list [id, length, id, length, ...]")
    values, lengths = arr[0::2], arr[1::2]
    total = height * width
    if values.size and (int(values.min()) < 0 or int(values.max()) > MAX_ID):
        raise MaskError(f"runs: ids must be between 0 and {MAX_ID}")
    if lengths.size and (int(lengths.min()) <= 0 or int(lengths.max()) > total):
        raise MaskError(f"runs: lengths must be between 1 and the image size ({total})")
    if lengths.size > total:
        raise MaskError(f"runs: {lengths.size} runs for {total} pixels")
    # each length <= total and at most total of them: the int64 sum is <= total^2 (< 2^63 for
    # any image under 3 gigapixels), so it cannot wrap around
    covered = int(lengths.sum()) if total < 3_000_000_000 else sum(lengths.tolist())
    if covered != total:
        raise MaskError(f"runs: cover {covered} pixels, the image has "
                        f"{height}x{width} = {total}")
    return values, lengths


def pixel_counts(ids: np.ndarray) -> dict[int, int]:
    """Pixels per id present. A bincount is one O(n) pass where np.unique sorts (10x slower on
    1 MP); very large ids (up to 2^31, from an API client) fall back to np.unique."""
    hi = int(ids.max()) if ids.size else 0
    if hi < 1 << 22:
        bc = np.bincount(ids.ravel())
        present = np.flatnonzero(bc)
        return dict(zip(present.tolist(), bc[present].tolist()))
    present, counts = np.unique(ids, return_counts=True)
    return dict(zip(present.tolist(), counts.tolist()))


def check_segments(segments, counts: dict[int, int], schema: LabelSchema) -> list[dict]:
    """Validate the segment list against the label map's ids (``pixel_counts``) and the
    schema."""
    if not isinstance(segments, list):
        raise MaskError("segments: expected a list of {id, category_id}")
    known = set(schema.ids)
    out, seen = [], set()
    for k, s in enumerate(segments):
        if not isinstance(s, dict) or "id" not in s or "category_id" not in s:
            raise MaskError(f"segments[{k}]: needs id and category_id")
        try:
            sid, cid = int(s["id"]), int(s["category_id"])
        except (TypeError, ValueError):
            raise MaskError(f"segments[{k}]: id and category_id must be integers") from None
        if sid <= 0 or sid in seen:
            raise MaskError(f"segments[{k}]: id {sid} must be > 0 and unique")
        if cid not in known:
            raise MaskError(f"segments[{k}]: category_id {cid} is not in the project's schema "
                            f"(ids {sorted(known)})")
        seen.add(sid)
        out.append({"id": sid, "category_id": cid, "iscrowd": int(bool(s.get("iscrowd", 0)))})
    stray = sorted(set(counts) - {0} - seen)
    if stray:
        raise MaskError(f"runs: pixel ids {stray[:5]} have no entry in segments")
    return out


def from_wire(runs, segments, height: int, width: int, schema: LabelSchema) -> Labels:
    """A label map as the API receives it, validated and packed without expanding it to pixels:
    areas are sums of run lengths, and neighbouring runs of one id are merged, so the stored
    runs are exactly ``encode_runs`` of the map (O(runs), not O(pixels), per save)."""
    values, lengths = check_runs(runs, height, width)
    if values.size:
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        values, lengths = values[starts], np.add.reduceat(lengths, starts)
    present, inverse = np.unique(values, return_inverse=True)
    counts = dict(zip(present.tolist(), np.bincount(inverse, weights=lengths,
                                                    minlength=present.size).astype(np.int64).tolist()))
    segs = check_segments(segments, counts, schema)
    segs = [{**s, "area": counts[s["id"]]} for s in segs if counts.get(s["id"], 0) > 0]
    packed = np.stack([values, lengths], 1).ravel().astype("<i4").tobytes()
    return Labels(segs, zlib.compress(packed, 1))


@dataclass
class Labels:
    """What an annotation version stores: segments (with their areas) and the packed runs."""

    segments: list[dict]
    runs: bytes


def pack(ids: np.ndarray, segments: list[dict], counts: dict[int, int] | None = None) -> Labels:
    """Segments without pixels are dropped; each keeps its pixel count as ``area``."""
    counts = pixel_counts(ids) if counts is None else counts
    segs = [{**s, "area": counts[s["id"]]} for s in segments if counts.get(s["id"], 0) > 0]
    runs = np.asarray(encode_runs(ids), "<i4").tobytes()
    return Labels(segs, zlib.compress(runs, 1))


def same_labels(a: Labels, b: Labels) -> bool:
    """The same label map and segments (runs are canonical, so equal maps have equal runs)."""
    key = lambda segs: sorted((s["id"], s["category_id"], int(s.get("iscrowd", 0)))  # noqa: E731
                              for s in segs)
    return key(a.segments) == key(b.segments) and (
        a.runs == b.runs or np.array_equal(unpack_runs(a.runs), unpack_runs(b.runs)))


def unpack_runs(blob: bytes | None) -> np.ndarray:
    return np.frombuffer(zlib.decompress(blob), "<i4") if blob else np.zeros(0, "<i4")


def label_map(blob: bytes | None, height: int, width: int) -> np.ndarray:
    if not blob:
        return np.zeros((height, width), np.int32)
    return decode_runs(unpack_runs(blob), height, width)


def to_wire(segments: list[dict], blob: bytes | None, height: int, width: int) -> dict:
    runs = unpack_runs(blob).tolist() if blob else [0, height * width]
    return {"width": width, "height": height, "runs": runs,
            "segments": [{"id": s["id"], "category_id": s["category_id"],
                          "iscrowd": int(s.get("iscrowd", 0))} for s in segments]}


def to_panoptic(segments: list[dict], blob: bytes | None, height: int, width: int,
                schema: LabelSchema) -> Panoptic:
    things = set(schema.thing_ids)
    ids = label_map(blob, height, width)
    return Panoptic(ids, [Segment(s["id"], s["category_id"], s["category_id"] in things,
                                  s["id"] if s["category_id"] in things else 0,
                                  bool(s.get("iscrowd", 0))) for s in segments])


def from_panoptic(pan: Panoptic) -> Labels:
    segs = [{"id": s.id, "category_id": s.category_id, "iscrowd": int(s.iscrowd)}
            for s in pan.segments]
    return pack(pan.seg_ids.astype(np.int32), segs)


def diff_png(base: np.ndarray, a: Labels, b: Labels) -> bytes:
    """Two versions of one image's labels over the (RGB uint8) image, darkened: green where
    ``b`` labels pixels ``a`` left empty, red where it removed them, yellow where the class
    changed."""
    from segflow.ops.draw import png_bytes

    h, w = base.shape[:2]
    maps = []
    for lab in (a, b):
        ids = label_map(lab.runs or None, h, w)
        lut = np.zeros(int(ids.max()) + 1, np.int32)
        for s in lab.segments:
            if s["id"] < lut.size:
                lut[s["id"]] = s["category_id"]
        maps.append((ids > 0, lut[ids]))
    out = base.astype(np.float32) * 0.5
    (la, ca), (lb, cb) = maps
    for sel, col in ((~la & lb, (0, 220, 0)), (la & ~lb, (230, 0, 0)),
                     (la & lb & (ca != cb), (240, 220, 0))):
        out[sel] = np.asarray(col, np.float32)
    return png_bytes(out.clip(0, 255).astype(np.uint8))
