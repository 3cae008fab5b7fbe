"""The studio's job kinds other than training: pre-labels, imports and exports. Each is a
function of (context, JSON parameters) registered with :func:`~segflow.studio.services.jobs.kind`,
so a ``segflow worker`` process anywhere can run it from the job's row alone."""

from __future__ import annotations

from sqlalchemy import select

from segflow.studio.services import workflow
from segflow.studio.services.jobs import JobContext, kind
from segflow.studio.tables import Image, Project


@kind("noop")
def noop(ctx: JobContext, params: dict) -> dict:
    """Does nothing: shows that a worker takes jobs (and serves the tests)."""
    return {"noop": True}


@kind("prelabel")
def prelabel(ctx: JobContext, params: dict) -> dict:
    """Pre-label the project's unlabelled tasks (``task_ids``: only these), with its current
    pre-labeller; ``config``: first make this the pre-labeller (resolving 'auto' on a sample)."""
    with ctx.sessions() as db:
        proj = db.get(Project, ctx.project_id)
        if params.get("config") is not None:
            first = db.scalar(select(Image).where(Image.project_id == proj.id)
                              .order_by(Image.id).limit(1))
            sample = ctx.store.read(first.sha256, first.ext) if first is not None else None
            proj.prelabel = params["config"]
            proj.prelabel = workflow.resolve_prelabel(proj, sample)
            db.commit()
            if not params.get("apply", True):
                return {"prelabel": proj.prelabel, "prelabelled": 0}
        n = workflow.apply_prelabels(db, ctx.store, proj, task_ids=params.get("task_ids"),
                                     progress=ctx.progress)
        return {"prelabel": proj.prelabel, "prelabelled": n}


@kind("import")
def import_folder(ctx: JobContext, params: dict) -> dict:
    with ctx.sessions() as db:
        proj = db.get(Project, ctx.project_id)
        out = workflow.import_folder(db, ctx.store, proj, params["path"], params.get("format"),
                                     progress=ctx.progress)
        if out["added"] and (proj.prelabel or {}).get("mode", "none") != "none":
            out["prelabelled"] = workflow.apply_prelabels(db, ctx.store, proj,
                                                          task_ids=out["task_ids"])
        return out


@kind("import_raster")
def import_raster(ctx: JobContext, params: dict) -> dict:
    """Add a huge GeoTIFF (it stays where it is) as an image and a task; builds its preview
    when it has no overviews (``services.tiles.import_raster``)."""
    from segflow.studio.services import tiles

    with ctx.sessions() as db:
        return tiles.import_raster(db, ctx.data_dir, db.get(Project, ctx.project_id),
                                   params["path"], params.get("bands"), progress=ctx.progress)


@kind("export")
def export(ctx: JobContext, params: dict) -> dict:
    from segflow.studio.services.export import export_project, zip_version
    from segflow.studio.views import version_json

    with ctx.sessions() as db:
        dv = export_project(db, ctx.store, ctx.data_dir, db.get(Project, ctx.project_id),
                            params["format"], ctx.user_id, progress=ctx.progress)
        zip_version(dv)  # the download's archive, built here rather than in a GET
        return version_json(dv)
