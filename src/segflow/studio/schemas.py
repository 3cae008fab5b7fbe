"""Request bodies and parameters of the REST API (Pydantic); they document themselves in /docs
(OpenAPI). Everything is bounded at the edge: floats are finite, integers fit the database's
32-bit columns, lists and strings have a maximum length; sizes bounded by the image are checked
where the image is known (the routes and ``services``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from segflow.formats import FORMAT_NAMES
from segflow.studio.services.assist import THRESHOLD_TOOL_METHODS

MAX_INT = 2**31 - 1  # the database's INTEGER columns (and the label map's int32 ids)
MAX_SIDE = 1_000_000  # pixels on one side of an image; the pixel cap bounds the product
Int = Annotated[int, Field(ge=0, le=MAX_INT)]
Id = Annotated[int, Field(ge=1, le=MAX_INT)]
Coord = Annotated[float, Field(ge=-MAX_SIDE, le=MAX_SIDE)]  # finite: Body forbids NaN and inf
PathId = Annotated[int, Path(ge=1, le=MAX_INT)]
Version = Annotated[int, Query(ge=0, le=MAX_INT)]


def _plain_path(v: str) -> str:
    if any(ord(c) < 32 for c in v):  # a NUL reached os.path as a 500
        raise ValueError("a server path cannot contain control characters (NUL, newline, tab)")
    return v


#: a path on the server (import folders, volumes, rasters, checkpoints)
ServerPath = Annotated[str, AfterValidator(_plain_path)]
TaskState = Literal["new", "assigned", "submitted", "rejected", "accepted"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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
    image_count: int = Field(0, ge=0, le=MAX_INT)
    domains: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=100)
    schema_: list[ClassIn] = Field(alias="schema", min_length=1, max_length=1000)
    targets: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, max_length=50, description="targets as segflow assess reads them, e.g. "
        "'miou >= 0.80', 'iou[pedestrian] >= 0.60'; default: [target_metric >= "
        "target_threshold]")


class Members(Body):
    user_ids: list[Id] = Field(max_length=10000)


class GuidelineExample(Body):
    image_id: Id
    kind: Literal["good", "bad"]
    caption: str = Field("", max_length=500)


class GuidelineIn(Body):
    markdown: str = Field(min_length=1, max_length=200000)
    examples: list[GuidelineExample] = Field(default_factory=list, max_length=1000,
                                             description="[{image_id, kind: good|bad, caption}]")


class ImportFolder(Body):
    path: ServerPath = Field(min_length=1, max_length=4096,
                      description="a folder on the server: images, or a dataset in any format "
                                  "segflow reads (its labels become pre-labels)")
    format: str | None = Field(None, max_length=32,
                               description="dataset format; auto-detected when omitted")


class Prelabel(Body):
    mode: Literal["none", "pipeline", "checkpoint"] = "none"
    pipeline: str | None = Field(None, max_length=200,
                                 description="pipeline name or 'auto' (segflow inspect "
                                             "suggests one from the images)")
    checkpoint: ServerPath | None = Field(None, max_length=4096,
                                   description="path of a trained checkpoint on the server")
    class_id: int | None = Field(None, ge=0, le=65535,
                                 description="class given to pipeline foreground regions")
    apply: bool = Field(True, description="pre-label the project's tasks that have no labels yet")


class Assign(Body):
    mode: Literal["balanced", "manual"] = "balanced"
    user_ids: list[Id] | None = Field(None, max_length=10000)
    task_ids: list[Id] | None = Field(None, max_length=1_000_000)


class Segment(Body):
    id: Id
    category_id: int = Field(ge=0, le=65535)
    iscrowd: int = Field(0, ge=0, le=1)


class AnnotationIn(Body):
    base_version: int = Field(ge=0, le=MAX_INT, description="the version the edit started from; a newer "
                                                "version on the server gives 409")
    width: int = Field(ge=1, le=MAX_SIDE)
    height: int = Field(ge=1, le=MAX_SIDE)
    runs: list[int] = Field(description="row-major runs of segment ids: [id, length, ...], ids "
                                        "0..2^31-1, lengths 1..width*height summing to "
                                        "width*height")
    segments: list[Segment] = Field(max_length=1_000_000)
    seconds: float = Field(0.0, ge=0, le=86400, description="editing time since the last save")


class CommentIn(Body):
    text: str = Field(min_length=1, max_length=5000)
    x: float | None = Field(None, ge=0, le=MAX_SIDE)
    y: float | None = Field(None, ge=0, le=MAX_SIDE)


class Review(Body):
    decision: Literal["accept", "reject"]
    comments: list[CommentIn] = Field(default_factory=list, max_length=1000)


class Assist(Body):
    tool: Literal["threshold", "kmeans", "grabcut", "superpixel"]
    point: tuple[Coord, Coord] | None = None
    box: tuple[Coord, Coord, Coord, Coord] | None = Field(None, description="x, y, w, h")
    method: Literal[THRESHOLD_TOOL_METHODS] = "otsu"  # type: ignore[valid-type]
    k: int = Field(4, ge=2, le=16)
    n_segments: int = Field(400, ge=10, le=20000)


class ExportIn(Body):
    format: Literal[FORMAT_NAMES] = "coco"  # every format of segflow.formats.FORMATS


# ---- quality control (issue 9) ----------------------------------------------------------------

Fraction = Annotated[float, Field(ge=0, le=1)]


class Qualification(Body):
    image_ids: list[Id] = Field(default_factory=list, max_length=100,
                                description="gold images an annotator labels before real work "
                                            "(empty: no qualification)")
    metric: Literal["miou", "pq", "boundary_f1"] = Field(
        "miou", description="the score: miou or boundary_f1 (semantic), also pq (instance, "
                            "panoptic)")
    pass_mark: Fraction = Field(0.8, description="mean score over the gold images to pass")
    attempts: int = Field(3, ge=1, le=100, description="attempts allowed")


class Overlap(Body):
    rate: Fraction = Field(0.0, description="fraction of the images given to k annotators")
    k: int = Field(2, ge=2, le=10)
    threshold: Fraction = Field(0.7, description="mean pairwise mIoU under which the image is "
                                                 "flagged for the reviewer")


class QualitySettingsIn(Body):
    qualification: Qualification = Field(default_factory=Qualification)
    honeypot_rate: Fraction = Field(0.0, description="fraction of the tasks served that are "
                                                     "gold images, scored silently")
    overlap: Overlap = Field(default_factory=Overlap)


class GoldIn(Body):
    """Mark an image gold: its accepted labels (``task_id``) or imported reference labels
    (``labels``, the wire format of ``PUT /api/tasks/{tid}/annotation`` without base_version)."""

    image_id: Id
    task_id: Id | None = None
    labels: ReferenceLabels | None = None


class ReferenceLabels(Body):
    width: int = Field(ge=1, le=MAX_SIDE)
    height: int = Field(ge=1, le=MAX_SIDE)
    runs: list[int]
    segments: list[Segment] = Field(max_length=1_000_000)


GoldIn.model_rebuild()


class QualificationUpdate(Body):
    status: Literal["pending", "paused", "passed"] = Field(
        description="pending: re-qualify (the attempts start again); paused: no tasks until a "
                    "manager decides; passed: let the annotator work without (re)qualifying")


class Resolve(Body):
    method: Literal["pick", "majority", "staple"]
    task_id: Id | None = Field(None, description="pick: the overlap task whose labels to keep")


# responses


class ImageOut(BaseModel):
    id: int
    filename: str
    width: int
    height: int
    url: str


class TaskOut(BaseModel):
    id: int
    project_id: int
    state: str
    version: int
    assignee_id: int | None
    assignee: str | None
    reviewer_id: int | None
    reviewer: str | None
    image: ImageOut
    seconds_spent: float
    updated_at: str | None
    untouched_prelabel: bool
    qualification: bool = Field(description="a task of the training phase (scored against "
                                            "gold labels, with feedback)")

# ---- large items: volumes (services.volumes) ------------------------------------------------


class VolumeImport(Body):
    path: ServerPath = Field(min_length=1, max_length=4096,
                      description="a NIfTI file (.nii, .nii.gz), NRRD/MetaImage file or a folder "
                                  "of one DICOM series, on the server")


class PlaneLabels(Body):
    axis: int = Field(ge=0, le=2, description="0 sagittal, 1 coronal, 2 axial (array axes i, j, k)")
    index: int = Field(ge=0, le=MAX_INT)
    runs: list[int] = Field(description="the displayed plane's labels as row-major runs "
                                        "[id, length, ...] (as GET .../labels/{axis}/{index})")


class VolumeLabelsIn(Body):
    base_version: int = Field(ge=0, le=MAX_INT)
    planes: list[PlaneLabels] = Field(max_length=4096, description="edited planes, applied in "
                                                                   "order")
    segments: list[Segment] = Field(max_length=1_000_000)
    seconds: float = Field(0.0, ge=0, le=86400)


class Interpolate(Body):
    a: PlaneLabels = Field(description="a labelled plane")
    b: PlaneLabels = Field(description="another plane on the same axis; the planes between "
                                       "are returned, interpolated")


# ---- large items: rasters (services.tiles) --------------------------------------------------


class RasterImport(Body):
    path: ServerPath = Field(min_length=1, max_length=4096,
                      description="a GeoTIFF or COG on the server (it stays there; the studio "
                                  "reads it by windows)")
    bands: list[int] | None = Field(None, min_length=1, max_length=3,
                                    description="1 or 3 bands, 1-based (e.g. [4, 3, 2])")


class TileLabels(Body):
    tx: int = Field(ge=0, le=MAX_INT)
    ty: int = Field(ge=0, le=MAX_INT)
    runs: list[int] = Field(description="the label tile's runs (as GET .../labels/{tx}/{ty})")


class RasterLabelsIn(Body):
    base_version: int = Field(ge=0, le=MAX_INT)
    tiles: list[TileLabels] = Field(max_length=4096, description="edited label tiles")
    segments: list[Segment] = Field(max_length=1_000_000)
    seconds: float = Field(0.0, ge=0, le=86400)
