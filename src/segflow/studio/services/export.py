"""Export accepted annotations with segflow's format writers, as a dataset version named by
its content hash (SHA-256 over every file's path and bytes)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from segflow.errors import SegflowError
from segflow.studio.services import masks
from segflow.studio.services.storage import LARGE_EXTS, ImageStore
from segflow.studio.services.workflow import project_schema
from segflow.studio.tables import Annotation, DatasetVersion, Image, Project, Task


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


_QUERY = object()


def task_sample(db: Session, store: ImageStore, schema, task: Task, img: Image, ann=_QUERY):
    """The task's latest labels as a :class:`segflow.formats.Sample` named ``ID_STEM``.
    ``ann``: the task's current :class:`Annotation` (or None) when the caller loaded it with the
    task; otherwise it is read here (one statement)."""
    from segflow.formats import Sample

    if ann is _QUERY:
        ann = db.scalar(select(Annotation).where(Annotation.task_id == task.id,
                                                 Annotation.version == task.version))
    pan = masks.to_panoptic(ann.segments if ann else [], ann.runs if ann else None,
                            img.height, img.width, schema)
    return Sample(f"{img.id:06d}_{Path(img.filename).stem}", store.read(img.sha256, img.ext), pan)


def export_project(db: Session, store: ImageStore, data_dir: Path, p: Project, fmt: str,
                   user_id: int | None, *, progress=None) -> DatasetVersion:
    from segflow.formats import write_dataset

    schema = project_schema(p)
    # one statement for every accepted task with its image and its accepted version (an
    # outer join: a task accepted with no labels exports as unlabelled); only the images' own
    # tasks, not overlap copies or gold tasks
    rows = db.execute(select(Task, Image, Annotation).join(Image, Image.id == Task.image_id)
                      .outerjoin(Annotation, (Annotation.task_id == Task.id)
                                 & (Annotation.version == Task.version))
                      .where(Task.project_id == p.id, Task.state == "accepted",
                             Task.kind == "work",
                             Image.ext.notin_(LARGE_EXTS))  # exported per task, as NIfTI/GeoTIFF
                      .order_by(Task.id)).all()
    if not rows:
        raise SegflowError("export: no accepted tasks yet; review some work first")

    def items():
        for k, (task, img, ann) in enumerate(rows):
            if progress:
                progress(k, len(rows))
            yield task_sample(db, store, schema, task, img, ann)

    base = Path(data_dir) / "exports" / f"project-{p.id}"
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{fmt}-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        write_dataset(tmp, fmt, schema, items())
        digest = tree_hash(tmp)
        dst = base / f"{fmt}-{digest[:16]}"
        if dst.exists():  # the same content was exported before: keep that copy
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, dst)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    dv = DatasetVersion(project_id=p.id, format=fmt, content_hash=digest, n_images=len(rows),
                        path=str(dst), created_by=user_id)
    db.add(dv)
    db.commit()  # a job-level service (as the imports): the files are written, keep the row
    return dv


def zip_version(dv: DatasetVersion) -> Path:
    src = Path(dv.path)
    out = src.with_suffix(".zip")
    if not out.exists():
        tmp = shutil.make_archive(str(src) + ".tmp", "zip", src)
        os.replace(tmp, out)
    return out
