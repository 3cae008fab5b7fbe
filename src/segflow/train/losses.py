"""Segmentation losses: cross-entropy, Dice, focal and sums of them, with class weights and
the ignore label."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int,
              weights: torch.Tensor | None = None, eps: float = 1.0) -> torch.Tensor:
    """Soft multi-class Dice (1 - mean Dice over classes), ignore pixels left out."""
    n = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)
    prob = logits.softmax(1) * valid
    onehot = F.one_hot(torch.where(valid[:, 0], target, 0), n).permute(0, 3, 1, 2) * valid
    inter = (prob * onehot).sum((0, 2, 3))
    denom = prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    dice = (2 * inter + eps) / (denom + eps)
    if weights is not None:
        return 1 - (dice * weights).sum() / weights.sum()
    return 1 - dice.mean()


def focal_loss(logits, target, ignore_index, weights=None, gamma: float = 2.0):
    ce = F.cross_entropy(logits, target, weight=weights, ignore_index=ignore_index,
                         reduction="none")
    pt = torch.exp(-F.cross_entropy(logits, target, ignore_index=ignore_index,
                                    reduction="none"))
    valid = target != ignore_index
    return ((1 - pt) ** gamma * ce)[valid].mean() if valid.any() else logits.sum() * 0


class SegLoss(torch.nn.Module):
    """``name`` parts summed (``ce``, ``dice``, ``focal``). With ``distance_weight`` > 0 the
    logits carry one more channel after the ``num_classes`` class logits, trained with an L1
    loss of its sigmoid against a distance target (``target`` is then ``(mask, distance)``,
    distance -1 where not scored)."""

    def __init__(self, name: str, *, ignore_index: int = 255, class_weights=None,
                 focal_gamma: float = 2.0, dice_weight: float = 1.0, distance_weight: float = 0.0,
                 num_classes: int | None = None):
        super().__init__()
        self.distance_weight, self.num_classes = distance_weight, num_classes
        self.parts = name.split("+")
        self.ignore_index = ignore_index
        self.register_buffer("w", None if class_weights is None
                             else torch.tensor(class_weights, dtype=torch.float32))
        self.gamma = focal_gamma
        self.dice_weight = dice_weight

    def forward(self, logits: torch.Tensor, target) -> torch.Tensor:
        logits = logits.float()
        total = logits.new_zeros(())
        if isinstance(target, (tuple, list)):
            target, dist = target
            pred = logits[:, self.num_classes:self.num_classes + 1].sigmoid()[:, 0]
            logits = logits[:, :self.num_classes]
            valid = (dist >= 0) & (target != self.ignore_index)
            if valid.any():
                total = total + self.distance_weight * (pred - dist).abs()[valid].mean()
        elif self.num_classes is not None:
            logits = logits[:, :self.num_classes]
        for p in self.parts:
            if p == "ce":
                if (target != self.ignore_index).any():
                    total = total + F.cross_entropy(logits, target, weight=self.w,
                                                    ignore_index=self.ignore_index)
            elif p == "focal":
                total = total + focal_loss(logits, target, self.ignore_index, self.w, self.gamma)
            elif p == "dice":
                total = total + self.dice_weight * dice_loss(logits, target, self.ignore_index,
                                                             self.w)
        return total
