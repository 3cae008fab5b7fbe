"""Project workflow on the library: importing images and datasets, pre-labelling with a
classical pipeline or a checkpoint, and task assignment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from segflow.annotations import LabelSchema
from segflow.errors import SegflowError
from segflow.studio.services import masks
from segflow.studio.services.storage import LARGE_EXTS, ImageStore, display_name
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
              prelabel: masks.Labels | None = None, prelabel_source: str = "") -> Task | None:
    """Store one image and create its task (with version 1 = the given pre-labels). Returns None
    when the project already holds the same image. Pre-labels from the project's pipeline or
    checkpoint are computed later, by ``apply_prelabels`` in a job, never here (in a request).
    If the rows cannot be added, a stored file no row refers to is removed again."""
    sha, ext, pixels = store.add_bytes(data, name)
    try:
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
        if prelabel is not None and prelabel.segments:
            add_prelabel(db, task, prelabel, prelabel_source)
        return task
    except Exception:
        db.rollback()
        discard_unused(db, store, sha, ext)
        raise


def discard_unused(db: Session, store: ImageStore, sha: str, ext: str) -> None:
    """Remove a stored image file that no image row (of any project) refers to."""
    if db.scalar(select(Image.id).where(Image.sha256 == sha).limit(1)) is None:
        store.path(sha, ext).unlink(missing_ok=True)


def add_prelabel(db: Session, task: Task, labels: masks.Labels, source: str = "") -> None:
    task.version += 1
    task.prelabel_untouched = True
    db.add(Annotation(task_id=task.id, version=task.version, author_id=None, kind="prelabel",
                      segments=labels.segments, runs=labels.runs, source=source))


def _one_line(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def add_images(db: Session, store: ImageStore, p: Project, items, *, progress=None,
               prelabels=None, prelabel_source: str = "") -> dict:
    """Add ``items`` = [(name, read)] one by one, each committed on its own: an unreadable or
    invalid file is reported in ``failed`` and the others are added. ``read()`` returns the
    bytes; ``prelabels(k)`` (optional) the k-th item's labels. A storage failure (read-only or
    full data folder) stops the batch."""
    added, failed, skipped = [], [], 0
    items = list(items)
    for k, (name, read) in enumerate(items):
        try:
            data = read()
            labels = prelabels(k) if prelabels else None
        except (OSError, SegflowError, ValueError) as e:  # the source file, not our storage
            failed.append({"file": name, "error": _one_line(e)})
        else:
            try:
                t = add_image(db, store, p, data, name, prelabel=labels,
                              prelabel_source=prelabel_source)
                db.commit()
            except SegflowError as e:
                db.rollback()
                failed.append({"file": name, "error": _one_line(e)})
            else:
                if t is None:
                    skipped += 1
                else:
                    added.append(t.id)
        if progress:
            progress(k + 1, len(items))
    return {"added": len(added), "task_ids": added, "skipped_duplicates": skipped,
            "failed": failed}


def check_folder(path: str) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise SegflowError(f"{path}: no such folder on the server")
    return root


def import_folder(db: Session, store: ImageStore, p: Project, path: str,
                  fmt: str | None = None, *, progress=None) -> dict:
    """A dataset in any format segflow reads (labels become pre-labels), else a folder of
    images (searched recursively). Files that cannot be read are reported and skipped."""
    from segflow.formats import detect, open_dataset
    from segflow.io import list_images

    root = check_folder(path)
    try:
        fmt = fmt or detect(root)
    except SegflowError:
        fmt = None
    if fmt is None:
        files = list_images([root], recursive=True)
        out = add_images(db, store, p, [(str(f.relative_to(root)), f.read_bytes) for f in files],
                         progress=progress)
        return {"format": "images", **out}
    from segflow.formats.convert import _panoptic_of

    ds = open_dataset(root, fmt)
    schema = project_schema(p)
    unknown = sorted(set(ds.schema.ids) - set(schema.ids))
    if unknown:
        raise SegflowError(f"{path}: class ids {unknown} of the dataset are not in the project's "
                           f"schema; add them to the brief first")
    its = [it for it in ds if it.image_path is not None]
    out = add_images(db, store, p, [(Path(it.image_path).name, Path(it.image_path).read_bytes)
                                    for it in its], progress=progress,
                     prelabels=lambda k: masks.from_panoptic(_panoptic_of(its[k], ds.schema)[0]),
                     prelabel_source=f"import:{fmt}")
    return {"format": fmt, **out}


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


def prelabel_source(p: Project) -> str:
    """What makes the project's pre-labels, recorded with each (the quality dashboard compares
    sources): ``pipeline:NAME`` or ``checkpoint:FILE@SHA12`` (the file's content version)."""
    cfg = p.prelabel or {}
    if cfg.get("mode") == "pipeline":
        return f"pipeline:{cfg.get('pipeline')}"
    if cfg.get("mode") == "checkpoint":
        ck = Path(cfg.get("checkpoint") or "")
        try:
            return f"checkpoint:{ck.name}@{_file_sha(str(ck), ck.stat().st_mtime_ns)[:12]}"
        except OSError:
            return f"checkpoint:{ck.name}"
    return ""


@lru_cache(maxsize=8)
def _file_sha(path: str, mtime_ns: int) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=2)
def _predictor(path: str, mtime_ns: int):
    """One loaded model per checkpoint file (and version of it), not one per image."""
    from segflow.predict.predictor import Predictor

    return Predictor(path, device="cpu")


def apply_prelabels(db: Session, store: ImageStore, p: Project, *, task_ids=None,
                    progress=None) -> int:
    """Pre-label the tasks that have no annotation yet (all, or those of ``task_ids``); returns
    how many got labels. Each task is committed on its own with the version moved from 0 to 1
    in one conditional UPDATE, so an annotator who saved meanwhile keeps their work."""
    q = (select(Task.id, Task.image_id).join(Image, Image.id == Task.image_id)
         .where(Task.project_id == p.id, Task.version == 0, Image.ext.notin_(LARGE_EXTS)))
    if task_ids is not None:
        q = q.where(Task.id.in_(task_ids))
    rows = db.execute(q.order_by(Task.id)).all()
    source = prelabel_source(p)
    n = 0
    for k, (tid, iid) in enumerate(rows):
        img = db.get(Image, iid)
        labels = prelabel_segments(p, store.read(img.sha256, img.ext))
        if labels is not None and labels.segments:
            res = db.execute(update(Task).where(Task.id == tid, Task.version == 0)
                             .values(version=1, prelabel_untouched=True))
            if res.rowcount == 1:
                db.add(Annotation(task_id=tid, version=1, author_id=None, kind="prelabel",
                                  segments=labels.segments, runs=labels.runs, source=source))
                n += 1
            db.commit()
        if progress:
            progress(k + 1, len(rows))
    db.commit()
    return n


# ---- assignment --------------------------------------------------------------------------


def assign(db: Session, p: Project, *, mode: str, user_ids: list[int] | None,
           task_ids: list[int] | None, eligible=None) -> dict:
    """Balanced: unassigned tasks go, one by one, to the annotator with the fewest open tasks.
    Manual: the given tasks go to the one given annotator. ``eligible`` (optional, a set of
    user ids): the annotators who may get real work (those who passed the qualification).
    The caller commits."""
    members = db.scalars(select(User).join(Member, Member.user_id == User.id)
                         .where(Member.project_id == p.id, User.role == "annotator")).all()
    pool = [u for u in members if user_ids is None or u.id in user_ids]
    if user_ids and len(pool) != len(set(user_ids)):
        raise SegflowError("assign: user_ids must be annotators who are members of the project")
    if eligible is not None:
        unqualified = [u.username for u in pool if u.id not in eligible]
        if user_ids and unqualified:
            raise SegflowError(f"assign: {', '.join(unqualified)} has not passed the project's "
                               "qualification")
        pool = [u for u in pool if u.id in eligible]
        if not pool:
            raise SegflowError("assign: no annotator has passed the project's qualification yet")
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
        tasks = db.scalars(select(Task).where(Task.project_id == p.id, Task.state == "new",
                                              Task.kind == "work").order_by(Task.id)).all()
        targets = []
        for t in tasks:
            uid = min(counts, key=lambda k: (counts[k], k))
            counts[uid] += 1
            targets.append((t, next(u for u in pool if u.id == uid)))
    for t, u in targets:
        t.assignee_id, t.state, t.updated_at = u.id, "assigned", now()
        db.add(Event(project_id=p.id, task_id=t.id, user_id=u.id, kind="assigned"))
    db.flush()
    return {"assigned": len(targets), "task_ids": [t.id for t, _ in targets]}
