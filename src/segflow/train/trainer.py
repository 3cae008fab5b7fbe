"""The training loop: one small class, no hidden magic, shared by every task.

:class:`TrainLoop` is the loop (steps, gradient accumulation, validation per epoch, early
stopping, checkpoints, exact resume, hooks); what differs between tasks (how a batch is built,
the loss, validation) lives in one *step object* per task (:mod:`segflow.train.steps`:
semantic; :mod:`segflow.train.instance`: Mask R-CNN; :mod:`segflow.volume.train`: volumes), so
adding a task adds a step object, not a branch in the loop. Progress is reported through hooks
(:mod:`segflow.train.hooks`).

Steps are optimizer steps. Batches come from a per-epoch permutation seeded by (seed, epoch)
and per-sample augmentation seeded by (seed, epoch, index), so a run with a fixed seed is
repeatable and ``resume`` continues exactly where a checkpoint left off (model, optimizer,
schedule, RNG, position in the epoch, best metric and patience are all saved).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from segflow.errors import SegflowError
from segflow.formats import open_dataset
from segflow.models import create_model
from segflow.train import checkpoint as ckpt
from segflow.train.config import TrainConfig
from segflow.train.data import fingerprint
from segflow.train.distributed import DistContext
from segflow.train.hooks import Hooks, MetricsLog, RichProgress


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SegflowError("--device cuda: no CUDA device here; use --device cpu or auto")
    if name not in ("cpu", "cuda"):
        raise SegflowError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW or SGD (Nesterov) over the trainable parameters, as ``cfg.optim`` says."""
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay,
                           nesterov=True)


def lr_lambda(cfg: TrainConfig, total: int):
    s = cfg.schedule

    def f(step: int) -> float:
        if s.warmup_steps and step < s.warmup_steps:
            return (step + 1) / s.warmup_steps
        t = min(1.0, (step - s.warmup_steps) / max(1, total - s.warmup_steps))
        if s.name == "poly":
            return (1 - t) ** s.power
        if s.name == "cosine":
            return 0.5 * (1 + math.cos(math.pi * t))
        return 1.0

    return f


class TrainLoop:
    """The loop every trainer shares. A subclass sets, before :meth:`_start`: ``cfg``,
    ``device``, ``out``, ``schema``, ``model_args``, ``num_classes``, ``task_step`` (the step
    object), ``batches_per_epoch``, ``total_steps`` and ``data_fp``; :meth:`_start` builds the
    model (from the run's own seeded generator), the optimiser and the schedule.

    The step object has ``default_metric``, ``instance``, ``validate_at_end`` (also validate
    when the step budget ends mid-epoch), ``order(trainer)`` (the epoch's sample order, or
    None), ``batch(trainer, order, b)`` -> ``(inputs, targets)`` for micro-batch ``b`` of the
    epoch, ``prepare(trainer)`` (once the model exists, before the optimiser: memory format, loss
    module), ``loss(trainer, inputs, targets)`` -> a scalar tensor, ``validate(trainer)`` -> metrics
    and ``state()`` -> extra checkpoint entries.

    Randomness: the run draws from its own ``torch.Generator`` (``self.rng``, seeded with
    ``cfg.seed``) and numpy ``default_rng`` generators; the process-wide RNGs are left as they
    were. Library code that only reads torch's default generator (weight initialisation,
    dropout, Mask R-CNN's sampler) runs inside :meth:`rng_scope`, which lends it the run's
    stream and takes it back. torch has one default generator per process, so two runs in
    threads of one process would draw from each other's stream: run concurrent trainings in
    separate processes (``segflow worker``) when they must be reproducible.
    """

    cfg: TrainConfig
    task_step: object
    dist = DistContext()  # one process unless torchrun / --nproc started several
    _shard_weight = 1.0  # this process's share of the global micro-batch (DDP)

    def _start(self, hooks: Iterable[Hooks], progress: bool) -> None:
        self.hooks = tuple(hooks)
        for h in self.hooks:
            if not isinstance(h, Hooks):
                raise TypeError(f"hooks must be segflow.train.hooks.Hooks, got {type(h).__name__}")
        self.progress = progress
        self.cuda = self.device.type == "cuda"
        self.rng = torch.Generator().manual_seed(self.cfg.seed)
        self.cuda_rng = None  # per-device CUDA states; None: seed on first use
        self._in_scope = False
        self.instance = self.task_step.instance
        self.amp = (self.cfg.train.amp == "on") or (self.cfg.train.amp == "auto" and self.cuda)
        with self.rng_scope():
            self.model = create_model(self.cfg.model.name, **self.model_args).to(self.device)
        self.task_step.prepare(self)  # e.g. channels_last, the loss module
        self.net = self.dist.wrap(self.model, self.device)  # what training forwards run through
        self.opt = make_optimizer(self.cfg, self.model)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt,
                                                       lr_lambda(self.cfg, self.total_steps))
        self.step = self.epoch = self.batch_in_epoch = 0
        self.best, self.bad_epochs = None, 0
        self.history: list[dict] = []
        self.epoch_losses: list[float] = []
        self._live_hooks: tuple = self.hooks

    @property
    def default_metric(self) -> str:
        """What early stopping and best.pt follow when the config names nothing."""
        return self.task_step.default_metric

    # ---- randomness ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def rng_scope(self):
        """Run the block with torch's default generator(s) set to this run's stream; on exit the
        stream is kept in ``self.rng`` and the process-wide state is restored."""
        if self._in_scope:
            yield
            return
        devs = list(range(torch.cuda.device_count())) if self.cuda else []
        with torch.random.fork_rng(devices=devs):
            torch.set_rng_state(self.rng.get_state())
            if self.cuda:
                if self.cuda_rng is None:
                    torch.cuda.manual_seed_all(self.cfg.seed)
                else:
                    torch.cuda.set_rng_state_all(self.cuda_rng)
            self._in_scope = True
            try:
                yield
            finally:
                self._in_scope = False
                self.rng.set_state(torch.get_rng_state())
                if self.cuda:
                    self.cuda_rng = torch.cuda.get_rng_state_all()

    def _rng_states(self):
        if self._in_scope:
            return torch.get_rng_state(), torch.cuda.get_rng_state_all() if self.cuda else None
        return self.rng.get_state(), self.cuda_rng

    # ---- checkpoints --------------------------------------------------------------------------
    def state(self) -> dict:
        torch_rng, cuda_rng = self._rng_states()
        return {
            "config": self.cfg.model_dump(),
            "schema": {"classes": self.schema.to_list(), "ignore_index": self.schema.ignore_index},
            "model": {"name": self.cfg.model.name, "args": self.model_args},
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "best": self.best, "bad_epochs": self.bad_epochs, "history": self.history,
            "epoch_losses": self.epoch_losses, "torch_rng": torch_rng, "cuda_rng": cuda_rng,
            "data_fingerprint": self.data_fp, "task": self.cfg.task, "label_to_class": None,
            "metrics": self.history[-1] if self.history else {},
            **self.task_step.state(),
        }

    def save(self, name: str = "last.pt") -> Path:
        if not self.dist.main:  # DDP: one process writes, checkpoints are written once
            return self.out / name
        path = ckpt.save(self.out / name, **self.state())
        for h in self._live_hooks:
            h.on_checkpoint(self, path)
        return path

    def _check_resume(self, ck: dict, path: str | Path) -> None:
        if ck["model"]["name"] != self.cfg.model.name:
            raise SegflowError(f"{path}: was trained as {ck['model']['name']}, the config says "
                               f"{self.cfg.model.name}")

    def resume(self, path: str | Path) -> None:
        """Continue from checkpoint ``path`` exactly: weights, optimiser, schedule, counters,
        position in the epoch, best metric, patience and the random streams."""
        ck = ckpt.load(path)
        self._check_resume(ck, path)
        self._load_common(ck, path)
        self.batch_in_epoch = ck.get("batch_in_epoch", 0)
        self.epoch_losses = list(ck.get("epoch_losses", []))
        self.rng.set_state(ck["torch_rng"])
        self.cuda_rng = ck.get("cuda_rng") if self.cuda else None

    def _load_common(self, ck: dict, path: str | Path) -> None:
        """Restore what every trainer keeps (weights, optimiser, schedule, counters, history)
        from checkpoint ``ck``, after checking it was made on the same training data."""
        if ck["data_fingerprint"] != self.data_fp:
            raise SegflowError(f"{path}: the training data changed since this checkpoint "
                               "(fingerprint differs); start a new run instead of resuming")
        self.model.load_state_dict(ck["state_dict"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        self.step, self.epoch = ck["step"], ck["epoch"]
        self.best, self.bad_epochs, self.history = ck["best"], ck["bad_epochs"], ck["history"]

    # ---- loop ---------------------------------------------------------------------------------
    def _batch(self, order, b: int):
        if not self.dist.active:
            return self.task_step.batch(self, order, b)
        # DDP: this process takes its share of global micro-batch b; the step object sees that
        # share as a micro-batch of its own (b = 0 of the shard).
        bs = self.cfg.train.batch_size
        idx, self._shard_weight = self.dist.shard(list(order[b * bs:(b + 1) * bs]))
        return self.task_step.batch(self, idx, 0)

    def train_step(self, inputs, targets, scale: float = 1.0) -> float:
        """Forward, loss and backward of one micro-batch (gradients scaled by ``scale``)."""
        loss = self.task_step.loss(self, inputs, targets) * self._shard_weight
        (loss * scale).backward()
        return float(loss.detach())

    def validate(self) -> dict:
        with torch.no_grad():
            return self.task_step.validate(self)

    def _epoch_pending(self, accum: int) -> bool:
        """The epoch's last step is done but its validation is not (a stop came between)."""
        if self.batch_in_epoch == 0:
            return False
        return (self.batch_in_epoch + accum > self.batches_per_epoch
                or (self.task_step.validate_at_end and self.step >= self.total_steps))

    def fit(self) -> dict:
        """Train to the end of the budget (or until early stopping or a hook's ``should_stop``);
        returns the last validation record, with ``"stopped": True`` when a hook stopped it."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        hooks: list[Hooks] = []
        if self.dist.main:  # DDP: one process writes the config and the log
            (self.out / "config.json").write_text(json.dumps(cfg.model_dump(), indent=1))
            hooks.append(MetricsLog(self.out / "metrics.jsonl", cfg.train.log_every))
        bar = RichProgress(cfg.name, self.total_steps, self.step) if self.progress and \
            self.dist.main else None
        if bar is not None:
            hooks.append(bar)
        self._live_hooks = (*hooks, *self.hooks)
        try:
            with bar or contextlib.nullcontext(), self.rng_scope():
                stopped = self._run()
        except KeyboardInterrupt:
            self.save()
            raise
        finally:
            self._live_hooks = self.hooks
        if not stopped:
            self.save()
        if self.dist.main:
            self.plot()
        out = dict(self.history[-1]) if self.history else {}
        if stopped:
            out["stopped"] = True
        return out

    def _run(self) -> bool:
        cfg, hooks = self.cfg, self._live_hooks
        accum = cfg.train.grad_accum
        t_start, step0 = time.perf_counter(), self.step
        early = False
        while not early and self.epoch < cfg.train.epochs and \
                (self.step < self.total_steps or self._epoch_pending(accum)):
            order = self.task_step.order(self)
            self.model.train()
            t0, seen = time.perf_counter(), 0
            while self.batch_in_epoch + accum <= self.batches_per_epoch \
                    and self.step < self.total_steps:
                self.opt.zero_grad(set_to_none=True)
                loss = 0.0
                for _ in range(accum):
                    inputs, targets = self._batch(order, self.batch_in_epoch)
                    loss += self.train_step(inputs, targets, 1.0 / accum) / accum
                    self.batch_in_epoch += 1
                    seen += len(inputs)
                loss = self.dist.mean(loss)  # the global batch's loss (DDP; else as is)
                if not math.isfinite(loss):
                    raise SegflowError(f"loss became {loss} at step {self.step}; lower "
                                       "optim.lr or check the labels")
                if cfg.train.clip_grad_norm:
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                   cfg.train.clip_grad_norm)
                self.opt.step()
                self.sched.step()
                self.step += 1
                self.epoch_losses.append(loss)
                now = time.perf_counter()
                elapsed = now - t_start
                rate = elapsed / max(1, self.step - step0)
                rec = {"step": self.step, "total_steps": self.total_steps, "epoch": self.epoch,
                       "loss": loss, "lr": self.sched.get_last_lr()[0], "elapsed_s": elapsed,
                       "eta_s": rate * (self.total_steps - self.step),
                       "images_per_s": seen / max(now - t0, 1e-9)}
                for h in hooks:
                    h.on_step(self, rec)
                if self.step % cfg.train.checkpoint_every == 0:
                    self.save()
                if any(h.should_stop(self) for h in hooks):
                    self.save()
                    return True
            if self._epoch_pending(accum):
                ips = seen / max(time.perf_counter() - t0, 1e-9)  # training only
                rec = self.validate()
                rec.update(type="val", epoch=self.epoch, step=self.step,
                           train_loss=float(np.mean(self.epoch_losses)) if self.epoch_losses
                           else None, images_per_s=ips)
                self.history.append(rec)
                self.epoch_losses = []
                for h in hooks:
                    h.on_eval(self, rec)
                early = self._early_stop(rec)
                self.epoch += 1
                self.batch_in_epoch = 0
                self.save()
            elif self.step < self.total_steps:  # an empty epoch cannot happen; guard anyway
                break
        return False

    def _early_stop(self, rec: dict) -> bool:
        es = self.cfg.train.early_stopping
        metric = es.metric if es else self.default_metric
        val = rec.get(metric)
        if val is None or not np.isfinite(val):  # a NaN first score would block every later best
            return False
        if self.best is None or (val < self.best if metric == "val_loss" else val > self.best):
            self.best, self.bad_epochs = val, 0
            self.save("best.pt")
            return False
        self.bad_epochs += 1
        return es is not None and self.bad_epochs >= es.patience

    def plot(self) -> Path | None:
        """``curves.png`` and ``metrics.csv`` from ``metrics.jsonl`` (matplotlib's object API:
        the process-wide backend is left alone)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        path = self.out / "metrics.jsonl"
        if not path.is_file():
            return None
        recs = [json.loads(x) for x in path.read_text().splitlines()]
        tr = [r for r in recs if r["type"] == "train"]
        va = [r for r in recs if r["type"] == "val"]
        fig = Figure(figsize=(10, 3.5))
        FigureCanvasAgg(fig)
        a, b = fig.subplots(1, 2)
        a.plot([r["step"] for r in tr], [r["loss"] for r in tr], label="train loss")
        if va:
            if "val_loss" in va[0]:
                a.plot([r["step"] for r in va], [r["val_loss"] for r in va], "o-",
                       label="val loss")
            key = "ap50" if self.instance else "miou"
            b.plot([r["step"] for r in va], [r.get(key) for r in va], "o-", label=f"val {key}")
            b.set_ylim(0, 1)
        a.set_xlabel("step")
        b.set_xlabel("step")
        a.legend()
        if va:
            b.legend()
        fig.tight_layout()
        fig.savefig(self.out / "curves.png", dpi=100)
        with open(self.out / "metrics.csv", "w") as f:
            keys = ["epoch", "step", "train_loss", *(k for k in va[0] if k not in
                    ("epoch", "step", "train_loss", "type"))] if va else ["epoch"]
            f.write(",".join(keys) + "\n")
            for r in va:
                f.write(",".join(str(r.get(k)) for k in keys) + "\n")
        return self.out / "curves.png"


class Trainer(TrainLoop):
    """Images: semantic models (U-Net, DeepLabV3+, FPN) and Mask R-CNN (``task: instance``),
    from any segflow dataset. ``hooks``: :class:`segflow.train.hooks.Hooks` objects."""

    def __init__(self, cfg: TrainConfig, *, device: str = "auto", progress: bool = True,
                 hooks: Iterable[Hooks] = ()):
        from segflow.train.steps import step_for

        self.cfg = cfg
        self.device = pick_device(device)
        self.dist = DistContext.from_env(self.device)  # torchrun / --nproc: one of N processes
        self.device = self.dist.device(self.device)
        self.dist.check_batch(cfg.train.batch_size)
        self.out = Path(cfg.out)
        self.train_ds = open_dataset(cfg.data.train, cfg.data.format)
        self.schema = self.train_ds.schema
        n = len(self.train_ds)
        if cfg.data.val:
            self.val_ds = open_dataset(cfg.data.val, cfg.data.format)
            train_idx, val_idx = list(range(n)), list(range(len(self.val_ds)))
        else:
            perm = np.random.default_rng([cfg.seed, 999]).permutation(n)
            n_val = max(1, int(round(n * cfg.data.val_fraction))) if cfg.data.val_fraction else 0
            if n_val >= n:
                raise SegflowError(f"{cfg.data.train}: {n} images leave none for training after "
                                   f"a {cfg.data.val_fraction} validation split")
            self.val_ds = self.train_ds
            val_idx, train_idx = sorted(perm[:n_val].tolist()), sorted(perm[n_val:].tolist())
        self.task_step = step_for(cfg.task)(self, train_idx, val_idx)
        self.train_set, self.val_set = self.task_step.train_set, self.task_step.val_set
        self.num_classes = self.task_step.num_classes
        self.model_args = {"num_classes": self.num_classes, **cfg.model.args,
                           **self.task_step.model_args}
        bs = cfg.train.batch_size
        self.batches_per_epoch = max(1, math.ceil(len(train_idx) / bs))
        if cfg.train.grad_accum > self.batches_per_epoch:
            raise SegflowError(f"train.grad_accum {cfg.train.grad_accum} is more than the "
                               f"{self.batches_per_epoch} batch(es) of an epoch ({len(train_idx)} "
                               f"training images, batch_size {bs}); lower it")
        self.steps_per_epoch = max(1, self.batches_per_epoch // cfg.train.grad_accum)
        self.total_steps = cfg.train.max_steps or cfg.train.epochs * self.steps_per_epoch
        self.data_fp = fingerprint(self.train_ds)
        self._start(hooks, progress)
