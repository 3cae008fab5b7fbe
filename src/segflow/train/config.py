"""Training configuration: a YAML file mapped field by field onto Pydantic models, so a wrong
key or value is reported with the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from segflow.errors import ConfigError
from segflow.models.registry import MODELS, Task, model_names


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(Strict):
    train: str
    val: str | None = None
    val_fraction: float = Field(0.1, ge=0, lt=1)
    format: str | None = None


class ModelConfig(Strict):
    name: Literal[model_names()] = "unet"  # type: ignore[valid-type]  # the models registry
    args: dict[str, Any] = Field(default_factory=dict)


class LossConfig(Strict):
    name: Literal["ce", "dice", "focal", "ce+dice", "focal+dice"] = "ce"
    class_weights: list[float] | None = None
    focal_gamma: float = Field(2.0, ge=0)
    dice_weight: float = Field(1.0, ge=0)
    distance_weight: float = Field(0.0, ge=0, description="> 0 adds a distance head (U-Net) "
                                   "whose peaks split touching objects at prediction")


class OptimConfig(Strict):
    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    momentum: float = Field(0.9, ge=0, lt=1)


class ScheduleConfig(Strict):
    name: Literal["poly", "cosine", "constant"] = "poly"
    warmup_steps: int = Field(0, ge=0)
    power: float = Field(0.9, gt=0)


class AugmentConfig(Strict):
    hflip: bool = True
    vflip: bool = False
    scale: tuple[float, float] = (1.0, 1.0)
    rotate: float = Field(0.0, ge=0, le=180)
    color_jitter: float = Field(0.0, ge=0, le=1)
    blur: float = Field(0.0, ge=0, le=1)
    noise: float = Field(0.0, ge=0, le=1)


class EarlyStopConfig(Strict):
    metric: Literal["miou", "pixel_accuracy", "dice", "val_loss", "ap", "ap50"] = "miou"
    patience: int = Field(5, ge=1)


class TrainLoopConfig(Strict):
    epochs: int = Field(10, ge=1)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(8, ge=1)
    crop: int | None = Field(None, ge=16)
    grad_accum: int = Field(1, ge=1)
    clip_grad_norm: float | None = Field(None, gt=0)
    amp: Literal["auto", "on", "off"] = "auto"
    channels_last: Literal["auto", "on", "off"] = "auto"
    checkpoint_every: int = Field(200, ge=1)
    early_stopping: EarlyStopConfig | None = None
    log_every: int = Field(10, ge=1)


class VolumeConfig(Strict):
    """Training on NIfTI volumes (a folder with images/, labels/ and schema.json, as
    ``segflow data synth medical3d`` writes). With model ``unet`` it is a 2.5-D U-Net: each
    slice (along the last voxel axis) with ``context`` neighbouring slices on each side as
    channels; with ``unet3d`` patches of ``patch`` voxels."""

    context: int = Field(2, ge=0, le=8)
    patch: tuple[int, int, int] = (64, 64, 32)
    window: tuple[float, float] | None = Field(
        (40.0, 400.0), description="(level, width) of the intensity window mapped to 0..1 (CT "
        "HU); null: each volume's 0.5-99.5 percentiles (MR)")
    samples_per_volume: int = Field(8, ge=1, description="slices or patches per volume per epoch")
    foreground_fraction: float = Field(0.5, ge=0, le=1, description="share of samples centred "
                                       "on a labelled voxel")
    overlap: float = Field(0.5, ge=0, lt=1, description="sliding-window overlap at validation "
                           "and prediction (3-D)")


class TrainConfig(Strict):
    name: str = "run"
    task: Task = "semantic"
    seed: int = 0
    out: str = "runs/run"
    data: DataConfig
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainLoopConfig = TrainLoopConfig()
    volume: VolumeConfig | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.model.name == "unet3d" and self.volume is None:
            self.volume = VolumeConfig()
        if self.volume is not None and self.model.name not in ("unet", "unet3d"):
            raise ValueError("volume training needs model unet (2.5-D) or unet3d")
        lo, hi = self.augment.scale
        if not 0 < lo <= hi:
            raise ValueError("augment.scale must be [min, max] with 0 < min <= max")
        info = MODELS[self.model.name]
        if self.loss.distance_weight and not info.distance_head:
            heads = " or ".join(n for n, m in MODELS.items() if m.distance_head)
            raise ValueError(f"loss.distance_weight needs model {heads} (a distance output channel)")
        if self.task != info.task:
            raise ValueError(f"task {self.task} needs model {' or '.join(model_names(self.task))}"
                             f", not {self.model.name}")
        return self


def parse_config(data: Any, source: str = "<config>") -> TrainConfig:
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"{source}: unknown field '{field}'; check the spelling "
                              "(see configs/ for examples)") from None
        if err["type"] == "missing":
            raise ConfigError(f"{source}: missing required field '{field}'") from None
        raise ConfigError(f"{source}: {field}: {err['msg']} (got {err.get('input')!r})") from None


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config file, or a shipped example config by name
    (``street_unet``; see :func:`segflow.resources.names`)."""
    from segflow import resources

    p = Path(path)
    if p.is_file():
        text = p.read_text(encoding="utf-8")
    elif not p.suffix and resources.find("configs", str(path)) is not None:
        text = resources.read_text("configs", str(path))
        p = Path(f"{p.name}.yaml")  # its data paths are relative to the working folder
    else:
        raise ConfigError(f"{p}: no such config file (shipped examples: "
                          f"{', '.join(resources.names('configs'))})")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of fields")
    cfg = parse_config(data, str(p))
    base = p.parent
    for attr in ("train", "val"):  # data paths are relative to the config file
        v = getattr(cfg.data, attr)
        if v and not Path(v).is_absolute() and not Path(v).exists() and (base / v).exists():
            setattr(cfg.data, attr, str(base / v))
    return cfg
