"""Training on volumes from the same config file as images: a 2.5-D U-Net (model ``unet``
with a ``volume:`` section) or a 3-D U-Net (model ``unet3d``).

The data is a folder with ``images/NAME.nii.gz``, ``labels/NAME.nii.gz`` (same grid) and
``schema.json``, as ``segflow data synth medical3d`` writes; the volumes are held in memory.
Each step draws its samples from ``default_rng([seed, step])`` (:class:`VolumeStep`, the
task's step object in the image trainer's loop): slices (2.5-D, with neighbours
as channels) or patches (3-D), a ``foreground_fraction`` of them centred on a labelled voxel,
with random flips in-plane. Validation predicts whole held-out volumes (sliding window in
3-D) and scores them with :class:`segflow.metrics.SemanticEvaluator`. Checkpoints have the
image trainer's layout plus a ``volume`` entry, so ``segflow models show`` reads them and
``segflow predict`` knows to predict volumes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from segflow.errors import SegflowError
from segflow.metrics import SemanticEvaluator
from segflow.train.config import TrainConfig
from segflow.train.data import fingerprint
from segflow.train.hooks import Hooks
from segflow.train.losses import SegLoss
from segflow.train.trainer import TrainLoop, pick_device
from segflow.volume.io import check_aligned, list_volumes, read_volume, volume_stem
from segflow.volume.predict import normalize, slab, sliding_window_3d


def load_volume_set(root: str | Path, window) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], object]:
    """``([(name, normalised image, labels int64)], schema)`` from ``root``."""
    from segflow.formats.folders import read_schema

    root = Path(root)
    if not (root / "images").is_dir() or not (root / "labels").is_dir():
        raise SegflowError(f"{root}: a volume set needs images/ and labels/ folders of NIfTI "
                           "files (see segflow data synth medical3d)")
    schema = read_schema(root)
    labels = {volume_stem(p): p for p in list_volumes([root / "labels"])}
    out = []
    for p in list_volumes([root / "images"]):
        name = volume_stem(p)
        if name not in labels:
            raise SegflowError(f"{p}: no labels/{name}.nii.gz beside it")
        img, lab = read_volume(p), read_volume(labels[name])
        check_aligned(lab, img)
        ids = np.asarray(lab.array).astype(np.int64)
        if ids.size and (ids.min() < 0 or (ids.max() >= schema.num_classes and
                                           ids.max() != schema.ignore_index)):
            raise SegflowError(f"{labels[name]}: class id {ids.max()} is outside the schema")
        out.append((name, normalize(img.array, window), ids))
    if not out:
        raise SegflowError(f"{root}/images: no NIfTI volumes")
    return out, schema


class VolumeStep:
    """The step object for volumes: each micro-batch is drawn from ``default_rng([seed, n])``
    (``n`` counts micro-batches over the run), slices with neighbours (2.5-D) or patches (3-D);
    validation predicts whole held-out volumes."""

    default_metric = "dice"
    instance = False
    validate_at_end = True  # a step budget that ends mid-epoch still gets its score

    def __init__(self, tr):
        self.tr = tr

    def prepare(self, tr) -> None:
        cfg = tr.cfg
        tr.channels_last = False
        tr.loss_fn = self.loss_fn = SegLoss(
            cfg.loss.name, ignore_index=tr.ignore, class_weights=cfg.loss.class_weights,
            focal_gamma=cfg.loss.focal_gamma, dice_weight=cfg.loss.dice_weight,
            num_classes=tr.num_classes).to(tr.device)

    def order(self, tr):
        return None

    def _centre(self, rng, lab: np.ndarray) -> tuple[int, int, int]:
        tr = self.tr
        if rng.random() < tr.vc.foreground_fraction:
            fg = np.flatnonzero((lab > 0) & (lab != tr.ignore))
            if fg.size:
                return tuple(int(v) for v in np.unravel_index(fg[rng.integers(fg.size)], lab.shape))
        return tuple(int(rng.integers(n)) for n in lab.shape)

    def _sample(self, rng) -> tuple[np.ndarray, np.ndarray]:
        tr = self.tr
        _, img, lab = tr.train_vols[int(rng.integers(len(tr.train_vols)))]
        c = self._centre(rng, lab)
        if tr.is3d:
            x, y = _crop(img, lab, c, tr.vc.patch, tr.ignore)
            x = x[None]
        else:
            x, y = slab(img, c[2], tr.vc.context), lab[:, :, c[2]]
        for ax in (0, 1):  # in-plane flips (x has a channel axis first)
            if rng.random() < 0.5:
                x, y = np.flip(x, ax + 1), np.flip(y, ax)
        return np.ascontiguousarray(x), np.ascontiguousarray(y)

    def batch(self, tr, order, b: int):
        accum = tr.cfg.train.grad_accum
        rng = np.random.default_rng([tr.cfg.seed, tr.step * accum + b % accum])
        xs, ys = zip(*(self._sample(rng) for _ in range(tr.cfg.train.batch_size)))
        if not tr.is3d:  # slices of different volumes may differ in size: pad to the largest
            h = max(x.shape[1] for x in xs)
            w = max(x.shape[2] for x in xs)
            xs = [np.pad(x, ((0, 0), (0, h - x.shape[1]), (0, w - x.shape[2]))) for x in xs]
            ys = [np.pad(y, ((0, h - y.shape[0]), (0, w - y.shape[1])), constant_values=tr.ignore)
                  for y in ys]
        return (torch.from_numpy(np.stack(xs)).to(tr.device),
                torch.from_numpy(np.stack(ys)).to(tr.device))

    def loss(self, tr, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = tr.net(x)
        if logits.ndim == 5:  # the 2-D losses, on (B, C, I, J*K): the same sums over voxels
            logits = logits.flatten(3)
            y = y.flatten(2)
        return self.loss_fn(logits, y)

    def validate(self, tr) -> dict:
        if not tr.val_vols:
            return {}
        ev = SemanticEvaluator(tr.num_classes, ignore_index=tr.ignore)
        for _, img, lab in tr.val_vols:
            ev.update(lab, tr.predict_normalised(img))
        r = ev.compute()
        fg = r.dice[1:]
        names = tr.schema.names_by_id()
        return {"miou": r.miou, "dice": float(np.nanmean(fg)) if np.isfinite(fg).any() else None,
                **{f"dice_{names[c] if c < len(names) and names[c] else c}":
                   None if not np.isfinite(r.dice[c]) else float(r.dice[c])
                   for c in range(tr.num_classes)}}

    def state(self) -> dict:
        tr = self.tr
        return {"task": "semantic",
                "volume": {**tr.vc.model_dump(), "mode": "3d" if tr.is3d else "2.5d"}}


class VolumeTrainer(TrainLoop):
    """The image trainer's loop (:class:`segflow.train.trainer.TrainLoop`: hooks, checkpoints,
    exact resume, early stopping) with :class:`VolumeStep` for the task."""

    def __init__(self, cfg: TrainConfig, *, device: str = "auto", progress: bool = True,
                 hooks: Iterable[Hooks] = ()):
        if cfg.volume is None:
            raise SegflowError("volume training needs a volume: section or model unet3d")
        self.cfg, self.vc = cfg, cfg.volume
        self.device = pick_device(device)
        self.out = Path(cfg.out)
        self.is3d = cfg.model.name == "unet3d"
        win = self.vc.window
        data, self.schema = load_volume_set(cfg.data.train, win)
        if cfg.data.val:
            self.train_vols, self.val_vols = data, load_volume_set(cfg.data.val, win)[0]
        else:
            perm = np.random.default_rng([cfg.seed, 999]).permutation(len(data))
            n_val = max(1, int(round(len(data) * cfg.data.val_fraction))) if cfg.data.val_fraction else 0
            if n_val >= len(data):
                raise SegflowError(f"{cfg.data.train}: {len(data)} volumes leave none for "
                                   f"training after a {cfg.data.val_fraction} validation split")
            self.val_vols = [data[i] for i in sorted(perm[:n_val])]
            self.train_vols = [data[i] for i in sorted(perm[n_val:])]
        self.ignore = self.schema.ignore_index
        self.num_classes = self.schema.num_classes
        in_ch = 1 if self.is3d else 2 * self.vc.context + 1
        self.model_args = {"num_classes": self.num_classes, "in_channels": in_ch, **cfg.model.args}
        bs = cfg.train.batch_size
        self.steps_per_epoch = max(1, math.ceil(len(self.train_vols) * self.vc.samples_per_volume / bs))
        self.batches_per_epoch = self.steps_per_epoch * cfg.train.grad_accum
        self.total_steps = cfg.train.max_steps or cfg.train.epochs * self.steps_per_epoch
        self.data_fp = fingerprint(SimpleNamespace(root=Path(cfg.data.train)))
        self.task_step = VolumeStep(self)
        self._start(hooks, progress)

    @torch.no_grad()
    def predict_normalised(self, vol: np.ndarray) -> np.ndarray:
        """Class ids for a normalised volume with the model as it is now."""
        self.model.eval()

        def fwd(x):
            return self.model(x.to(self.device)).float()[:, :self.num_classes].softmax(1)

        if self.is3d:
            p = sliding_window_3d(fwd, vol[None], self.num_classes, self.vc.patch,
                                  overlap=self.vc.overlap)
            return p.argmax(0)
        out = np.zeros(vol.shape, np.int64)
        for k0 in range(0, vol.shape[2], 8):
            ks = list(range(k0, min(k0 + 8, vol.shape[2])))
            x = torch.from_numpy(np.stack([slab(vol, k, self.vc.context) for k in ks]))
            out[:, :, ks] = np.moveaxis(fwd(x).argmax(1).cpu().numpy(), 0, -1)
        return out

    def _check_resume(self, ck: dict, path: str | Path) -> None:
        if ck["model"]["name"] != self.cfg.model.name or not ck.get("volume"):
            raise SegflowError(f"{path}: was trained as {ck['model']['name']}, the config says "
                               f"{self.cfg.model.name} on volumes")


def _crop(img: np.ndarray, lab: np.ndarray, centre, patch, ignore: int):
    """A ``patch``-sized crop around ``centre``, padded (image: edge, labels: ignore) where the
    volume is smaller than the patch."""
    sl, pads = [], []
    for c, p, n in zip(centre, patch, img.shape):
        s = int(np.clip(c - p // 2, 0, max(0, n - p)))
        sl.append(slice(s, s + p))
        pads.append((0, max(0, p - n)))
    x, y = img[tuple(sl)], lab[tuple(sl)]
    if any(b for _, b in pads):
        x = np.pad(x, pads, mode="edge")
        y = np.pad(y, pads, constant_values=ignore)
    return x, y
