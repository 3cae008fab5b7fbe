"""Project workflow on the library: importing images and datasets, pre-labelling with a
classical pipeline or a checkpoint, and task assignment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from segflow.annotations import LabelSchema
from segflow.errors import SegflowError
from segflow.studio.services import masks
from segflow.studio.services.storage import ImageStore, display_name
from segflow.studio.tables import Annotation, Event, Image, Member, Project, Task, User, now


def project_schema(p: Project) -> LabelSchema:
    return LabelSchema.from_list(p.schema)


# The editor's own keys (editor.js reads the tool keys from the page, rendered from this dict):
# a class hotkey must not take one of them, or the class could never be picked by key.
TOOL_KEYS = {"b": "brush", "e": "eraser", "p": "polygon", "f": "fill"}
EDITOR_KEYS = {**{k: f"the {v.capitalize()} tool" for k, v in TOOL_KEYS.items()},
               "n": "New object", "[": "smaller brush", "]": "larger brush", " ": "Pan (hold)"}


def check_hotkeys(classes: list[dict]) -> None:
    """Class hotkeys are unique (ignoring case) and leave the editor's keys alone."""
    seen: dict[str, str] = {}
    for c in classes:
        key = (c.get("hotkey") or "").lower()
        if not key:
            continue
        if key in EDITOR_KEYS:
            raise SegflowError(f"hotkey {c['hotkey']!r} of class {c['name']!r} is the editor's key "
                               f"for {EDITOR_KEYS[key]}; pick another (reserved: "
                               f"{', '.join(repr(k) for k in EDITOR_KEYS)})")
        if key in seen:
            raise SegflowError(f"hotkey {c['hotkey']!r} is used by both {seen[key]!r} and "
                               f"{c['name']!r}; hotkeys must be unique")
        seen[key] = c["name"]


def add_image(db: Session, store: ImageStore, p: Project, data: bytes, name: str,
              prelabel: masks.Labels | None = None) -> Task | None:
    """Store one image and create its task (with version 1 = pre-labels when given).
    Returns None when the project already holds the same image."""
    sha, ext, pixels = store.add_bytes(data, name)
    if db.scalar(select(Image.id).where(Image.project_id == p.id, Image.sha256 == sha)):
        return None
    h, w = pixels.shape[:2]
    img = Image(project_id=p.id, sha256=sha, ext=ext, filename=display_name(name),
                width=w, height=h)
    db.add(img)
    db.flush()
    task = Task(project_id=p.id, image_id=img.id, state="new")
    db.add(task)
    db.flush()
    if prelabel is None and p.prelabel.get("mode", "none") != "none":
        prelabel = prelabel_segments(p, pixels)
    if prelabel is not None and prelabel.segments:
        add_prelabel(db, task, prelabel)
    return task


def add_prelabel(db: Session, task: Task, labels: masks.Labels) -> None:
    task.version += 1
    task.prelabel_untouched = True
    db.add(Annotation(task_id=task.id, version=task.version, author_id=None, kind="prelabel",
                      segments=labels.segments, runs=labels.runs))


def import_folder(db: Session, store: ImageStore, p: Project, path: str,
                  fmt: str | None = None) -> dict:
    """A dataset in any format segflow reads (labels become pre-labels), else a folder of
    images (searched recursively)."""
    from segflow.formats import detect, open_dataset
    from segflow.io import list_images

    root = Path(path)
    if not root.is_dir():
        raise SegflowError(f"{path}: no such folder on the server")
    try:
        fmt = fmt or detect(root)
    except SegflowError:
        fmt = None
    added = skipped = 0
    if fmt is None:
        for f in list_images([root], recursive=True):
            t = add_image(db, store, p, f.read_bytes(), f.name)
            added, skipped = added + (t is not None), skipped + (t is None)
        db.commit()
        return {"format": "images", "added": added, "skipped_duplicates": skipped}
    from segflow.formats.convert import _panoptic_of

    ds = open_dataset(root, fmt)
    schema = project_schema(p)
    unknown = sorted(set(ds.schema.ids) - set(schema.ids))
    if unknown:
        raise SegflowError(f"{path}: class ids {unknown} of the dataset are not in the project's "
                           f"schema; add them to the brief first")
    for it in ds:
        if it.image_path is None:
            continue
        pan, _ = _panoptic_of(it, ds.schema)
        t = add_image(db, store, p, Path(it.image_path).read_bytes(), Path(it.image_path).name,
                      prelabel=masks.from_panoptic(pan))
        added, skipped = added + (t is not None), skipped + (t is None)
    db.commit()
    return {"format": fmt, "added": added, "skipped_duplicates": skipped}


# ---- pre-labels --------------------------------------------------------------------------


def resolve_prelabel(p: Project, sample: np.ndarray | None) -> dict:
    """Fill in 'auto' pipeline choices from the images' characteristics (segflow inspect)."""
    cfg = dict(p.prelabel or {})
    if cfg.get("mode") == "pipeline" and cfg.get("pipeline") in (None, "", "auto"):
        if sample is None:
            raise SegflowError("pre-labels: 'auto' needs at least one image in the project")
        from segflow.inspect import characterise

        c = characterise(sample)
        cfg["pipeline"], cfg["reason"] = c.suggestion, c.reason
    if cfg.get("mode") == "pipeline":
        from segflow.pipeline.spec import load_pipeline

        load_pipeline(cfg["pipeline"])  # fails now, with the name, not at the first image
    if cfg.get("mode") == "checkpoint":
        from segflow._extras import require

        require("deep", what="checkpoint pre-labels")
        ck = Path(cfg.get("checkpoint") or "")
        if not ck.is_file():
            raise SegflowError(f"pre-labels: checkpoint {ck} is not a file on the server")
    if cfg.get("mode") in ("pipeline", "checkpoint") and cfg.get("class_id") is None:
        schema = project_schema(p)
        cfg["class_id"] = (schema.thing_ids or schema.ids)[0]
    return cfg


def prelabel_segments(p: Project, image: np.ndarray) -> masks.Labels | None:
    cfg = p.prelabel or {}
    mode = cfg.get("mode", "none")
    schema = project_schema(p)
    if mode == "pipeline":
        from segflow.pipeline.runner import apply_pipeline
        from segflow.pipeline.spec import load_pipeline

        state = apply_pipeline(load_pipeline(cfg["pipeline"]), image)
        if state.labels is not None:
            ids = state.labels.astype(np.int32)
        elif state.mask is not None:
            from segflow.ops.regions import label

            ids = label(state.mask > 0).astype(np.int32)
        else:
            return None
        cid = int(cfg["class_id"])
        if cid in schema.thing_ids:
            segs = [{"id": int(i), "category_id": cid, "iscrowd": 0}
                    for i in np.unique(ids) if i]
        else:  # stuff: one segment for all foreground
            ids = (ids > 0).astype(np.int32)
            segs = [{"id": 1, "category_id": cid, "iscrowd": 0}] if ids.any() else []
        return masks.pack(ids, segs)
    if mode == "checkpoint":
        from segflow.annotations import SemanticMask, panoptic_from

        ck = Path(cfg["checkpoint"])
        pred = _predictor(str(ck), ck.stat().st_mtime_ns)
        inst, sem = pred.instances(image)  # semantic models: things split by watershed
        if pred.instance:  # objects of classes the project does not have are left out
            inst.items = [i for i in inst.items if i.category_id in schema.ids]
        stuff = None if pred.instance else SemanticMask(sem.astype(np.int32), schema.ignore_index)
        return masks.from_panoptic(panoptic_from(stuff, inst, schema))
    return None


@lru_cache(maxsize=2)
def _predictor(path: str, mtime_ns: int):
    """One loaded model per checkpoint file (and version of it), not one per image."""
    from segflow.predict.predictor import Predictor

    return Predictor(path, device="cpu")


def apply_prelabels(db: Session, store: ImageStore, p: Project) -> int:
    """Pre-label the tasks that have no annotation yet; returns how many got labels."""
    n = 0
    tasks = db.scalars(select(Task).where(Task.project_id == p.id, Task.version == 0)).all()
    for t in tasks:
        img = db.get(Image, t.image_id)
        labels = prelabel_segments(p, store.read(img.sha256, img.ext))
        if labels is not None and labels.segments:
            add_prelabel(db, t, labels)
            n += 1
    db.commit()
    return n


# ---- assignment --------------------------------------------------------------------------


def assign(db: Session, p: Project, *, mode: str, user_ids: list[int] | None,
           task_ids: list[int] | None) -> dict:
    """Balanced: unassigned tasks go, one by one, to the annotator with the fewest open tasks.
    Manual: the given tasks go to the one given annotator."""
    members = db.scalars(select(User).join(Member, Member.user_id == User.id)
                         .where(Member.project_id == p.id, User.role == "annotator")).all()
    pool = [u for u in members if user_ids is None or u.id in user_ids]
    if user_ids and len(pool) != len(set(user_ids)):
        raise SegflowError("assign: user_ids must be annotators who are members of the project")
    if not pool:
        raise SegflowError("assign: the project has no annotators; add members first")
    if mode == "manual":
        if not task_ids or not user_ids or len(user_ids) != 1:
            raise SegflowError("assign: manual mode needs task_ids and exactly one user id")
        tasks = db.scalars(select(Task).where(Task.project_id == p.id, Task.id.in_(task_ids))).all()
        if len(tasks) != len(set(task_ids)):
            raise SegflowError("assign: some task_ids are not tasks of this project")
        if any(t.state in ("submitted", "accepted") for t in tasks):
            raise SegflowError("assign: submitted or accepted tasks cannot be reassigned")
        targets = [(t, pool[0]) for t in tasks]
    else:
        load = dict(db.execute(select(Task.assignee_id, func.count()).where(
            Task.project_id == p.id, Task.state.in_(("assigned", "rejected")))
            .group_by(Task.assignee_id)).all())
        counts = {u.id: load.get(u.id, 0) for u in pool}
        tasks = db.scalars(select(Task).where(Task.project_id == p.id, Task.state == "new")
                           .order_by(Task.id)).all()
        targets = []
        for t in tasks:
            uid = min(counts, key=lambda k: (counts[k], k))
            counts[uid] += 1
            targets.append((t, next(u for u in pool if u.id == uid)))
    for t, u in targets:
        t.assignee_id, t.state, t.updated_at = u.id, "assigned", now()
        db.add(Event(project_id=p.id, task_id=t.id, user_id=u.id, kind="assigned"))
    db.commit()
    return {"assigned": len(targets)}
