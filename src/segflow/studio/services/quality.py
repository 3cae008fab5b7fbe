"""Quality control in the studio (issue 9): gold labels, the qualification (training phase),
honeypots, overlap with agreement, reviewers' merges, and the edits people make to
pre-labels. Scoring is the library's (``segflow.quality``, ``segflow.metrics``); this module
decides what is scored when and keeps the figures (``QualityScore`` rows).

Nothing here commits: the route that calls it owns the transaction (``deps.get_db``).
"""

from __future__ import annotations

import io

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from segflow.errors import SegflowError
from segflow.studio.services import masks
from segflow.studio.services.workflow import project_schema
from segflow.studio.tables import (
    Annotation,
    Event,
    GoldLabel,
    Image,
    Member,
    Project,
    Qualification,
    QualityScore,
    QualitySettings,
    Task,
    User,
    now,
)

EDITABLE = ("assigned", "rejected")
REAL = ("work", "overlap")  # the kinds of real work (honeypots pose as it)


class QualityError(SegflowError):
    """A refused quality action; ``status`` is the HTTP code the route answers."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ---- settings ---------------------------------------------------------------------------------


def settings(db: Session, pid: int) -> dict:
    from segflow.studio.schemas import QualitySettingsIn

    row = db.get(QualitySettings, pid)
    return QualitySettingsIn.model_validate(row.settings if row else {}).model_dump()


def save_settings(db: Session, p: Project, cfg: dict) -> dict:
    """Check ``cfg`` (a ``QualitySettingsIn`` dump) against the project and keep it."""
    q = cfg["qualification"]
    metric, task = q["metric"], p.task_type
    if task == "semantic" and metric == "pq":
        raise QualityError(422, "qualification.metric: pq needs objects; a semantic project "
                                "scores with miou or boundary_f1")
    gold = set(db.scalars(select(GoldLabel.image_id).where(GoldLabel.project_id == p.id)))
    for k, iid in enumerate(q["image_ids"]):
        if iid not in gold:
            raise QualityError(422, f"qualification.image_ids[{k}]: image {iid} has no gold "
                                    "labels in this project; mark it gold first")
    if len(set(q["image_ids"])) != len(q["image_ids"]):
        raise QualityError(422, "qualification.image_ids: each gold image once")
    row = db.get(QualitySettings, p.id)
    if row is None:
        db.add(QualitySettings(project_id=p.id, settings=cfg))
    else:
        row.settings = cfg
    return cfg


def qualification_required(cfg: dict) -> bool:
    return bool(cfg["qualification"]["image_ids"])


def is_qualified(db: Session, user: User, pid: int) -> bool:
    if user.role != "annotator":
        return True
    if not qualification_required(settings(db, pid)):
        return True
    q = db.get(Qualification, (pid, user.id))
    return q is not None and q.status == "passed"


def eligible(db: Session, p: Project) -> set[int] | None:
    """The annotators who may get real work (None: everyone; the project has no
    qualification)."""
    if not qualification_required(settings(db, p.id)):
        return None
    return set(db.scalars(select(Qualification.user_id).where(
        Qualification.project_id == p.id, Qualification.status == "passed")))


# ---- gold labels ----------------------------------------------------------------------------


def set_gold(db: Session, p: Project, user: User, image_id: int, *, task_id: int | None = None,
             labels: dict | None = None) -> GoldLabel:
    """Make an image gold: the accepted labels of one of its tasks, or imported labels."""
    img = db.get(Image, image_id)
    if img is None or img.project_id != p.id:
        raise QualityError(404, f"image_id: no image {image_id} in this project")
    if (task_id is None) == (labels is None):
        raise QualityError(422, "give either task_id (its accepted labels become the "
                                "reference) or labels (imported reference labels)")
    if task_id is not None:
        t = db.get(Task, task_id)
        if t is None or t.project_id != p.id or t.image_id != image_id:
            raise QualityError(422, f"task_id: task {task_id} is not a task of image {image_id}")
        if t.state != "accepted" or t.kind != "work":
            raise QualityError(409, f"task_id: task {task_id} is {t.state}; only accepted labels "
                                    "become gold")
        ann = _version(db, t.id, t.version)
        segments, runs, source = ann.segments, ann.runs, f"task:{t.id}"
    else:
        if (labels["width"], labels["height"]) != (img.width, img.height):
            raise QualityError(422, f"labels: the image is {img.width}x{img.height}, the labels "
                                    f"{labels['width']}x{labels['height']}")
        try:
            stored = masks.from_wire(labels["runs"], labels["segments"], img.height, img.width,
                                     project_schema(p))
        except masks.MaskError as e:
            raise QualityError(422, f"labels: {e}") from None
        if not stored.segments:
            raise QualityError(422, "labels: empty; a reference needs labelled pixels")
        segments, runs, source = stored.segments, stored.runs, "import"
    g = db.scalar(select(GoldLabel).where(GoldLabel.project_id == p.id,
                                          GoldLabel.image_id == image_id))
    if g is None:
        g = GoldLabel(project_id=p.id, image_id=image_id, segments=segments, runs=runs,
                      source=source, created_by=user.id)
        db.add(g)
    else:
        g.segments, g.runs, g.source, g.created_by = segments, runs, source, user.id
    db.flush()
    return g


def gold_json(g: GoldLabel) -> dict:
    return {"id": g.id, "image_id": g.image_id, "filename": g.image.filename,
            "source": g.source, "segments": len(g.segments),
            "created_at": g.created_at.isoformat() + "Z"}


def _version(db: Session, tid: int, version: int) -> Annotation | None:
    return db.scalar(select(Annotation).where(Annotation.task_id == tid,
                                              Annotation.version == version))


def _copy_prelabel(db: Session, t: Task) -> None:
    """Give a gold task the pre-labels the image's own task started from (if any), so it
    starts as every other task does."""
    src = db.scalar(select(Annotation).join(Task, Task.id == Annotation.task_id).where(
        Task.image_id == t.image_id, Task.kind == "work", Annotation.version == 1,
        Annotation.kind == "prelabel").limit(1))
    if src is not None:
        t.version, t.prelabel_untouched = 1, True
        db.add(Annotation(task_id=t.id, version=1, author_id=None, kind="prelabel",
                          segments=src.segments, runs=src.runs, source=src.source))


def _new_task(db: Session, p: Project, image_id: int, user_id: int, kind: str, **kw) -> Task:
    t = Task(project_id=p.id, image_id=image_id, state="assigned", assignee_id=user_id,
             kind=kind, **kw)
    db.add(t)
    db.flush()
    _copy_prelabel(db, t)
    db.add(Event(project_id=p.id, task_id=t.id, user_id=user_id, kind="assigned"))
    return t


# ---- the annotator's next task ----------------------------------------------------------------


def next_task(db: Session, p: Project, user: User) -> Task | None:
    """What an annotator works on next: the qualification until passed, then their open tasks
    (rejected first) with honeypots mixed in; a project with a qualification also hands out
    its unassigned tasks on demand."""
    cfg = settings(db, p.id)
    if qualification_required(cfg) and not is_qualified(db, user, p.id):
        return _qualification_task(db, p, user, cfg)
    q = select(Task).where(Task.project_id == p.id, Task.assignee_id == user.id,
                           Task.state.in_(EDITABLE), Task.kind != "qualification")
    q = q.order_by((Task.state == "rejected").desc(), Task.id).limit(1)
    if qualification_required(cfg) and db.scalar(q) is None:
        t = db.scalar(select(Task).where(Task.project_id == p.id, Task.state == "new",
                                         Task.kind == "work").order_by(Task.id).limit(1))
        if t is not None:
            t.assignee_id, t.state, t.updated_at = user.id, "assigned", now()
            db.add(Event(project_id=p.id, task_id=t.id, user_id=user.id, kind="assigned"))
            db.flush()
            add_overlap(db, p, [t.id])
    _maybe_honeypot(db, p, user, cfg)
    return db.scalar(q)


def _qualification_task(db: Session, p: Project, user: User, cfg: dict) -> Task:
    qcfg = cfg["qualification"]
    q = db.get(Qualification, (p.id, user.id))
    if q is None:
        q = Qualification(project_id=p.id, user_id=user.id, status="pending", attempt=0)
        db.add(q)
    if q.status == "paused":
        raise QualityError(403, "a manager paused your work in this project; they decide when "
                                "you re-qualify")
    if q.status == "failed":
        raise QualityError(403, f"qualification failed: all {qcfg['attempts']} attempts used "
                                f"(best {q.best:.2f}, pass mark {qcfg['pass_mark']:.2f}); a "
                                "manager can let you try again")
    open_ = db.scalar(select(Task).where(
        Task.project_id == p.id, Task.assignee_id == user.id, Task.kind == "qualification",
        Task.attempt == q.attempt, Task.state.in_(EDITABLE)).order_by(Task.id).limit(1))
    if open_ is not None:
        return open_
    # a new attempt: one task per gold image of the qualification
    q.attempt += 1
    q.updated_at = now()
    gold = {g.image_id: g for g in db.scalars(select(GoldLabel).where(
        GoldLabel.project_id == p.id, GoldLabel.image_id.in_(qcfg["image_ids"])))}
    tasks = [_new_task(db, p, iid, user.id, "qualification", gold_id=gold[iid].id,
                       attempt=q.attempt) for iid in qcfg["image_ids"] if iid in gold]
    if not tasks:
        raise QualityError(409, "the qualification's gold images are gone; ask a manager")
    return tasks[0]


def _maybe_honeypot(db: Session, p: Project, user: User, cfg: dict) -> None:
    """Add a honeypot to the annotator's open work when they have had fewer than
    ``honeypot_rate`` of their tasks as honeypots. Gold images they have labelled before (in
    the qualification, or as real work) are never served to them again."""
    rate = cfg["honeypot_rate"]
    if rate <= 0:
        return
    mine = db.execute(select(Task.kind, Task.state, Task.image_id).where(
        Task.project_id == p.id, Task.assignee_id == user.id)).all()
    if not any(k in REAL and s in EDITABLE for k, s, _ in mine):
        return  # honeypots come among real work
    if any(k == "honeypot" and s in EDITABLE for k, s, _ in mine):
        return
    n_hp = sum(k == "honeypot" for k, _, _ in mine)
    n_all = sum(k != "qualification" for k, _, _ in mine)
    if n_hp + 1 > rate * (n_all + 1):
        return
    seen = {iid for _, _, iid in mine}
    g = db.scalar(select(GoldLabel).where(GoldLabel.project_id == p.id,
                                          GoldLabel.image_id.not_in(seen or {0}))
                  .order_by(GoldLabel.id).limit(1))
    if g is not None:
        _new_task(db, p, g.image_id, user.id, "honeypot", gold_id=g.id)


# ---- scoring ------------------------------------------------------------------------------------


def _score_task(p: Project) -> str:
    # studio labels are always segments: semantic projects are scored as panoptic labels of
    # stuff classes, so an unlabelled pixel counts against the class it should have had
    return "panoptic" if p.task_type == "semantic" else p.task_type


def _panoptic(p: Project, schema, segments, runs, img: Image):
    return masks.to_panoptic(segments, runs, img.height, img.width, schema)


def on_submit(db: Session, p: Project, t: Task) -> dict | None:
    """Score a submitted task where it applies. Returns the feedback of a qualification task
    (None for every other kind: honeypots are scored silently, so their answer is a real
    task's)."""
    if t.kind in ("qualification", "honeypot"):
        return _score_gold(db, p, t)
    if t.group_id is not None:
        score_overlap(db, p, t.group_id)
    return None


def _score_gold(db: Session, p: Project, t: Task) -> dict | None:
    from segflow.quality import score_against_reference

    cfg = settings(db, p.id)
    g = db.get(GoldLabel, t.gold_id) if t.gold_id is not None else None
    if g is None:  # the image is no longer gold: nothing to score against
        return None
    img = db.get(Image, t.image_id)
    ann = _version(db, t.id, t.version)
    schema = project_schema(p)
    metric = cfg["qualification"]["metric"]
    res = score_against_reference(_panoptic(p, schema, ann.segments, ann.runs, img),
                                  _panoptic(p, schema, g.segments, g.runs, img), schema,
                                  task=_score_task(p), metric=metric)
    score = res.score if res.score is not None else 0.0
    row = QualityScore(project_id=p.id, task_id=t.id, user_id=t.assignee_id, kind=t.kind,
                       attempt=t.attempt, score=score, detail=res.to_dict(),
                       heatmap=res.heatmap_png)
    db.add(row)
    db.flush()
    if t.kind == "honeypot":
        return None
    return {"score": score_json(row, user_view=True), **_close_attempt(db, p, t, cfg)}


def _close_attempt(db: Session, p: Project, t: Task, cfg: dict) -> dict:
    """After a qualification task: the attempt's result once all its tasks are in."""
    qcfg = cfg["qualification"]
    q = db.get(Qualification, (p.id, t.assignee_id))
    left = db.scalar(select(func.count()).select_from(Task).where(
        Task.project_id == p.id, Task.assignee_id == t.assignee_id,
        Task.kind == "qualification", Task.attempt == t.attempt, Task.state.in_(EDITABLE)))
    out = {"attempt": t.attempt, "attempts_allowed": qcfg["attempts"], "tasks_left": left,
           "pass_mark": qcfg["pass_mark"], "metric": qcfg["metric"]}
    if left:
        return {**out, "result": None}
    scores = list(db.scalars(select(QualityScore.score).where(
        QualityScore.project_id == p.id, QualityScore.user_id == t.assignee_id,
        QualityScore.kind == "qualification", QualityScore.attempt == t.attempt)))
    mean = float(np.mean(scores)) if scores else 0.0
    passed = mean >= qcfg["pass_mark"]
    q.best = mean if q.best is None else max(q.best, mean)
    q.status = "passed" if passed else ("failed" if q.attempt >= qcfg["attempts"] else "pending")
    q.updated_at = now()
    return {**out, "result": {"score": mean, "passed": passed, "status": q.status,
                              "attempts_left": max(0, qcfg["attempts"] - q.attempt)}}


def score_json(s: QualityScore, *, user_view: bool = False) -> dict:
    out = {"id": s.id, "task_id": s.task_id, "kind": s.kind, "attempt": s.attempt,
           "score": s.score, "flagged": s.flagged, "at": s.at.isoformat() + "Z",
           "detail": s.detail,
           "heatmap": f"/api/quality/scores/{s.id}/heatmap.png" if s.heatmap else None}
    if not user_view:
        out.update(user_id=s.user_id, source=s.source)
    return out


# ---- overlap --------------------------------------------------------------------------------


def _chosen(task_id: int, rate: float) -> bool:
    """Low-discrepancy choice of a ``rate`` fraction of the tasks (golden-ratio sequence over
    the ids): deterministic, and about evenly spread."""
    return rate >= 1 or (task_id * 0.6180339887498949) % 1.0 < rate


def add_overlap(db: Session, p: Project, task_ids: list[int]) -> int:
    """Give the chosen ones of the just-assigned ``task_ids`` to k-1 more annotators (those
    with the fewest open tasks, qualified where the project qualifies). Returns the copies
    made."""
    ov = settings(db, p.id)["overlap"]
    if ov["rate"] <= 0 or not task_ids:
        return 0
    ok = eligible(db, p)
    annotators = [u for u in db.scalars(select(User.id).join(Member, Member.user_id == User.id)
                                        .where(Member.project_id == p.id,
                                               User.role == "annotator", User.active))
                  if ok is None or u in ok]
    load = dict(db.execute(select(Task.assignee_id, func.count()).where(
        Task.project_id == p.id, Task.state.in_(EDITABLE)).group_by(Task.assignee_id)).all())
    made = 0
    for t in db.scalars(select(Task).where(Task.id.in_(task_ids), Task.kind == "work",
                                           Task.group_id.is_(None)).order_by(Task.id)):
        if not _chosen(t.id, ov["rate"]):
            continue
        others = sorted((u for u in annotators if u != t.assignee_id),
                        key=lambda u: (load.get(u, 0), u))[: ov["k"] - 1]
        if not others:
            continue
        t.group_id = t.id
        for u in others:
            _new_task(db, p, t.image_id, u, "overlap", group_id=t.id)
            load[u] = load.get(u, 0) + 1
            made += 1
    db.flush()
    return made


def _group(db: Session, gid: int) -> list[Task]:
    return list(db.scalars(select(Task).where(Task.group_id == gid).order_by(Task.id)))


def _category_maps(p: Project, schema, anns: list[Annotation], img: Image) -> list[np.ndarray]:
    void = schema.num_classes
    return [_panoptic(p, schema, a.segments, a.runs, img).category_map(void)
            .astype(np.uint8 if void < 255 else np.uint16) for a in anns]


def score_overlap(db: Session, p: Project, gid: int) -> QualityScore | None:
    """Agreement of an overlap group once every copy is submitted: mean pairwise mIoU (and
    boundary F1); one score per annotator (the mean of their pairs); the group is flagged
    for the reviewer below the project's threshold. The heat-map goes with the image's task."""
    from segflow.metrics.agreement import AgreementEvaluator
    from segflow.metrics.voting import disagreement
    from segflow.ops.draw import heatmap_png

    group = _group(db, gid)
    if len(group) < 2 or any(t.state not in ("submitted", "accepted") or t.version == 0
                             for t in group):
        return None
    schema = project_schema(p)
    img = db.get(Image, group[0].image_id)
    anns = list(db.scalars(select(Annotation).where(
        Annotation.task_id.in_([t.id for t in group]))))
    latest = {(a.task_id, a.version): a for a in anns}
    anns = [latest[(t.id, t.version)] for t in group]
    maps = _category_maps(p, schema, anns, img)
    n = schema.num_classes + 1
    report = np.zeros(n, bool)
    report[schema.ids] = True
    ev = AgreementEvaluator(len(group), n, ignore_index=n + 1 if n + 1 < 256 else 65535,
                            report=report)
    pairs = ev.update(maps)
    miou = {k: float(np.nan_to_num(v["miou"], nan=1.0)) for k, v in pairs.items()}
    bf1 = {k: float(np.nan_to_num(v["boundary_f1_mean"], nan=1.0)) for k, v in pairs.items()}
    mean = float(np.mean(list(miou.values())))
    threshold = settings(db, p.id)["overlap"]["threshold"]
    flagged = mean < threshold
    count = disagreement(maps, n, ignore_index=n + 1 if n + 1 < 256 else 65535).count
    db.execute(delete(QualityScore).where(QualityScore.kind == "agreement",
                                          QualityScore.task_id.in_([t.id for t in group])))
    detail = {"group": gid, "group_miou": mean, "threshold": threshold,
              "pairs": [{"tasks": [group[i].id, group[j].id], "miou": miou[(i, j)],
                         "boundary_f1": bf1[(i, j)]} for (i, j) in miou],
              "disagreeing_pixels": int(np.count_nonzero(count))}
    head = None
    for k, t in enumerate(group):
        mine = [v for (i, j), v in miou.items() if k in (i, j)]
        row = QualityScore(project_id=p.id, task_id=t.id, user_id=t.assignee_id,
                           kind="agreement", score=float(np.mean(mine)), flagged=flagged,
                           detail=detail, heatmap=heatmap_png(count, len(group)) if t.id == gid
                           else None)
        db.add(row)
        head = row if t.id == gid else head
    db.flush()
    return head


def agreement_json(db: Session, t: Task) -> dict:
    """The overlap group of a task, as the reviewer sees it."""
    if t.group_id is None:
        return {"group": None, "status": "none"}
    group = _group(db, t.group_id)
    names = dict(db.execute(select(User.id, User.username).where(
        User.id.in_([g.assignee_id for g in group if g.assignee_id]))).all())
    head = db.scalar(select(QualityScore).where(QualityScore.task_id == t.group_id,
                                                QualityScore.kind == "agreement"))
    return {"group": t.group_id, "status": "scored" if head else "waiting",
            "tasks": [{"task_id": g.id, "annotator": names.get(g.assignee_id),
                       "annotator_id": g.assignee_id, "state": g.state,
                       "version": g.version, "primary": g.id == t.group_id} for g in group],
            "miou": head.detail["group_miou"] if head else None,
            "threshold": settings(db, t.project_id)["overlap"]["threshold"],
            "flagged": bool(head and head.flagged),
            "pairs": head.detail["pairs"] if head else [],
            "heatmap": f"/api/tasks/{t.group_id}/agreement.png" if head else None}


def agreement_png(db: Session, t: Task) -> bytes | None:
    if t.group_id is None:
        return None
    return db.scalar(select(QualityScore.heatmap).where(QualityScore.task_id == t.group_id,
                                                        QualityScore.kind == "agreement"))


def resolve(db: Session, p: Project, t: Task, user: User, method: str,
            pick: int | None) -> Annotation:
    """The reviewer's decision on an overlap group: keep one annotator's version or merge
    them (majority vote or STAPLE); the result is the reviewer's own version of the image's
    task, which is accepted with the copies."""
    from segflow.metrics.consensus import panoptic_consensus

    if t.group_id != t.id:
        raise QualityError(409, f"task {t.id} is not the image's task of an overlap group")
    group = _group(db, t.id)
    waiting = [g.id for g in group if g.state not in ("submitted", "accepted")]
    if waiting:
        raise QualityError(409, f"overlap tasks {waiting} are not submitted yet")
    if t.state != "submitted":
        raise QualityError(409, f"task {t.id} is {t.state}, not submitted")
    schema = project_schema(p)
    img = db.get(Image, t.image_id)
    anns = [_version(db, g.id, g.version) for g in group]
    if method == "pick":
        if pick not in [g.id for g in group]:
            raise QualityError(422, f"task_id: pick one of the group's tasks "
                                    f"{[g.id for g in group]}")
        src = anns[[g.id for g in group].index(pick)]
        labels = masks.Labels(src.segments, src.runs)
    else:
        pans = [_panoptic(p, schema, a.segments, a.runs, img) for a in anns]
        try:
            merged = panoptic_consensus(pans, schema, method=method, where=f"task {t.id}")
        except SegflowError as e:
            raise QualityError(422, str(e)) from None
        labels = masks.from_panoptic(merged)
    before = {g.assignee_id: a for g, a in zip(group, anns)}
    t.version += 1
    new = Annotation(task_id=t.id, version=t.version, author_id=user.id, kind="resolve",
                     segments=labels.segments, runs=labels.runs)
    db.add(new)
    final = _category_maps(p, schema, [new], img)[0]
    for uid, a in before.items():  # what the reviewer changed of each annotator's work
        rate = _edit_rate(_category_maps(p, schema, [a], img)[0], final)
        db.add(QualityScore(project_id=p.id, task_id=t.id, user_id=uid, kind="review_edit",
                            score=rate, detail={"method": method}))
    for g in group:
        g.state, g.reviewer_id, g.updated_at = "accepted", user.id, now()
        db.add(Event(project_id=p.id, task_id=g.id, user_id=user.id, kind="accepted"))
    t.prelabel_untouched = False
    db.flush()
    on_accept(db, p, t)
    return new


def reviewer_fixes(db: Session, p: Project, t: Task) -> QualityScore | None:
    """When a task is accepted after a reviewer fixed it (versions of kind "review" after the
    annotator's last): the share of pixels the reviewer changed, charged to the annotator."""
    anns = list(db.scalars(select(Annotation).where(Annotation.task_id == t.id)
                           .order_by(Annotation.version)))
    if not anns or anns[-1].kind != "review":
        return None
    theirs = next((a for a in reversed(anns) if a.kind != "review"), None)
    schema = project_schema(p)
    img = db.get(Image, t.image_id)
    before = _category_maps(p, schema, [theirs], img)[0] if theirs is not None else \
        np.full((img.height, img.width), schema.num_classes, np.uint16)
    rate = _edit_rate(before, _category_maps(p, schema, [anns[-1]], img)[0])
    row = QualityScore(project_id=p.id, task_id=t.id, user_id=t.assignee_id, kind="review_edit",
                       score=rate, detail={"method": "fix", "version": anns[-1].version})
    db.add(row)
    db.flush()
    return row


def accept_group(db: Session, t: Task, user: User) -> None:
    """Accepting an overlap group's image task closes its submitted copies."""
    if t.group_id != t.id:
        return
    for g in _group(db, t.id):
        if g.id != t.id and g.state == "submitted":
            g.state, g.reviewer_id, g.updated_at = "accepted", user.id, now()


# ---- pre-label edits ------------------------------------------------------------------------


def _edit_rate(a: np.ndarray, b: np.ndarray) -> float:
    from segflow.quality import prelabel_edit_rate

    return prelabel_edit_rate(a, b)


def object_changes(pre: masks.Labels, final: masks.Labels, h: int, w: int,
                   min_iou: float = 0.5) -> dict:
    """Objects added, removed and relabelled between two label maps: segments matched one to
    one by IoU >= ``min_iou`` (greedy, best first)."""
    a = masks.label_map(pre.runs, h, w).astype(np.int64)
    b = masks.label_map(final.runs, h, w).astype(np.int64)
    cat_a = {s["id"]: s["category_id"] for s in pre.segments}
    cat_b = {s["id"]: s["category_id"] for s in final.segments}
    area_a, area_b = masks.pixel_counts(a), masks.pixel_counts(b)
    both = (a > 0) & (b > 0)
    pairs, inter = np.unique(a[both] * (1 << 32) + b[both], return_counts=True)
    cand = sorted(((int(n) / (area_a[int(k >> 32)] + area_b[int(k & 0xFFFFFFFF)] - int(n)),
                    int(k >> 32), int(k & 0xFFFFFFFF)) for k, n in zip(pairs, inter)),
                  reverse=True)
    used_a, used_b, relabelled = set(), set(), 0
    for iou, i, j in cand:
        if iou < min_iou:
            break
        if i in used_a or j in used_b or i not in cat_a or j not in cat_b:
            continue
        used_a.add(i)
        used_b.add(j)
        relabelled += cat_a[i] != cat_b[j]
    return {"objects_added": len(set(cat_b) - used_b), "objects_removed": len(set(cat_a) - used_a),
            "objects_relabelled": relabelled}


def on_accept(db: Session, p: Project, t: Task) -> QualityScore | None:
    """When a task whose first version was a pre-label is accepted: how much people changed
    it (pixels changed, per class, objects added / removed / relabelled), under the pre-label
    source (pipeline or checkpoint and its version)."""
    if t.kind != "work":
        return None
    pre = _version(db, t.id, 1)
    final = _version(db, t.id, t.version)
    if pre is None or pre.kind != "prelabel" or final is None:
        return None
    schema = project_schema(p)
    img = db.get(Image, t.image_id)
    a, b = _category_maps(p, schema, [pre, final], img)
    changed = a != b
    names = schema.names_by_id()
    per_class = {}
    for c in schema.ids:
        inc = (a == c) | (b == c)
        n = int(np.count_nonzero(inc))
        if n:
            per_class[names[c]] = float(np.count_nonzero(changed & inc) / n)
    detail = {"per_class": per_class, "versions": t.version,
              **object_changes(masks.Labels(pre.segments, pre.runs),
                               masks.Labels(final.segments, final.runs), img.height, img.width)}
    db.execute(delete(QualityScore).where(QualityScore.task_id == t.id,
                                          QualityScore.kind == "prelabel_edit"))
    row = QualityScore(project_id=p.id, task_id=t.id, user_id=t.assignee_id,
                       kind="prelabel_edit", score=_edit_rate(a, b), detail=detail,
                       source=pre.source or "unknown")
    db.add(row)
    db.flush()
    return row


# ---- qualification status and the dashboard ----------------------------------------------------


def qualification_json(db: Session, p: Project, user_ids: list[int] | None, *,
                       user_view: bool) -> list[dict]:
    cfg = settings(db, p.id)["qualification"]
    qs = {q.user_id: q for q in db.scalars(select(Qualification).where(
        Qualification.project_id == p.id))}
    users = db.execute(select(User.id, User.username).join(Member, Member.user_id == User.id)
                       .where(Member.project_id == p.id, User.role == "annotator")).all()
    scores = db.scalars(select(QualityScore).where(QualityScore.project_id == p.id,
                                                   QualityScore.kind == "qualification")
                        .order_by(QualityScore.id)).all()
    busy = set(db.scalars(select(Task.assignee_id).where(
        Task.project_id == p.id, Task.kind == "qualification", Task.state.in_(EDITABLE))))
    out = []
    for uid, name in users:
        if user_ids is not None and uid not in user_ids:
            continue
        q = qs.get(uid)
        out.append({"user_id": uid, "username": name, "required": bool(cfg["image_ids"]),
                    "status": (q.status if q else "pending") if cfg["image_ids"] else "passed",
                    "attempt": q.attempt if q else 0, "attempts_allowed": cfg["attempts"],
                    # the attempt the annotator's next task belongs to
                    "next_attempt": (q.attempt if q else 0) + (uid not in busy),
                    "best": q.best if q else None, "pass_mark": cfg["pass_mark"],
                    "metric": cfg["metric"],
                    "scores": [score_json(s, user_view=user_view) for s in scores
                               if s.user_id == uid]})
    return out


def set_qualification(db: Session, p: Project, uid: int, status: str) -> Qualification:
    u = db.get(User, uid)
    if u is None or u.role != "annotator" or db.get(Member, (p.id, uid)) is None:
        raise QualityError(404, f"no annotator {uid} in this project")
    q = db.get(Qualification, (p.id, uid))
    if q is None:
        q = Qualification(project_id=p.id, user_id=uid, attempt=0)
        db.add(q)
    if status == "pending":  # re-qualify: the attempts start again, open work waits
        for t in db.scalars(select(Task).where(Task.project_id == p.id, Task.assignee_id == uid,
                                               Task.kind == "qualification",
                                               Task.state.in_(EDITABLE))):
            t.state = "submitted"  # an unfinished attempt is dropped, not scored
        q.attempt, q.best = 0, None
    q.status, q.updated_at = status, now()
    db.flush()
    return q


def dashboard(db: Session, p: Project) -> dict:
    """Per annotator: qualification, honeypot scores over time, agreement, rejection rate and
    pixels changed by reviewers; per pre-label source: the edits people made. A fixed number
    of statements, whatever the number of tasks."""
    cfg = settings(db, p.id)
    mark = cfg["qualification"]["pass_mark"]
    users = db.execute(select(User.id, User.username).join(Member, Member.user_id == User.id)
                       .where(Member.project_id == p.id, User.role == "annotator")
                       .order_by(User.id)).all()
    qs = {q.user_id: q for q in db.scalars(select(Qualification).where(
        Qualification.project_id == p.id))}
    scores = db.execute(select(QualityScore.user_id, QualityScore.kind, QualityScore.score,
                               QualityScore.at, QualityScore.source, QualityScore.detail,
                               QualityScore.flagged, QualityScore.task_id)
                        .where(QualityScore.project_id == p.id)
                        .order_by(QualityScore.at, QualityScore.id)).all()
    reviews = db.execute(select(Task.assignee_id, Event.kind, func.count())
                         .join(Task, Task.id == Event.task_id)
                         .where(Event.project_id == p.id, Event.kind.in_(("accepted", "rejected")),
                                Task.kind == "work")
                         .group_by(Task.assignee_id, Event.kind)).all()
    rev: dict[int, dict] = {}
    for uid, kind, n in reviews:
        rev.setdefault(uid, {})[kind] = n
    mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
    people = []
    for uid, name in users:
        mine = [s for s in scores if s.user_id == uid]
        hp = [s for s in mine if s.kind == "honeypot"]
        ag = [s.score for s in mine if s.kind == "agreement"]
        re_ = [s.score for s in mine if s.kind == "review_edit"]
        r = rev.get(uid, {})
        n_rev = r.get("accepted", 0) + r.get("rejected", 0)
        q = qs.get(uid)
        recent = mean([s.score for s in hp[-3:]])
        people.append({
            "user_id": uid, "username": name,
            "qualification": {"status": (q.status if q else "pending")
                              if qualification_required(cfg) else "not required",
                              "attempts": q.attempt if q else 0, "best": q.best if q else None},
            "honeypots": [{"at": s.at.isoformat() + "Z", "score": s.score, "task_id": s.task_id}
                          for s in hp],
            "honeypot_mean": mean([s.score for s in hp]),
            "qualification_scores": [{"at": s.at.isoformat() + "Z", "score": s.score}
                                     for s in mine if s.kind == "qualification"],
            "agreement_mean": mean(ag), "overlap_tasks": len(ag),
            "reviews": n_rev, "rejection_rate": r.get("rejected", 0) / n_rev if n_rev else None,
            "reviewer_edit_rate": mean(re_),
            "prelabel_edit_rate": mean([s.score for s in mine if s.kind == "prelabel_edit"]),
            # below the pass mark on the last three honeypots: the manager decides to pause
            "below_mark": recent is not None and recent < mark,
        })
    sources: dict[str, list] = {}
    for s in scores:
        if s.kind == "prelabel_edit":
            sources.setdefault(s.source, []).append(s)
    prelabels = [{"source": src, "tasks": len(rows),
                  "edit_rate_mean": mean([s.score for s in rows]),
                  "edit_rate_median": float(np.median([s.score for s in rows])),
                  "untouched": sum(s.score == 0 for s in rows),
                  "per_class": _mean_per_class([s.detail.get("per_class", {}) for s in rows]),
                  **{k: sum(s.detail.get(k, 0) for s in rows)
                     for k in ("objects_added", "objects_removed", "objects_relabelled")}}
                 for src, rows in sorted(sources.items())]
    flags = [{"task_id": s.task_id, "miou": s.detail.get("group_miou")} for s in scores
             if s.kind == "agreement" and s.flagged and s.task_id == s.detail.get("group")]
    return {"pass_mark": mark, "annotators": people, "prelabels": prelabels,
            "overlap_flags": flags, "settings": cfg}


def _mean_per_class(rows: list[dict]) -> dict:
    """Mean over tasks of the share of a class's pixels people changed (tasks with the class)."""
    out: dict[str, list] = {}
    for r in rows:
        for name, v in r.items():
            out.setdefault(name, []).append(v)
    return {k: float(np.mean(v)) for k, v in sorted(out.items())}


def dashboard_png(d: dict) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 3.4))
    axes = fig.subplots(1, 2)
    ax = axes[0]
    for person in d["annotators"]:
        pts = person["qualification_scores"] + person["honeypots"]
        if pts:
            ax.plot(range(1, len(pts) + 1), [x["score"] for x in pts], marker="o",
                    label=person["username"])
    ax.axhline(d["pass_mark"], color="#d9534f", ls="--", lw=1, label="pass mark")
    ax.set_ylim(0, 1.02)
    ax.set_title("gold scores over time (qualification, honeypots)", fontsize=9)
    ax.set_xlabel("scored task (in order)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=7)
    ax = axes[1]
    pl = d["prelabels"]
    if pl:
        ax.barh([x["source"][:40] for x in pl], [x["edit_rate_mean"] * 100 for x in pl],
                color="#4a90d9")
        ax.set_xlim(0, max(10.0, 130 * max(x["edit_rate_mean"] for x in pl)))
        for k, x in enumerate(pl):
            ax.text(x["edit_rate_mean"] * 100, k, f" {x['edit_rate_mean']:.1%} ({x['tasks']})",
                    va="center", fontsize=8)
    ax.set_title("pixels changed from the pre-label until accepted (%)", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()
