"""Request bodies of the REST API (Pydantic); they document themselves in /docs (OpenAPI)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from segflow.formats import FORMAT_NAMES
from segflow.studio.services.assist import THRESHOLD_TOOL_METHODS


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Login(Body):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class TokenRequest(Login):
    name: str = Field("api", max_length=100)
    expires_in_days: int | None = Field(None, ge=1, le=3650, description="lifetime; at most "
                                        "the studio's token TTL, which is also the default")


class NewUser(Body):
    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-@]+$")
    password: str = Field(min_length=1, max_length=200, description="10+ characters, not easy "
                                                                   "to guess (zxcvbn score >= 3)")
    role: Literal["admin", "manager", "annotator", "reviewer"]


class PasswordChange(Body):
    old_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=200)


class PasswordReset(Body):
    new_password: str = Field(min_length=1, max_length=200)


class UserUpdate(Body):
    active: bool = Field(description="false: the user cannot log in; their sessions and tokens "
                                     "are revoked")


class ClassIn(Body):
    id: int = Field(ge=0, le=65535)
    name: str = Field(min_length=1, max_length=64)
    color: tuple[int, int, int] = (128, 128, 128)
    isthing: bool = False
    hotkey: str | None = Field(None, max_length=1)


class Brief(Body):
    """The initial discussion: goals, technical requirements, data needs and the label schema."""

    name: str = Field(min_length=1, max_length=200)
    task_type: Literal["semantic", "instance", "panoptic"] = "semantic"
    goals: str = Field("", max_length=20000)
    target_metric: Literal["miou", "pq", "ap50", "ap", "dice"] = "miou"
    target_threshold: float = Field(0.8, ge=0, le=1)
    image_count: int = Field(0, ge=0)
    domains: list[str] = Field(default_factory=list)
    schema_: list[ClassIn] = Field(alias="schema", min_length=1)


class Members(Body):
    user_ids: list[int]


class GuidelineIn(Body):
    markdown: str = Field(min_length=1, max_length=200000)
    examples: list[dict] = Field(default_factory=list,
                                 description="[{image_id, kind: good|bad, caption}]")


class ImportFolder(Body):
    path: str = Field(description="a folder on the server: images, or a dataset in any format "
                                  "segflow reads (its labels become pre-labels)")
    format: str | None = Field(None, description="dataset format; auto-detected when omitted")


class Prelabel(Body):
    mode: Literal["none", "pipeline", "checkpoint"] = "none"
    pipeline: str | None = Field(None, description="pipeline name or 'auto' (segflow inspect "
                                                   "suggests one from the images)")
    checkpoint: str | None = Field(None, description="path of a trained checkpoint on the server")
    class_id: int | None = Field(None, description="class given to pipeline foreground regions")
    apply: bool = Field(True, description="pre-label the project's tasks that have no labels yet")


class Assign(Body):
    mode: Literal["balanced", "manual"] = "balanced"
    user_ids: list[int] | None = None
    task_ids: list[int] | None = None


class Segment(Body):
    id: int
    category_id: int
    iscrowd: int = 0


class AnnotationIn(Body):
    base_version: int = Field(ge=0, description="the version the edit started from; a newer "
                                                "version on the server gives 409")
    width: int
    height: int
    runs: list[int] = Field(description="row-major runs of segment ids: [id, length, ...]")
    segments: list[Segment]
    seconds: float = Field(0.0, ge=0, le=86400, description="editing time since the last save")


class CommentIn(Body):
    text: str = Field(min_length=1, max_length=5000)
    x: float | None = None
    y: float | None = None


class Review(Body):
    decision: Literal["accept", "reject"]
    comments: list[CommentIn] = Field(default_factory=list)


class Assist(Body):
    tool: Literal["threshold", "kmeans", "grabcut", "superpixel"]
    point: tuple[float, float] | None = None
    box: tuple[float, float, float, float] | None = Field(None, description="x, y, w, h")
    method: Literal[THRESHOLD_TOOL_METHODS] = "otsu"  # type: ignore[valid-type]
    k: int = Field(4, ge=2, le=16)
    n_segments: int = Field(400, ge=10, le=20000)


class ExportIn(Body):
    format: Literal[FORMAT_NAMES] = "coco"  # every format of segflow.formats.FORMATS
