"""Labels of a large item (a 3-D volume, a huge raster) stored in chunks.

A large item's label map is too big to send or store whole on every save, so it is cut into
chunks (the slices of a volume, the tiles of a raster), each a 2-D label map stored as the same
packed runs as a whole image's (``services.masks``). A save writes only the chunks it changed,
as rows of ``label_chunks`` with the new version; the chunk ``key`` at version ``v`` is its row
with the highest version <= v (no row: unlabelled). The version itself is one ``annotations``
row (segments with their areas, ``runs`` None), so submit, review, history and the optimistic
lock are the 2-D editor's, unchanged.

What a chunk is (its key and shape) is the caller's business: ``services.volumes`` and
``services.tiles`` map their views (a plane on any axis, a rectangle of a raster) onto chunks.
"""

from __future__ import annotations

import zlib

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from segflow.studio.services import masks
from segflow.studio.tables import Annotation, Event, LabelChunk, Task, now

EDITABLE = ("assigned", "rejected")


class Conflict(Exception):
    """Someone saved since ``base_version``; nothing was written."""


def _latest_rows(db: Session, tid: int, version: int, keys=None, what=(LabelChunk,)):
    newest = (select(LabelChunk.key, func.max(LabelChunk.version).label("v"))
              .where(LabelChunk.task_id == tid, LabelChunk.version <= version))
    if keys is not None:
        newest = newest.where(LabelChunk.key.in_(list(keys)))
    newest = newest.group_by(LabelChunk.key).subquery()
    return select(*what).join(newest, (LabelChunk.key == newest.c.key)
                              & (LabelChunk.version == newest.c.v)
                              ).where(LabelChunk.task_id == tid)


def latest(db: Session, tid: int, version: int, keys=None) -> dict[str, LabelChunk]:
    """The rows of ``keys`` (all stored keys when None) as of ``version``."""
    if keys is not None and not keys:
        return {}
    return {r.key: r for r in db.scalars(_latest_rows(db, tid, version, keys))}


def latest_counts(db: Session, tid: int, version: int) -> dict[str, dict]:
    """Pixels per segment id of every stored chunk as of ``version`` (without the runs)."""
    q = _latest_rows(db, tid, version, what=(LabelChunk.key, LabelChunk.counts))
    return dict(db.execute(q).all())


def decode(row: LabelChunk | None, shape: tuple[int, int]) -> np.ndarray:
    if row is None:
        return np.zeros(shape, np.int32)
    return masks.decode_runs(masks.unpack_runs(row.runs), *shape)


def read(db: Session, tid: int, version: int, key: str, shape: tuple[int, int]) -> np.ndarray:
    return decode(latest(db, tid, version, [key]).get(key), shape)


def read_many(db: Session, tid: int, version: int, shapes: dict[str, tuple[int, int]]
              ) -> dict[str, np.ndarray]:
    rows = latest(db, tid, version, list(shapes))
    return {k: decode(rows.get(k), s) for k, s in shapes.items()}


def save(db: Session, task: Task, user_id: int, *, base_version: int, seconds: float,
         segments: list[dict], changed: dict[str, np.ndarray], schema) -> dict:
    """Store a new version: the ``changed`` chunks (int32 label maps; those equal to the stored
    chunk are skipped) and the segments, checked against the ids of every chunk. Raises
    ``masks.MaskError`` (bad segments) or ``Conflict``; commits on success."""
    tid = task.id
    old = latest(db, tid, base_version, list(changed))
    rows, counts_of = [], {}
    for key, arr in changed.items():
        arr = np.ascontiguousarray(arr, dtype=np.int32)
        prev = old.get(key)
        if prev is None and not arr.any():
            continue
        runs = np.asarray(masks.encode_runs(arr), "<i4")
        if prev is not None and np.array_equal(runs, masks.unpack_runs(prev.runs)):
            continue
        c = {str(k): v for k, v in masks.pixel_counts(arr).items() if k}
        rows.append((key, zlib.compress(runs.tobytes(), 1), c))
        counts_of[key] = c
    # the areas: chunks changed now plus the others as stored
    total: dict[int, int] = {}
    for key, counts in latest_counts(db, tid, base_version).items():  # not the runs: 1000s of tiles
        for k, v in counts_of.get(key, counts).items():
            total[int(k)] = total.get(int(k), 0) + int(v)
    for key, c in counts_of.items():
        if key not in old:
            for k, v in c.items():
                total[int(k)] = total.get(int(k), 0) + int(v)
    segs = masks.check_segments(segments, total, schema)
    segs = [{**s, "area": total[s["id"]]} for s in segs if total.get(s["id"], 0) > 0]
    res = db.execute(update(Task).where(Task.id == tid, Task.version == base_version,
                                        Task.state.in_(EDITABLE))
                     .values(version=Task.version + 1, updated_at=now(),
                             seconds_spent=Task.seconds_spent + seconds,
                             prelabel_untouched=False))
    if res.rowcount != 1:
        db.rollback()
        raise Conflict
    v = base_version + 1
    for key, blob, c in rows:
        db.add(LabelChunk(task_id=tid, key=key, version=v, runs=blob, counts=c))
    db.add(Annotation(task_id=tid, version=v, author_id=user_id, kind="save", segments=segs,
                      runs=None))
    db.add(Event(project_id=task.project_id, task_id=tid, user_id=user_id, kind="saved",
                 seconds=seconds))
    db.commit()
    return {"version": v, "segments": len(segs), "chunks_written": len(rows)}
