"""Per-task step objects for :class:`segflow.train.trainer.TrainLoop`: how one task builds its
batches, computes its loss and validates. The loop itself knows no task; a new task is a new
step object registered in :data:`STEPS`.

- :class:`SemanticStep` (this module): semantic masks, :class:`~segflow.train.losses.SegLoss`,
  mIoU / pixel accuracy / Dice on the held-out images;
- :class:`segflow.train.instance.InstanceStep`: Mask R-CNN targets, the model's own losses,
  COCO mask AP;
- :class:`segflow.volume.train.VolumeStep`: slices or patches drawn from volumes.
"""

from __future__ import annotations

import numpy as np
import torch

from segflow.errors import SegflowError
from segflow.metrics import SemanticEvaluator
from segflow.train.data import SegDataset, build_transform, epoch_order, pad_collate
from segflow.train.losses import SegLoss


class SemanticStep:
    """Semantic segmentation (U-Net, DeepLabV3+, FPN; a U-Net with a distance head)."""

    default_metric = "miou"
    instance = False
    validate_at_end = False

    def __init__(self, tr, train_idx: list[int], val_idx: list[int]):
        cfg, ig = tr.cfg, tr.schema.ignore_index
        dist = cfg.loss.distance_weight > 0
        self.train_set = SegDataset(tr.train_ds, train_idx,
                                    transform=build_transform(cfg.augment, cfg.train.crop),
                                    seed=cfg.seed, ignore_index=ig, distance=dist)
        self.val_set = SegDataset(tr.val_ds, val_idx, ignore_index=ig, distance=dist)
        self.num_classes = tr.schema.num_classes
        self.model_args = {"extra_outputs": 1} if dist else {}

    def prepare(self, tr) -> None:
        cfg = tr.cfg
        # channels_last: on CUDA and on the CPU alike (oneDNN convolutions run 20-40% faster).
        tr.channels_last = cfg.train.channels_last != "off"
        if tr.channels_last:
            tr.model = tr.model.to(memory_format=torch.channels_last)
        tr.loss_fn = self.loss_fn = SegLoss(
            cfg.loss.name, ignore_index=tr.schema.ignore_index,
            class_weights=cfg.loss.class_weights, focal_gamma=cfg.loss.focal_gamma,
            dice_weight=cfg.loss.dice_weight, distance_weight=cfg.loss.distance_weight,
            num_classes=self.num_classes).to(tr.device)

    def order(self, tr) -> list[int]:
        return epoch_order(len(self.train_set), tr.cfg.seed, tr.epoch)

    def batch(self, tr, order: list[int], b: int):
        bs = tr.cfg.train.batch_size
        idx = order[b * bs:(b + 1) * bs]
        self.train_set.epoch = tr.epoch
        imgs, masks = pad_collate([self.train_set[k] for k in idx], tr.schema.ignore_index)
        if isinstance(masks, tuple):
            return imgs.to(tr.device), tuple(m.to(tr.device) for m in masks)
        return imgs.to(tr.device), masks.to(tr.device)

    def loss(self, tr, imgs, masks) -> torch.Tensor:
        if tr.channels_last:
            imgs = imgs.contiguous(memory_format=torch.channels_last)
        with torch.autocast(tr.device.type, dtype=torch.bfloat16, enabled=tr.amp):
            logits = tr.net(imgs)
        return self.loss_fn(logits, masks)

    def validate(self, tr) -> dict:
        if not len(self.val_set):
            return {}
        tr.model.eval()
        ev = SemanticEvaluator(self.num_classes, ignore_index=tr.schema.ignore_index)
        losses = []
        for k in range(len(self.val_set)):
            img, mask, *dist = self.val_set[k]
            img, mask = img[None].to(tr.device), mask[None].to(tr.device)
            target = (mask, dist[0][None].to(tr.device)) if dist else mask
            with torch.autocast(tr.device.type, dtype=torch.bfloat16, enabled=tr.amp):
                logits = tr.model(img)
            losses.append(float(self.loss_fn(logits, target)))
            pred = logits[:, :self.num_classes].argmax(1)
            ev.update(mask[0].cpu().numpy(), pred[0].cpu().numpy())
        r = ev.compute()
        return {"val_loss": float(np.mean(losses)), "miou": r.miou,
                "pixel_accuracy": r.pixel_accuracy, "dice": r.mean_dice}

    def state(self) -> dict:
        return {}


def _instance_step():
    from segflow.train.instance import InstanceStep

    return InstanceStep


#: task name -> step object class (or a function returning it, to import lazily)
STEPS = {"semantic": SemanticStep, "instance": _instance_step}


def step_for(task: str):
    if task not in STEPS:
        raise SegflowError(f"no training step for task {task!r} (known: {', '.join(STEPS)})")
    s = STEPS[task]
    return s if isinstance(s, type) else s()
