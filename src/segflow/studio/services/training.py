"""Training from the studio: a job that trains on the project's accepted labels with the same
:class:`~segflow.train.trainer.Trainer` as ``segflow train``, records the model in the registry
(``DATA/models``) with its lineage, and assesses it on the held-out split against the brief.

The split is by image and saved (``DATA/splits/project-ID.json``): an image keeps its split
for good, so retrains compare on the same test images; a new image joins by a hash of its id
(deterministic, no RNG), gold images always go to test (:func:`gold_image_ids`), and the test
images are never trained on (validation for early stopping comes from the train images).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from sqlalchemy import select

from segflow.errors import SegflowError
from segflow.studio.services.jobs import JobContext, kind
from segflow.studio.services.storage import LARGE_EXTS
from segflow.studio.tables import Image, Project, Task, User

#: The presets a manager picks from: budget, device and model size.
PRESETS: dict[str, dict] = {
    "cpu-fast": {"device": "cpu", "epochs": 30, "max_steps": 300, "batch_size": 4, "crop": None,
                 "amp": "off", "unet_args": {"depth": 2, "base_width": 8},
                 "about": "small U-Net on the CPU, a few minutes at most"},
    "gpu": {"device": "cuda", "epochs": 60, "max_steps": None, "batch_size": 8, "crop": 512,
            "amp": "auto", "unet_args": {},
            "about": "full-size model on a CUDA GPU, mixed precision"},
}
TEST_FRACTION = 0.2
SPLIT_VERSION = 1


def models_root(data_dir: Path) -> Path:
    return Path(data_dir) / "models"


def gold_image_ids(db, p: Project) -> set[int]:
    """The project's gold images (qualification and honeypots, the ``gold_labels`` table): always
    held out for testing, so a model is never assessed on what it was trained on and the
    reference labels annotators are scored against never leak into a model."""
    from segflow.studio.tables import GoldLabel

    return set(db.scalars(select(GoldLabel.image_id).where(GoldLabel.project_id == p.id)))


def image_unit(project_id: int, image_id: int) -> float:
    """A fixed number in [0, 1) per image: SHA-256 of the ids (no RNG, stable everywhere)."""
    h = hashlib.sha256(f"segflow-split:{project_id}:{image_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split_path(data_dir: Path, project_id: int) -> Path:
    return Path(data_dir) / "splits" / f"project-{project_id}.json"


def assign_split(data_dir: Path, project_id: int, image_ids: list[int], gold: set[int], *,
                 test_fraction: float = TEST_FRACTION) -> dict[int, str]:
    """Each image's split, "train" or "test": the saved one, or for an image seen for the first
    time, test when gold or when its hash falls under ``test_fraction``. When no image would be
    in test at all, the new image with the lowest hash goes there. The file is rewritten with
    the new images only added; an image's split never changes."""
    path = split_path(data_dir, project_id)
    saved: dict[str, str] = {}
    if path.exists():
        try:
            saved = json.loads(path.read_text())["images"]
        except (OSError, ValueError, KeyError, TypeError):
            raise SegflowError(f"{path}: the saved split is unreadable; restore it from a "
                               "backup (deleting it would move images between splits)") from None
    new = [i for i in image_ids if str(i) not in saved]
    for i in new:
        saved[str(i)] = "test" if i in gold or image_unit(project_id, i) < test_fraction \
            else "train"
    if new and "test" not in saved.values():
        saved[str(min(new, key=lambda i: image_unit(project_id, i)))] = "test"
    if new:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": SPLIT_VERSION, "test_fraction": test_fraction,
                                   "images": saved}, indent=0))
        os.replace(tmp, path)
    return {i: saved[str(i)] for i in image_ids}


def project_targets(p: Project) -> list[str]:
    """The brief's targets as ``segflow assess`` strings: its list, or else its one metric and
    threshold."""
    if p.targets:
        return list(p.targets)
    return [f"{p.target_metric} >= {p.target_threshold:g}"]


def model_task(p: Project) -> str:
    return "instance" if p.task_type == "instance" else "semantic"


def check_request(p: Project, model: str, preset: str) -> None:
    """Refuse what cannot train before a job is queued (the route answers 4xx with this)."""
    from segflow.assess import parse_brief
    from segflow.models.registry import MODELS, model_names

    task = model_task(p)
    if model not in MODELS or MODELS[model].task != task or model == "unet3d":
        names = [n for n in model_names(task) if n != "unet3d"]
        raise SegflowError(f"model: {model!r} cannot train a {p.task_type} project; use one of "
                           f"{', '.join(names)}")
    if preset not in PRESETS:
        raise SegflowError(f"preset: {preset!r} is unknown; use one of {', '.join(PRESETS)}")
    parse_brief({"task": p.task_type, "targets": project_targets(p)},
                where=f"project {p.id} brief")


class StudioHook:
    """Trainer hook: progress and log lines into the job, cancel through ``should_stop``."""

    def __init__(self, ctx: JobContext, every: int = 10):
        self.ctx, self.every, self.metric = ctx, every, None

    def on_step(self, trainer, rec: dict) -> None:
        self.ctx.progress(rec["step"], rec["total_steps"], step=rec["step"], epoch=rec["epoch"],
                          loss=rec["loss"], lr=rec.get("lr"), eta_s=rec.get("eta_s"),
                          metric=self.metric)
        if rec["step"] % self.every == 0 or rec["step"] == 1:
            self.ctx.log(f"step {rec['step']}/{rec['total_steps']} loss {rec['loss']:.4f}")

    def on_eval(self, trainer, rec: dict) -> None:
        dm = getattr(trainer, "default_metric", None)  # what best.pt follows
        name = dm() if callable(dm) else dm
        value = rec.get(name) if name else None
        if isinstance(value, (int, float)):
            self.metric = float(value)
            self.ctx.progress(self.ctx.state["done"], self.ctx.state["total"],
                              metric=self.metric, metric_name=name)
        self.ctx.log("eval " + " ".join(f"{k} {v:.4f}" for k, v in rec.items()
                                        if isinstance(v, float)))

    def on_checkpoint(self, trainer, path: Path) -> None:
        self.ctx.log(f"checkpoint {Path(path).name} at step {rec_step(trainer)}")

    def should_stop(self, trainer) -> bool:
        return self.ctx.should_stop()


def rec_step(trainer) -> int:
    return int(getattr(trainer, "step", 0))


def _hooks_base():
    from segflow.train.hooks import Hooks

    return Hooks


def write_split_data(ctx: JobContext, p: Project, run: Path) -> dict:
    """The accepted labels as ``folders`` datasets ``run/data/train`` and ``run/data/test``
    (once per run: a retried attempt trains on what the first attempt saw), plus the images
    not yet labelled under ``run/data/unlabelled`` for choosing the next ones."""
    from segflow.formats import write_dataset
    from segflow.io import write_image
    from segflow.studio.services.export import task_sample
    from segflow.studio.services.workflow import project_schema

    data = run / "data"
    info_path = data / "info.json"
    if info_path.exists():
        return json.loads(info_path.read_text())
    shutil.rmtree(data, ignore_errors=True)
    with ctx.sessions() as db:
        schema = project_schema(p)
        # the images' own tasks only: not qualification copies, honeypots or overlap copies
        rows = db.execute(select(Task, Image).join(Image, Image.id == Task.image_id)
                          .where(Task.project_id == p.id, Task.state == "accepted",
                                 Task.kind == "work", Image.ext.notin_(LARGE_EXTS))
                          .order_by(Task.id)).all()
        split = assign_split(ctx.data_dir, p.id, [img.id for _, img in rows],
                             gold_image_ids(db, p))
        parts = {s: [(t, i) for t, i in rows if split[i.id] == s] for s in ("train", "test")}
        if len(parts["train"]) < 2 or not parts["test"]:
            raise SegflowError(f"training: {len(rows)} accepted images give {len(parts['train'])}"
                               f" to train on and {len(parts['test'])} to test; accept at least"
                               " 3 (2 to train, 1 held out)")
        for s, items in parts.items():
            ctx.log(f"writing {len(items)} {s} images")
            write_dataset(data / s, "folders", schema,
                          (task_sample(db, ctx.store, schema, t, i) for t, i in items))
        todo = db.execute(select(Image).join(Task, Task.image_id == Image.id)
                          .where(Task.project_id == p.id, Task.kind == "work",
                                 Image.ext.notin_(LARGE_EXTS),
                                 Task.state.in_(("new", "assigned")))
                          .order_by(Image.id).limit(2000)).scalars().all()
        (data / "unlabelled").mkdir(parents=True, exist_ok=True)
        for img in todo:
            write_image(data / "unlabelled" / f"{img.id:06d}.png", ctx.store.read(img.sha256,
                                                                                 img.ext))
        info = {"annotations": {s: [{"task_id": t.id, "image_id": i.id, "version": t.version}
                                    for t, i in items] for s, items in parts.items()},
                "n_unlabelled": len(todo)}
    info_path.write_text(json.dumps(info))
    return info


def train_config(p: Project, params: dict, run: Path):
    from segflow.train.config import parse_config

    pr = PRESETS[params["preset"]]
    model = params["model"]
    args = dict(pr["unet_args"]) if model == "unet" else {}
    loop = {"epochs": params.get("epochs") or pr["epochs"], "batch_size": pr["batch_size"],
            "crop": pr["crop"], "amp": pr["amp"],
            "checkpoint_every": params.get("checkpoint_every") or 50, "log_every": 10}
    steps = params.get("max_steps") or pr["max_steps"]
    if steps:
        loop["max_steps"] = steps
    return parse_config({"name": f"project{p.id}", "task": model_task(p),
                         "seed": params.get("seed", 0), "out": str(run / "train"),
                         "data": {"train": str(run / "data" / "train"), "format": "folders",
                                  "val_fraction": 0.25},
                         "model": {"name": model, "args": args}, "train": loop},
                        source="training preset")


def latest_model_id(data_dir: Path, project_id: int) -> str | None:
    """The project's newest model in the registry (the parent of the next one)."""
    from segflow.registry import ModelRegistry

    mine = [r for r in _list(ModelRegistry(models_root(data_dir)))
            if (r.config or {}).get("project_id") == project_id]
    return max(mine, key=lambda r: r.created_at).id if mine else None


def learning_curve(data_dir: Path, project_id: int, n_train: int, a) -> list[tuple[int, float]]:
    """(training images, held-out value of the brief's first target) of the project's earlier
    models and of this one: the learning curve the verdict reads."""
    from segflow.registry import ModelRegistry

    pts = []
    for r in _list(ModelRegistry(models_root(data_dir))):
        if (r.config or {}).get("project_id") != project_id:
            continue
        t = ((r.metrics or {}).get("targets") or [{}])[0]
        n = (r.dataset or {}).get("n_images")
        if isinstance(n, int) and isinstance(t.get("value"), (int, float)):
            pts.append((n, float(t["value"])))
    if a.targets and a.targets[0].value is not None:
        pts.append((n_train, float(a.targets[0].value)))
    return sorted(pts)


def _list(reg) -> list:
    return reg.list() if reg.root.exists() else []


@kind("train", attempts=2)
def train(ctx: JobContext, params: dict) -> dict:
    """Train, record, assess (see the module docstring). A second attempt (its worker died)
    resumes from the run's ``last.pt``."""
    from segflow.assess import assess, parse_brief
    from segflow.assess.report import write_assessment_report
    from segflow.registry import ModelRegistry, dataset_snapshot
    from segflow.train.trainer import Trainer

    with ctx.sessions() as db:
        p = db.get(Project, ctx.project_id)
        db.expunge(p)
        who = db.get(User, ctx.user_id) if ctx.user_id else None
        started_by = who.username if who else None
    check_request(p, params["model"], params["preset"])
    run = Path(ctx.data_dir) / "runs" / ctx.id
    info = write_split_data(ctx, p, run)
    cfg = train_config(p, params, run)
    hook = type("Hook", (StudioHook, _hooks_base()), {})(ctx)
    device = PRESETS[params["preset"]]["device"]
    trainer = Trainer(cfg, device=device, progress=False, hooks=(hook,))
    last = run / "train" / "last.pt"
    if last.exists():
        ctx.log(f"resuming from {last.name} (attempt {ctx.attempt})")
        trainer.resume(last)
    summary = trainer.fit()
    if summary.get("stopped") or ctx.should_stop():
        return {"stopped": True, "step": rec_step(trainer), "run": ctx.id}
    best = run / "train" / "best.pt"
    ck = best if best.exists() else last
    ctx.log("assessing on the held-out images")
    brief = parse_brief({"task": p.task_type, "targets": project_targets(p)})
    unl = run / "data" / "unlabelled"
    a = assess(ck, run / "data" / "test", brief, resamples=200, device=device,
               unlabelled=unl if info["n_unlabelled"] else None,
               n_next=min(10, info["n_unlabelled"]) or 1)
    history = learning_curve(ctx.data_dir, p.id, len(info["annotations"]["train"]), a)
    if len(history) > 1:  # earlier runs of this project: judge whether more data helps
        from segflow.assess import decide

        a.verdict, a.reasons = decide(a.targets, a.measurement.class_counts, history=history)
    out = a.to_dict()
    out["learning_curve"] = [{"n_train_images": n, "value": v} for n, v in history]
    for n in out["next_images"]:  # names are IMAGEID.png
        try:
            n["image_id"] = int(Path(n.get("path", "")).stem)
        except ValueError:
            pass
    snap = dataset_snapshot(run / "data" / "train", annotations=info["annotations"]["train"])
    snap["test"] = {"hash": dataset_snapshot(run / "data" / "test")["hash"],
                    "annotations": info["annotations"]["test"]}
    reg = ModelRegistry(models_root(ctx.data_dir))
    rec = reg.record(ck, task=cfg.task, model=cfg.model.name,
                     config={**cfg.model_dump(), "project_id": p.id, "preset": params["preset"],
                             "job_id": ctx.id},
                     dataset=snap,
                     metrics={**{t["metric"] + (f"[{t['scope']}]" if t["scope"] else ""):
                                 t["value"] for t in out["targets"]},  # held-out values
                              "targets": out["targets"], "verdict": out["verdict"],
                              "held_out_images": out["images"]},
                     parent=latest_model_id(ctx.data_dir, p.id), started_by=started_by)
    (rec.folder / "assessment.json").write_text(json.dumps(out, indent=1, default=str))
    try:
        write_assessment_report(rec.folder / "report.html", a, run / "data" / "test",
                                checkpoint=rec.id, history=history if len(history) > 1 else None)
    except Exception as e:  # the JSON assessment is what the studio needs; log the report's
        ctx.log(f"HTML report not written: {type(e).__name__}: {e}")
    a.cleanup()
    ctx.log(f"model {rec.id}: {out['verdict']}")
    return {"model_id": rec.id, "verdict": out["verdict"], "reasons": out["reasons"],
            "targets": out["targets"], "steps": rec_step(trainer)}
