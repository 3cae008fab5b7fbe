"""The planner: from a labelled dataset's fingerprint and a time budget to a training config,
with the reason for every choice (``segflow plan`` and ``segflow train DATA --minutes N``).

The rules are written out below, one function per task, starting from a preset named by
intent (:data:`PRESETS`): the settings the benchmarks found best on this project's 2-core CPU
(``cpu-fast``), a wider and larger-input middle (``balanced``), and the usual GPU settings
(``gpu-quality``). The data then decide what a preset leaves open: crop and network depth
from image and object sizes, class weights from class frequencies, Mask R-CNN anchors and
aspect ratios from the objects' boxes, proposal counts from the objects per image, vertical
flips from whether classes keep their place up or down, input normalisation from the
intensity statistics. The step count comes from the budget and a few timed steps
(:mod:`segflow.train.throughput`).

Plans are deterministic for the same data and budget: the fingerprint reads evenly spaced
images, the step count is rounded down to a coarse grid (about 10% apart), and the measured
seconds per step are cached per set-up and machine (``cache``), so a second plan reuses the
first measurement. The saved config has the step count written in: training from it
reproduces the run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segflow.errors import SegflowError
from segflow.train.fingerprint import Fingerprint, compute_fingerprint

TASKS = ("semantic", "instance", "panoptic")

#: preset -> starting point; the data adjust crop, depth, anchors and the rest
PRESETS: dict[str, dict] = {
    "cpu-fast": {"width": 16, "crop_cap": 192, "batch": 8, "mrcnn_batch": 4, "mrcnn_size_cap": 384,
                 "backbone": "resnet18_fpn", "fpn_channels": 128, "roi_batch": 64,
                 "max_val": 15, "why": "the settings the CPU benchmarks found fastest to a good "
                 "model (docs/benchmarks.md)"},
    "balanced": {"width": 24, "crop_cap": 256, "batch": 8, "mrcnn_batch": 4, "mrcnn_size_cap": 512,
                 "backbone": "resnet18_fpn", "fpn_channels": 192, "roi_batch": 128,
                 "max_val": 25, "why": "a wider network on larger crops: better with more time"},
    "gpu-quality": {"width": 32, "crop_cap": 512, "batch": 16, "mrcnn_batch": 8,
                    "mrcnn_size_cap": 800, "backbone": "resnet50_fpn", "fpn_channels": 256,
                    "roi_batch": 512, "max_val": 50, "why": "the usual GPU settings: full "
                    "width, large inputs and batches, torchvision's proposal counts"},
}

#: step counts are rounded down to these mantissas (x 10^k): about 10% apart
_GRID = (1.0, 1.1, 1.2, 1.3, 1.5, 1.6, 1.8, 2.0, 2.2, 2.4, 2.7, 3.0, 3.3, 3.6, 4.0, 4.5, 5.0, 5.5,
         6.0, 6.5, 7.0, 8.0, 9.0)


def round_steps(n: float) -> int:
    """Round a step count down to the grid (1, 1.1, 1.2, ... x 10^k); below 20 keep it."""
    if not math.isfinite(n) or n < 1:
        return 1
    if n < 20:
        return int(n)
    k = 10 ** math.floor(math.log10(n))
    m = max(g for g in _GRID if g * k <= n + 1e-9)
    return int(round(m * k))


@dataclass
class Plan:
    """A chosen config with its reasons. ``why`` maps dotted config paths to a reason."""

    data: str
    task: str
    preset: str
    device: str
    config: dict
    why: dict[str, str]
    fingerprint: Fingerprint
    notes: list[str] = field(default_factory=list)
    minutes: float | None = None
    seconds_per_step: float | None = None
    throughput_source: str | None = None

    @property
    def steps(self) -> int:
        return int(self.config["train"]["max_steps"])

    def validate(self):
        from segflow.train.config import parse_config

        return parse_config(self.config, f"plan for {self.data}")

    def to_yaml(self) -> str:
        return render_yaml(self)


# ---- data checks ----------------------------------------------------------------------------
def open_labelled(data: str | Path):
    """Open a dataset folder, turning the usual mistakes into one line each."""
    from segflow.formats import detect, open_dataset
    from segflow.io import list_images

    root = Path(data)
    if not root.exists():
        raise SegflowError(f"{root}: no such dataset folder")
    if not root.is_dir():
        raise SegflowError(f"{root}: give a dataset folder (images with labels), not a file")
    try:
        detect(root)
    except SegflowError:
        try:
            n = len(list_images([root]))
        except SegflowError:
            n = 0
        if n:
            raise SegflowError(f"{root}: {n} image(s) but no labels (no schema.json, COCO, VOC, "
                               "Cityscapes or YOLO annotations); label them first, e.g. in "
                               "segflow studio, and export a dataset") from None
        raise
    return open_dataset(root)


# ---- choices --------------------------------------------------------------------------------
def _round32(x: float, lo: int = 32) -> int:
    return max(lo, int(x) // 32 * 32)


def _data_notes(fp: Fingerprint) -> list[str]:
    notes = []
    if fp.mixed_sizes:
        notes.append(f"mixed image sizes ({fp.width[0]}x{fp.height[0]} to {fp.width[2]}x"
                     f"{fp.height[2]}): training crops are resized to one size and batches "
                     "padded; evaluation runs each image at its own size, padded to the "
                     "network's stride")
    if len(fp.channels) > 1 or fp.channels == [4] or fp.channels == [1]:
        what = {1: "grey", 3: "RGB", 4: "RGBA"}
        kinds = ", ".join(what.get(c, f"{c}-channel") for c in fp.channels)
        notes.append(f"images are {kinds}: grey is replicated to three channels and alpha "
                     "dropped, so every image enters the network as RGB")
    if len(fp.dtypes) > 1:
        notes.append(f"mixed pixel types ({', '.join(fp.dtypes)}): each is scaled to 0..1 by its "
                     "own range (uint8 / 255, uint16 / 65535)")
    if fp.n_images < 5:
        notes.append(f"only {fp.n_images} image(s): expect a model that fits these and little "
                     "else; label more for a model that generalises")
    missing = [c.name for c in fp.classes if c.pixel_fraction == 0 and c.n_objects == 0]
    if missing and fp.n_read:
        notes.append(f"classes never seen in the {fp.n_read} image(s) read: {', '.join(missing)} "
                     "(the model cannot learn them)")
    return notes


def _val_split(fp: Fingerprint, cap: int, why: dict) -> float:
    n = fp.n_images
    if n < 3:
        why["data.val_fraction"] = f"{n} image(s): too few to hold any out; no validation"
        return 0.0
    n_val = int(min(cap, max(1, round(0.05 * n))))
    why["data.val_fraction"] = (f"{n_val} of {n} images held out for validation (5%, at most "
                                f"{cap}: each validation costs training time)")
    return round(n_val / n, 6)


def class_weights(fp: Fingerprint, num_ids: int) -> tuple[list[float] | None, str]:
    """Damped median-frequency balancing: w_c = (median f / f_c)^0.25, clipped to [0.5, 2]
    and scaled to mean 1 over the seen classes; ids that are no class get 0. None when the
    classes are balanced within 10x. Returns (weights, reason)."""
    seen = {c.id: c.pixel_fraction for c in fp.classes if c.pixel_fraction > 0}
    if len(seen) < 2:
        return None, "one class seen: nothing to balance"
    f = np.array(list(seen.values()))
    ratio = f.max() / f.min()
    if ratio <= 10:
        return None, f"class pixel frequencies within {ratio:.1f}x of each other: no weights"
    med = float(np.median(f))
    w = {c: float(np.clip((med / v) ** 0.25, 0.5, 2.0)) for c, v in seen.items()}
    mean = float(np.mean(list(w.values())))
    schema_ids = {c.id for c in fp.classes}
    out = []
    for i in range(num_ids):
        if i in w:
            out.append(round(w[i] / mean, 3))
        elif i in schema_ids:  # a class not seen in the images read: treat it as rare
            out.append(round(2.0 / mean, 3))
        else:
            out.append(0.0)
    rare = min(seen, key=seen.get)
    name = next(c.name for c in fp.classes if c.id == rare)
    return out, (f"classes differ {ratio:.0f}x in pixel frequency (rarest: {name}, "
                 f"{seen[rare]:.2%}): median-frequency weights, damped (4th root) and clipped "
                 "to 0.5..2, so rare classes count more without swamping the loss")


def _vertical_layout(fp: Fingerprint) -> float:
    """Spread of the classes' mean vertical positions (0: no class keeps a place up or down)."""
    rows = [c.row_center for c in fp.classes if c.row_center is not None and c.pixel_fraction > 0.001]
    return float(max(rows) - min(rows)) if len(rows) > 1 else 0.0


def _augment(fp: Fingerprint, why: dict) -> dict:
    spread = _vertical_layout(fp)
    vflip = spread < 0.15
    why["augment.hflip"] = "left and right are alike in almost every domain"
    why["augment.vflip"] = (f"classes keep no place up or down (spread of their mean heights "
                            f"{spread:.2f} < 0.15): upside-down views are as likely" if vflip else
                            f"classes keep their place up or down (mean heights spread "
                            f"{spread:.2f}): no vertical flips")
    why["augment.scale"] = "objects seen 20% nearer or farther: cheap robustness to scale"
    jit = 0.1 if fp.grey else 0.2
    why["augment.color_jitter"] = ("grey images: brightness and contrast only, mildly" if fp.grey
                                   else "brightness, contrast, saturation and hue vary a little "
                                   "between photos")
    return {"hflip": True, "vflip": vflip, "scale": [0.8, 1.25], "color_jitter": jit}


def _semantic(fp: Fingerprint, p: dict, preset: str, num_ids: int, why: dict,
              distance: bool) -> dict:
    short = min(fp.height[1], fp.width[1])
    obj = fp.object_sizes()
    crop = min(p["crop_cap"], _round32(0.75 * short))
    why_crop = f"3/4 of the median short side ({short} px), at most {p['crop_cap']} ({preset})"
    if obj and crop < 2 * obj[1] and 2 * obj[1] <= short:
        crop = min(_round32(short), _round32(2 * obj[1] + 31))
        why_crop += f"; raised to hold twice the largest objects ({obj[1]:.0f} px)"
    depth = int(np.clip(math.floor(math.log2(crop / 12)), 3, 5))
    width = p["width"]
    batch = int(min(p["batch"], max(1, fp.n_images)))
    lr = round(3e-3 * math.sqrt(batch / 8), 6)
    weights, why_w = class_weights(fp, num_ids)
    why.update({
        "model.name": "U-Net: the best semantic model per CPU second here (0.879 mIoU vs smp's "
                      "0.787 on the same steps, docs/benchmarks.md)",
        "model.args.depth": f"{crop} px crops / 2^{depth} = {crop // 2**depth} px at the bottom: "
                            "enough context, still above 8 px",
        "model.args.base_width": f"{width} channels at full resolution ({preset})",
        "model.args.block": "residual encoder blocks: +0.07 mIoU for the same steps (benchmarks)",
        "model.args.full_res_convs": "one convolution at full resolution: those blocks cost as "
                                     "much as the rest of the network on a CPU",
        "model.args.norm": (f"batch norm (batches of {batch})" if batch >= 4 else
                            f"group norm: batches of {batch} are too small for batch statistics"),
        "train.crop": why_crop,
        "train.batch_size": f"{batch} crops per step ({preset})" + (
            f", limited by the {fp.n_images} image(s)" if batch < p["batch"] else ""),
        "optim.lr": "AdamW 3e-3 at batch 8 (the benchmarks' setting), scaled by sqrt(batch/8)",
        "loss.name": "cross-entropy for calibrated pixels + Dice for small and thin classes",
        "loss.class_weights": why_w,
        "normalisation": "inputs scaled to 0..1 (uint8 / 255, uint16 / 65535); the batch norm "
                         "after the first convolution standardises them, so no fixed mean/std "
                         f"(dataset mean {fp.mean}, std {fp.std})",
    })
    cfg = {
        "model": {"name": "unet", "args": {
            "depth": depth, "base_width": width, "norm": "batch" if batch >= 4 else "group",
            "upsampling": "bilinear", "block": "residual", "full_res_convs": 1}},
        "loss": {"name": "ce+dice"},
        "optim": {"name": "adamw", "lr": lr, "weight_decay": 1e-4},
        "schedule": {"name": "poly", "warmup_steps": 50},
        "augment": _augment(fp, why),
        "train": {"batch_size": batch, "crop": crop},
    }
    if weights is not None:
        cfg["loss"]["class_weights"] = weights
    if distance:
        cfg["loss"]["distance_weight"] = 1.0
        why["loss.distance_weight"] = (
            "panoptic: a distance head whose peaks split touching objects of the thing classes "
            "(one network, so the whole budget trains it; a second Mask R-CNN would halve "
            "both); stuff and things come from one forward pass")
    return cfg


def anchors_for(sizes: tuple[float, float], scale: float, levels: int = 5) -> list[int]:
    """Anchor sizes doubling per FPN level, the smallest a power of two near the 2nd
    percentile of the object sizes (``scale`` = the resize the model applies), shifted up
    when the range would not reach the 98th percentile."""
    lo, hi = sizes[0] * scale, sizes[1] * scale
    a0 = 2 ** max(2, math.floor(math.log2(max(lo, 1.0) * 1.41)))
    while a0 * 2 ** (levels - 1) * 1.41 < hi:
        a0 *= 2
    return [int(a0 * 2**k) for k in range(levels)]


def aspect_ratios_for(fp: Fingerprint) -> list[float]:
    lo = [c.aspect_p5 for c in fp.things if c.aspect_p5 is not None]
    hi = [c.aspect_p95 for c in fp.things if c.aspect_p95 is not None]
    if not lo:
        return [0.5, 1.0, 2.0]
    a, b = min(lo) / 1.5, max(hi) * 1.5
    out = [r for r in (0.25, 0.5, 1.0, 2.0, 4.0) if a <= r <= b or r == 1.0]
    return out


def _instance(fp: Fingerprint, p: dict, preset: str, why: dict) -> dict:
    if not fp.things:
        raise SegflowError("the label schema has no thing classes: instance segmentation needs "
                           "objects (mark classes as things, or plan --task semantic)")
    short, long_ = min(fp.height[1], fp.width[1]), max(fp.height[1], fp.width[1])
    min_size = int(min(short, p["mrcnn_size_cap"]))
    max_size = int(max(min_size, min(long_, round(p["mrcnn_size_cap"] * 5 / 3))))
    scale = min_size / short
    sizes = fp.object_sizes()
    anchors = anchors_for(sizes, scale) if sizes else [8, 16, 32, 64, 128]
    ratios = aspect_ratios_for(fp)
    if p["backbone"] == "mobilenet_v3_fpn":
        anchors = anchors[:3]
    k = max(1, fp.objects_per_image_max)
    cpu = preset != "gpu-quality"
    post_train = int(np.clip(20 * k, 300, 2000)) if cpu else 2000
    post_test = int(np.clip(20 * k, 300, 1000)) if cpu else 1000
    batch = int(min(p["mrcnn_batch"], max(1, fp.n_images)))
    lr = round(4e-4 * math.sqrt(batch / 4), 6)
    args = {"backbone": p["backbone"], "min_size": min_size, "max_size": max_size,
            "anchor_sizes": anchors, "aspect_ratios": ratios,
            "fpn_channels": p["fpn_channels"], "box_batch_size_per_image": p["roi_batch"],
            "rpn_pre_nms_top_n_train": 2 * post_train, "rpn_post_nms_top_n_train": post_train,
            "rpn_pre_nms_top_n_test": post_test + post_test // 2,
            "rpn_post_nms_top_n_test": post_test,
            "box_detections_per_img": int(max(100, 2 * k)),
            "image_mean": [round(v, 4) for v in fp.mean],
            "image_std": [round(max(v, 1e-3), 4) for v in fp.std]}
    size_txt = (f"{sizes[0]:.0f}..{sizes[1]:.0f} px (5th..95th percentiles over thing classes, "
                f"from {fp.objects_from})" if sizes else "unknown (no objects read): defaults")
    why.update({
        "model.name": "Mask R-CNN: one mask per object, the task asks for instances",
        "model.args.backbone": f"{p['backbone']} from random initialisation ({preset}); "
                               "nothing is downloaded",
        "model.args.min_size": f"images resized to a {min_size} px short side (median "
                               f"{short} px, at most {p['mrcnn_size_cap']} for {preset})",
        "model.args.anchor_sizes": f"object sizes {size_txt}, x{scale:.2f} for the resize: "
                                   "anchors double per FPN level from a power of two near the "
                                   "smallest",
        "model.args.aspect_ratios": "box height/width of the objects (5th..95th percentiles, "
                                    "1.5x margin) picks these from 0.25..4",
        "model.args.fpn_channels": f"FPN width {p['fpn_channels']} ({preset}; 128 makes CPU "
                                   "steps 2-4x faster than 256)",
        "model.args.box_batch_size_per_image": f"{p['roi_batch']} sampled RoIs per image "
                                               f"({preset})",
        "model.args.rpn_post_nms_top_n_train": f"at most {k} objects per image: {post_train} "
                                               "proposals (20 per object, 300..2000)"
                                               if cpu else "torchvision's default",
        "model.args.box_detections_per_img": f"at least twice the most objects in an image ({k})",
        "model.args.image_mean": "normalised by this dataset's own mean and std (from scratch, "
                                 "so ImageNet's statistics would be arbitrary)",
        "train.batch_size": f"{batch} images per step ({preset})",
        "optim.lr": "AdamW 4e-4 at batch 4 (the retail benchmark), scaled by sqrt(batch/4)",
        "train.clip_grad_norm": "clipped at 5: early RPN losses spike when training from scratch",
        "augment.hflip": "left-right flips (the only augmentation the instance loader applies)",
    })
    return {
        "model": {"name": "maskrcnn", "args": args},
        "optim": {"name": "adamw", "lr": lr, "weight_decay": 1e-4},
        "schedule": {"name": "cosine", "warmup_steps": 100},
        "augment": {"hflip": True},
        "train": {"batch_size": batch, "clip_grad_norm": 5.0},
    }


# ---- budget ---------------------------------------------------------------------------------
def _cache_key(cfg: dict, device: str) -> str:
    import torch

    probe = {k: cfg.get(k) for k in ("task", "model", "loss")} | {
        "crop": cfg["train"].get("crop"), "batch": cfg["train"]["batch_size"], "device": device,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "host": platform.node(), "machine": platform.machine(), "cpus": os.cpu_count()}
    return hashlib.sha256(json.dumps(probe, sort_keys=True, default=str).encode()).hexdigest()[:20]


def measure_seconds_per_step(cfg: dict, device: str, *, cache: Path | None = None,
                             remeasure: bool = False) -> tuple[float, str]:
    """Seconds per training step of ``cfg`` here: from the cache when this set-up was
    measured on this machine before, else a few timed steps. Returns (seconds, source)."""
    from segflow.train.config import parse_config
    from segflow.train.throughput import seconds_per_step

    key = _cache_key(cfg, device)
    table: dict = {}
    if cache is not None and cache.is_file():
        try:
            table = json.loads(cache.read_text())
        except (OSError, ValueError):
            table = {}
    if not remeasure and isinstance(table.get(key), (int, float)) and table[key] > 0:
        return float(table[key]), f"cached measurement ({cache})"
    probe = json.loads(json.dumps(cfg))
    probe["train"]["max_steps"] = 10
    probe["data"]["val_fraction"] = 0.0
    steps, warmup = (5, 2) if device == "cpu" else (10, 3)
    s = seconds_per_step(parse_config(probe, "plan probe"), device=device, steps=steps,
                         warmup=warmup)
    if cache is not None:
        table[key] = round(s, 4)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
            tmp.write_text(json.dumps(table, indent=1))
            os.replace(tmp, cache)
        except OSError:
            pass  # a read-only home: the plan is still right, only not cached
    return s, f"median of {steps} timed steps after {warmup} warm-up steps"


def steps_for_budget(seconds: float, s_per_step: float, *, n_train: int, n_val: int, batch: int,
                     eval_s_per_image: float) -> int:
    """Steps that fit ``seconds`` with the validation after every epoch paid for."""
    per_step = s_per_step + (batch / max(1, n_train)) * n_val * eval_s_per_image
    return round_steps(max(0.0, seconds) / per_step)


# ---- the plan -------------------------------------------------------------------------------
def default_cache() -> Path:
    return Path.home() / ".cache" / "segflow" / "throughput.json"


def make_plan(data: str | Path, *, task: str | None = None, minutes: float | None = 10.0,
              steps: int | None = None, device: str = "cpu", preset: str | None = None,
              out: str | Path | None = None, seed: int = 0, val: str | Path | None = None,
              cache: Path | None = None, remeasure: bool = False, max_images: int = 200,
              measure: bool = True) -> Plan:
    """Fingerprint ``data`` and choose a config for ``task`` that trains in ``minutes``.

    ``steps`` fixes the step count (no timing). The budget covers planning and start-up too,
    estimated by a fixed rule (see below) so that the plan stays deterministic."""
    if task is not None and task not in TASKS:
        raise SegflowError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    if device not in ("cpu", "cuda"):
        raise SegflowError(f"--device must be cpu or cuda, got {device!r}")
    preset = preset or ("gpu-quality" if device == "cuda" else "cpu-fast")
    if preset not in PRESETS:
        raise SegflowError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if minutes is not None and not (math.isfinite(minutes) and 0 < minutes <= 7 * 24 * 60):
        raise SegflowError(f"--minutes must be a positive number of minutes up to a week, got "
                           f"{minutes}")
    if steps is not None and not 1 <= steps <= 10_000_000:
        raise SegflowError(f"--steps must be 1..10000000, got {steps}")
    ds = open_labelled(data)
    fp = compute_fingerprint(ds, max_images=max_images)
    if fp.kind == "semantic" and task in ("instance", "panoptic") and fp.objects_from != "instances":
        raise SegflowError(f"{data}: --task {task} needs object labels (panoptic or instances); "
                           "this dataset has semantic masks only")
    if fp.kind == "instances" and task in ("semantic", "panoptic"):
        raise SegflowError(f"{data}: --task {task} needs semantic labels for every pixel; this "
                           "dataset has object instances only (use --task instance)")
    why: dict[str, str] = {}
    if task is None:
        task = "instance" if fp.kind == "instances" else "semantic"
        why["task"] = (f"the labels are {fp.kind}: {task} (pass --task to choose)")
    else:
        why["task"] = "as asked"
    p = PRESETS[preset]
    num_ids = max([c.id for c in fp.classes] + [0]) + 1
    name = Path(data).resolve().name or "data"
    cfg: dict = {"name": f"{name}-{task}", "task": "instance" if task == "instance" else "semantic",
                 "seed": seed, "out": str(out or Path("runs") / f"{name}-{task}"),
                 "data": {"train": os.path.abspath(data)}}
    why["preset"] = f"{preset}: {p['why']}"
    if val is not None:
        cfg["data"]["val"] = os.path.abspath(val)
        why["data.val"] = "validation on the held-out folder given"
        n_val = len(open_labelled(val))
    else:
        cap = 8 if task == "instance" else p["max_val"]
        cfg["data"]["val_fraction"] = _val_split(fp, cap, why)
        n_val = int(round(cfg["data"]["val_fraction"] * fp.n_images)) if fp.n_images >= 3 else 0
        n_val = max(n_val, 1) if cfg["data"]["val_fraction"] else 0
    if task == "instance":
        body = _instance(fp, p, preset, why)
    else:
        body = _semantic(fp, p, preset, num_ids, why, distance=task == "panoptic")
    for k, v in body.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    cfg["train"].update(epochs=1_000_000, checkpoint_every=1_000_000, log_every=10)
    why["train.epochs"] = "not a limit: train.max_steps (from the budget) ends the run"
    why["train.checkpoint_every"] = "last.pt is saved after every epoch and at the end anyway"
    if device == "cuda":
        cfg["train"]["amp"] = "on"
        why["train.amp"] = "bfloat16 autocast on the GPU: about twice the images per second"
    n_train = fp.n_images - (0 if val is not None else n_val)
    plan = Plan(data=str(data), task=task, preset=preset, device=device, config=cfg, why=why,
                fingerprint=fp, notes=_data_notes(fp), minutes=minutes)
    batch = cfg["train"]["batch_size"]
    if steps is not None:
        cfg["train"]["max_steps"] = int(steps)
        why["train.max_steps"] = "as asked (--steps)"
    elif minutes is None or not measure:
        n = round_steps(20 * math.ceil(max(1, n_train) / batch))
        cfg["train"]["max_steps"] = n
        why["train.max_steps"] = "no time budget: about 20 epochs"
    else:
        sps, source = measure_seconds_per_step(cfg, device, cache=cache, remeasure=remeasure)
        plan.seconds_per_step, plan.throughput_source = sps, source
        # validation: one forward pass per held-out image, about a third of a training image's
        # cost at the crop size, scaled to the full image (Mask R-CNN: plus COCO evaluation)
        area = fp.height[1] * fp.width[1]
        if task == "instance":
            eval_s = 0.6 * sps / batch + 0.05
        else:
            eval_s = 0.35 * sps / batch * area / cfg["train"]["crop"] ** 2
        # planning and start-up are paid from the budget by a fixed rule (never by the time
        # they took, which would make the plan depend on the machine's mood): reading the
        # images, ~0.05 s each; the timed steps and the trainer's start, ~9 steps; the last
        # checkpoint and curves, ~10 s
        overhead = 0.05 * fp.n_read + 9 * sps + 10
        budget = minutes * 60 - overhead
        n = steps_for_budget(budget, sps, n_train=max(1, n_train), n_val=n_val, batch=batch,
                             eval_s_per_image=eval_s)
        cfg["train"]["max_steps"] = n
        why["train.max_steps"] = (
            f"{minutes:g} min budget, {overhead:.0f} s of it for planning and start-up; "
            f"{sps:.3f} s per step "
            f"({source}); validation after each epoch paid for; rounded down to a 10% grid "
            "so the same data and budget give the same plan")
    warm = cfg["schedule"]["warmup_steps"]
    cfg["schedule"]["warmup_steps"] = int(min(warm, max(0, cfg["train"]["max_steps"] // 5)))
    why["schedule.name"] = ("poly decay to 0 over the run after a linear warm-up"
                            if cfg["schedule"]["name"] == "poly" else
                            "cosine decay over the run after a linear warm-up")
    why["schedule.warmup_steps"] = f"{warm} steps (at most a fifth of the run)"
    plan.validate()
    return plan


# ---- YAML with reasons ----------------------------------------------------------------------
def _scalar(v) -> str:
    import yaml

    s = yaml.safe_dump(v, default_flow_style=True, width=10_000).strip()
    return s[:-4].strip() if s.endswith("\n...") else s.removesuffix("...").strip()


def _emit(d: dict, why: dict, prefix: str, indent: int, lines: list[str]) -> None:
    for k, v in d.items():
        path = f"{prefix}{k}"
        pad = "  " * indent
        if isinstance(v, dict) and v:
            c = why.get(path)
            lines.append(f"{pad}{k}:" + (f"  # {c}" if c else ""))
            _emit(v, why, path + ".", indent + 1, lines)
            continue
        line = f"{pad}{k}: {_scalar(v)}"
        c = why.get(path)
        lines.append(f"{line}  # {c}" if c else line)


def render_yaml(plan: Plan) -> str:
    fp = plan.fingerprint
    lines = [f"# segflow plan for {plan.data}: task {plan.task}, preset {plan.preset}, "
             f"device {plan.device}" + (f", {plan.minutes:g} min" if plan.minutes else ""),
             f"# preset: {plan.why['preset']}",
             f"# fingerprint: {fp.n_images} images ({fp.n_read} read), {fp.kind} labels; "
             f"size {fp.width[1]}x{fp.height[1]} (W x H, median; {fp.width[0]}..{fp.width[2]} x "
             f"{fp.height[0]}..{fp.height[2]}); channels {fp.channels}, {'/'.join(fp.dtypes)}"
             f"{', grey' if fp.grey else ''}; mean {fp.mean}, std {fp.std}",
             "# classes (pixel share; things: objects, size p5/p50/p95 px):"]
    for c in fp.classes:
        obj = (f", {c.n_objects} objects, {c.size_p5:.0f}/{c.size_p50:.0f}/{c.size_p95:.0f} px"
               if c.n_objects else "")
        lines.append(f"#   {c.id} {c.name}: {'thing' if c.isthing else 'stuff'}, "
                     f"{c.pixel_fraction:.2%}{obj}")
    for n in plan.notes:
        lines.append(f"# note: {n}")
    if "normalisation" in plan.why:
        lines.append(f"# normalisation: {plan.why['normalisation']}")
    if plan.task == "panoptic":
        lines.append("# panoptic: a semantic U-Net with a distance head; predict objects with "
                     "segflow predict (Predictor.instances) or score PQ with segflow train DATA")
    lines.append(f"# reproduce: segflow train THIS_FILE (steps fixed below: {plan.steps})")
    _emit(plan.config, plan.why, "", 0, lines)
    return "\n".join(lines) + "\n"
