"""The studio's database tables (SQLAlchemy 2 declarative). Schema changes go through Alembic
migrations in ``migrations/versions``; the tests check the migrations create exactly these."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false, true
from sqlalchemy.types import DateTime


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


ROLES = ("admin", "manager", "annotator", "reviewer")
TASK_STATES = ("new", "assigned", "submitted", "rejected", "accepted")
# work: the image's own task (exported); overlap: another annotator's independent copy of it;
# honeypot: a gold image served among real work, scored silently; qualification: a gold image
# of the training phase, scored with feedback
TASK_KINDS = ("work", "overlap", "honeypot", "qualification")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now)
    # a deactivated user cannot log in, and their sessions and tokens stop working
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class AuthToken(Base):
    """Browser sessions (kind "session", with a CSRF secret) and API bearer tokens (kind
    "api"). Only a SHA-256 of the token is stored."""

    __tablename__ = "auth_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(100), default="")
    csrf: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    task_type: Mapped[str] = mapped_column(String(16))  # semantic | instance | panoptic
    goals: Mapped[str] = mapped_column(Text, default="")
    target_metric: Mapped[str] = mapped_column(String(16), default="miou")
    target_threshold: Mapped[float] = mapped_column(Float, default=0.8)
    image_count: Mapped[int] = mapped_column(Integer, default=0)  # data needs: images wanted
    domains: Mapped[list] = mapped_column(JSON, default=list)
    schema: Mapped[list] = mapped_column(JSON, default=list)  # LabelSchema.to_list()
    prelabel: Mapped[dict] = mapped_column(JSON, default=dict)  # {"mode": ..., ...}
    # the brief's targets, as segflow assess reads them ("miou >= 0.8"); None: target_metric
    targets: Mapped[list | None] = mapped_column(JSON, nullable=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now)


class Member(Base):
    __tablename__ = "members"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"),
                                            primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)


class Guideline(Base):
    __tablename__ = "guidelines"
    __table_args__ = (UniqueConstraint("project_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    markdown: Mapped[str] = mapped_column(Text)
    examples: Mapped[list] = mapped_column(JSON, default=list)  # [{image_id, kind, caption}]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now)


class Acknowledgement(Base):
    __tablename__ = "acknowledgements"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"),
                                            primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=now)


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "sha256"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    ext: Mapped[str] = mapped_column(String(8))
    filename: Mapped[str] = mapped_column(String(255))  # shown to people; never a path
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now)


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"),
                                            index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="new")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True,
                                                    index=True)
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)  # latest annotation version
    seconds_spent: Mapped[float] = mapped_column(Float, default=0.0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=now)
    # the latest version is the pre-labels exactly (none saved, or saved without a human edit)
    prelabel_untouched: Mapped[bool] = mapped_column(Boolean, default=False,
                                                     server_default=false())
    kind: Mapped[str] = mapped_column(String(16), default="work", server_default="work")
    # the gold labels a qualification task or honeypot is scored against (no foreign key:
    # SQLite cannot add one to an existing table; a task whose gold is gone is not scored)
    gold_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    group_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # overlap
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)  # qualification

    image: Mapped[Image] = relationship(lazy="raise_on_sql", viewonly=True)
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id],
                                                 lazy="raise_on_sql", viewonly=True)
    reviewer: Mapped[User | None] = relationship(foreign_keys=[reviewer_id],
                                                 lazy="raise_on_sql", viewonly=True)


class Annotation(Base):
    """One saved version of a task's labels: the segments and the label map as packed runs
    (``services.masks``)."""

    __tablename__ = "annotations"
    __table_args__ = (UniqueConstraint("task_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # prelabel | save
    segments: Mapped[list] = mapped_column(JSON)  # [{id, category_id, iscrowd, area}]
    runs: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # zlib int32 runs
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now)
    # pre-labels: what made them ("pipeline:NAME", "checkpoint:FILE@SHA12", "import:FORMAT")
    source: Mapped[str] = mapped_column(String(300), default="", server_default="")


class Comment(Base):
    __tablename__ = "comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    version: Mapped[int] = mapped_column(Integer)
    x: Mapped[float | None] = mapped_column(Float, nullable=True)
    y: Mapped[float | None] = mapped_column(Float, nullable=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now)


class Event(Base):
    """What happened to a task and who did it; the dashboard is computed from these."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_project_kind", "project_id", "kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # assigned|saved|submitted|accepted|rejected
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    at: Mapped[datetime] = mapped_column(DateTime, default=now)


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    format: Mapped[str] = mapped_column(String(16))
    content_hash: Mapped[str] = mapped_column(String(64))
    n_images: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now)


AUDIT_KINDS = ("login_ok", "login_failed", "login_rate_limited", "logout", "token_created",
               "token_revoked", "password_changed", "password_reset", "user_created",
               "user_deactivated", "user_activated")


class AuditEvent(Base):
    """Who did what to an account, and from where: logins (ok, failed, rate-limited), tokens,
    passwords and users. ``username`` keeps the name tried even when no such user exists."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=now, index=True)
    kind: Mapped[str] = mapped_column(String(32))  # one of AUDIT_KINDS
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                 nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                nullable=True)  # the account concerned
    username: Mapped[str] = mapped_column(String(64), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str] = mapped_column(String(500), default="")


JOB_STATES = ("queued", "running", "done", "failed", "cancelled")


class Job(Base):
    """A background job (``services.jobs``): what to run, where it stands, and the lease its
    worker renews (``heartbeat_at``, epoch seconds) so a dead worker's job is retried or failed.
    Times are epoch seconds (floats): the lease arithmetic is the same on SQLite and
    PostgreSQL."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_project_kind", "project_id", "kind"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"),
                                                   nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                nullable=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # one of JOB_STATES
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    lease_s: Mapped[float] = mapped_column(Float, default=60.0)
    worker: Mapped[str] = mapped_column(String(200), default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False,
                                                   server_default=false())
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)

# ---- quality control (issue 9) ----------------------------------------------------------------


class GoldLabel(Base):
    """Reference labels of one image: from an accepted task (``source`` "task:ID") or imported.
    Never served to annotators; qualification tasks and honeypots are scored against them."""

    __tablename__ = "gold_labels"
    __table_args__ = (UniqueConstraint("project_id", "image_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"))
    segments: Mapped[list] = mapped_column(JSON)
    runs: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    source: Mapped[str] = mapped_column(String(64), default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now)

    image: Mapped[Image] = relationship(lazy="raise_on_sql", viewonly=True)


class QualitySettings(Base):
    """A project's qualification, honeypot and overlap settings (``schemas.QualitySettingsIn``)."""

    __tablename__ = "quality_settings"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"),
                                            primary_key=True)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)


QUALIFICATION_STATES = ("pending", "passed", "failed", "paused")


class Qualification(Base):
    """Where one annotator stands in a project's training phase."""

    __tablename__ = "qualifications"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"),
                                            primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # the attempt under way or last
    best: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=now)


SCORE_KINDS = ("qualification", "honeypot", "agreement", "prelabel_edit", "review_edit")


class QualityScore(Base):
    """One measurement: a qualification or honeypot task against its gold labels, an overlap
    task's agreement with the others, or the pixels changed from a pre-label (or by a
    reviewer) until acceptance. ``user_id`` is the annotator measured."""

    __tablename__ = "quality_scores"
    __table_args__ = (Index("ix_quality_scores_project_kind", "project_id", "kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"),
                                                nullable=True, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # one of SCORE_KINDS
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(300), default="")  # pre-label source
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    heatmap: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # PNG overlay
    at: Mapped[datetime] = mapped_column(DateTime, default=now)

class LargeItem(Base):
    """An image too large to edit as one label map (a 3-D volume, a huge raster): where its
    pixels are (``path``) and its geometry (``meta``). Its labels are stored in chunks."""

    __tablename__ = "large_items"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"),
                                          primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # volume | raster
    path: Mapped[str] = mapped_column(String(1000))
    meta: Mapped[dict] = mapped_column(JSON, default=dict)


class LabelChunk(Base):
    """One chunk (a slice of a volume, a tile of a raster) of a large item's labels as saved in
    ``version``: a save writes only the chunks it changed; a chunk at version v is its row with
    the highest version <= v. ``counts``: pixels per segment id, for the areas."""

    __tablename__ = "label_chunks"
    __table_args__ = (UniqueConstraint("task_id", "key", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(32))
    version: Mapped[int] = mapped_column(Integer)
    runs: Mapped[bytes] = mapped_column(LargeBinary)  # zlib int32 runs (services.masks)
    counts: Mapped[dict] = mapped_column(JSON, default=dict)  # {"id": pixels}
