"""Training on several processes with torch DDP (``torch.distributed``), CPU (gloo) or CUDA (NCCL).

A trainer started by ``torchrun`` (or ``segflow train --nproc N``, which starts the processes
the same way, through the ``RANK`` / ``WORLD_SIZE`` / ``MASTER_ADDR`` environment) joins the
process group here. Each optimizer step takes the same global batch as one process would
(``train.batch_size``), split into equal contiguous shards, one per process; the loss of each
shard is weighted so that DDP's gradient average equals the gradient of the global batch's mean
loss. So a run on N processes follows the one-process run (exactly for per-sample models and
losses; BatchNorm layers see only their shard's statistics on CPU, as in any DDP run without
SyncBatchNorm, which is used on CUDA). Only rank 0 writes checkpoints, logs and curves.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import torch

from segflow.errors import SegflowError

#: The most processes ``--nproc`` takes on one machine.
MAX_NPROC = 256


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    joined: bool = False  # in a process group (torchrun sets WORLD_SIZE, even to 1)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls, device: torch.device) -> DistContext:
        """Join the process group that torchrun's ``WORLD_SIZE`` announces (``torchrun
        --nproc-per-node 1`` too: one GPU exercises the NCCL path); one process without it."""
        if "WORLD_SIZE" not in os.environ or "MASTER_ADDR" not in os.environ:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                   True)

    def device(self, device: torch.device) -> torch.device:
        """This process's device: its own GPU (``LOCAL_RANK``) on CUDA."""
        if self.joined and device.type == "cuda":
            torch.cuda.set_device(self.local_rank)
            return torch.device("cuda", self.local_rank)
        return device

    def check_batch(self, batch_size: int) -> None:
        if self.active and batch_size % self.world:
            raise SegflowError(f"train.batch_size {batch_size} does not split evenly over "
                               f"{self.world} processes; make it a multiple of {self.world}")

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """The module to run forward/backward through: DDP in a process group."""
        if not self.joined:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            return DDP(model, device_ids=[self.local_rank])
        return DDP(model)

    def shard(self, idx: list[int]) -> tuple[list[int], float]:
        """This process's part of a global batch and the weight of its mean loss (so that
        DDP's average of the gradients is the gradient of the global mean). A process left
        without a sample (a last batch smaller than the processes) repeats one at weight 0."""
        if not self.active:
            return idx, 1.0
        n = len(idx)
        part = idx[n * self.rank // self.world:n * (self.rank + 1) // self.world]
        if not part:
            return idx[-1:], 0.0
        return part, len(part) * self.world / n

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the processes (the global batch's loss, for the log)."""
        if not self.active:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def close(self) -> None:
        if self.joined:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def check_nproc(nproc) -> int:
    """``--nproc``: a whole number of processes, 1..MAX_NPROC."""
    try:
        n = int(str(nproc))
    except ValueError:
        raise SegflowError(f"--nproc must be a whole number 1..{MAX_NPROC}, got {nproc!r}"
                           ) from None
    if not 1 <= n <= MAX_NPROC:
        raise SegflowError(f"--nproc must be 1..{MAX_NPROC}, got {nproc}")
    return n


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, threads: int, fn, args) -> None:
    """One process of ``launch``: the torchrun environment, then ``fn(*args)``."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    fn(*args)


def launch(nproc: int, fn, *args) -> None:
    """Run ``fn(*args)`` in ``nproc`` processes on this machine, as ``torchrun --standalone
    --nproc-per-node N`` would (a free local port for the rendezvous). A process that exits
    with an error ends the run; its own message was printed by it. Raises SystemExit with the
    first failing process's exit code."""
    import logging

    import torch.multiprocessing as mp

    # its "Terminating process ..." warning would follow the failing process's one line
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)
    threads = max(1, (os.cpu_count() or 1) // nproc)
    try:
        mp.spawn(_worker, args=(nproc, free_port(), threads, fn, args), nprocs=nproc, join=True)
    except mp.ProcessExitedException as e:
        raise SystemExit(e.exit_code if e.exit_code and e.exit_code > 0 else 1) from None
    except mp.ProcessRaisedException as e:  # an exception the process did not turn into a line
        last = [ln for ln in str(e).strip().splitlines() if ln.strip()][-1:]
        raise SegflowError(f"a training process failed: {last[0] if last else e}") from None
