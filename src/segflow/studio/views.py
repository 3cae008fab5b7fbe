"""What the API answers about tasks: the ``TaskOut`` response model filled from a task and its
related rows. Lists load the related rows in the same statement (``with_views``: one SELECT
with joins, whatever the number of tasks), so no route queries per row."""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload

from segflow.studio.deps import stamp
from segflow.studio.schemas import ImageOut, TaskOut
from segflow.studio.tables import DatasetVersion, Task


def with_views(q: Select) -> Select:
    """``q`` (a SELECT of tasks) with the rows ``task_out`` reads loaded alongside."""
    # joins, not selectin loads: those batch ids 500 at a time, so 1,000 tasks would take
    # more statements than 10
    return q.options(joinedload(Task.image), joinedload(Task.assignee),
                     joinedload(Task.reviewer))


def task_out(t: Task) -> TaskOut:
    """A task loaded by ``with_views``. Honeypots look exactly like real tasks here: only the
    training phase's tasks say what they are."""
    img = t.image
    return TaskOut(
        id=t.id, project_id=t.project_id, state=t.state, version=t.version,
        assignee_id=t.assignee_id, assignee=t.assignee.username if t.assignee else None,
        reviewer_id=t.reviewer_id, reviewer=t.reviewer.username if t.reviewer else None,
        image=ImageOut(id=img.id, filename=img.filename, width=img.width, height=img.height,
                       url=f"/api/images/{img.id}"),
        seconds_spent=t.seconds_spent, updated_at=stamp(t.updated_at),
        # the labels are the pre-labels exactly: nobody edited them (shown in review)
        untouched_prelabel=t.prelabel_untouched, qualification=t.kind == "qualification")


def task_json(db: Session, t: Task) -> TaskOut:
    """One task as the API shows it, read afresh (after a change, the relationships too)."""
    row = db.scalar(with_views(select(Task).where(Task.id == t.id))
                    .execution_options(populate_existing=True))
    return task_out(row)


def task_list(db: Session, q: Select) -> list[TaskOut]:
    return [task_out(t) for t in db.scalars(with_views(q))]


def version_json(dv: DatasetVersion) -> dict:
    return {"id": dv.id, "format": dv.format, "content_hash": dv.content_hash,
            "n_images": dv.n_images, "created_at": stamp(dv.created_at),
            "download": f"/api/projects/{dv.project_id}/exports/{dv.id}.zip"}
