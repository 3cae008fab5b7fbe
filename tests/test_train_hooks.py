"""Trainer hooks (issue 10): calls and counts, should_stop + exact resume, and a training run
leaves the process-wide RNGs and matplotlib's backend as it found them."""

import json

import numpy as np
import pytest
import torch

from segflow.synth.export import export_synthetic
from segflow.train import parse_config
from segflow.train.hooks import Hooks, Recorder, StopAfter
from segflow.train.trainer import Trainer


@pytest.fixture(autouse=True)
def one_thread():
    # two torch threads on a loaded 2-core machine spin against each other
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hooks")
    return export_synthetic("street", root / "street", n=10, seed=1, size=48, progress=False)


def _cfg(data, out, **train):
    # 8 training images, batch 4: 2 steps an epoch; dropout draws from torch's default RNG
    return parse_config({
        "name": "h", "seed": 5, "out": str(out), "data": {"train": str(data), "val_fraction": 0.2},
        "model": {"name": "unet", "args": {"depth": 2, "base_width": 4, "dropout": 0.2}},
        "augment": {"hflip": True, "scale": [0.8, 1.2]},
        "train": {"epochs": 3, "batch_size": 4, "log_every": 1, "checkpoint_every": 5, **train}})


def _losses(out):
    return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if r["type"] == "train"]


def test_hooks_get_every_step_eval_and_checkpoint(data, tmp_path):
    rec = Recorder()
    tr = Trainer(_cfg(data, tmp_path / "a"), progress=False, hooks=(rec,))
    out = tr.fit()
    assert "stopped" not in out and tr.step == 6
    steps = [p for n, p in rec.calls if n == "step"]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5, 6]
    assert all(s["total_steps"] == 6 and s["eta_s"] >= 0 and s["elapsed_s"] >= 0 for s in steps)
    assert [s["epoch"] for s in steps] == [0, 0, 1, 1, 2, 2]
    assert steps[-1]["eta_s"] == 0
    assert all(set(s) >= {"step", "total_steps", "epoch", "loss", "lr", "elapsed_s", "eta_s"}
               for s in steps)
    evals = [p for n, p in rec.calls if n == "eval"]
    assert [e["step"] for e in evals] == [2, 4, 6] and all("miou" in e for e in evals)
    # the losses the hook saw are the ones metrics.jsonl logged
    assert [s["loss"] for s in steps] == _losses(tmp_path / "a")
    # checkpoints: step 5 (checkpoint_every), last.pt after each epoch, best.pt on each new
    # best, last.pt at the end
    cks = [p.name for n, p in rec.calls if n == "checkpoint"]
    best = sum(1 for k, e in enumerate(evals)
               if all(e["miou"] > f["miou"] for f in evals[:k]))
    assert cks.count("best.pt") == best >= 1
    assert cks.count("last.pt") == 1 + 3 + 1
    assert rec.count("checkpoint") == len(cks)
    # the order: a step's checkpoint comes after its on_step, an epoch's eval before its save
    names = [n if n != "checkpoint" else p.name for n, p in rec.calls]
    assert names[-1] == "last.pt" and names.index("eval") < names.index("last.pt")


def test_should_stop_saves_last_and_resume_matches_an_uninterrupted_run(data, tmp_path):
    full = Trainer(_cfg(data, tmp_path / "full"), progress=False)
    full_out = full.fit()
    for k in (1, 2):  # mid-epoch; at an epoch's end, before its validation
        out = tmp_path / f"stop{k}"
        tr = Trainer(_cfg(data, out), progress=False, hooks=(StopAfter(k),))
        res = tr.fit()
        assert res.get("stopped") is True and tr.step == k
        ck = torch.load(out / "last.pt", weights_only=False)
        assert ck["step"] == k
        again = Trainer(_cfg(data, out), progress=False)
        again.resume(out / "last.pt")
        res2 = again.fit()
        assert "stopped" not in res2
        assert _losses(out) == _losses(tmp_path / "full")
        res2.pop("images_per_s")  # a speed, not a result
        assert res2 == {k: v for k, v in full_out.items() if k != "images_per_s"}
        for a, b in zip(again.model.state_dict().values(), full.model.state_dict().values()):
            assert torch.equal(a, b)


def test_a_run_leaves_the_global_rngs_and_the_matplotlib_backend_alone(data, tmp_path):
    import matplotlib

    old_backend = matplotlib.get_backend()
    matplotlib.use("pdf")  # not the Agg a trainer might switch to
    try:
        torch.manual_seed(123)
        np.random.seed(456)
        t_state, n_state = torch.random.get_rng_state(), np.random.get_state()
        Trainer(_cfg(data, tmp_path / "a", epochs=1), progress=False).fit()
        assert torch.equal(torch.random.get_rng_state(), t_state)
        n_after = np.random.get_state()
        assert n_after[0] == n_state[0] and np.array_equal(n_after[1], n_state[1]) \
            and n_after[2:] == n_state[2:]
        assert matplotlib.get_backend() == "pdf"
        assert (tmp_path / "a" / "curves.png").is_file()
        # and the run does not depend on the global state either
        torch.manual_seed(999)
        Trainer(_cfg(data, tmp_path / "b", epochs=1), progress=False).fit()
        assert _losses(tmp_path / "a") == _losses(tmp_path / "b")
    finally:
        matplotlib.use(old_backend)


def test_hooks_must_be_hooks_and_an_epoch_must_hold_a_step(data, tmp_path):
    from segflow.errors import SegflowError

    with pytest.raises(TypeError, match="hooks must be"):
        Trainer(_cfg(data, tmp_path / "x"), progress=False, hooks=(print,))
    # 8 images in batches of 4: 2 batches, so 3 accumulated batches never make a step
    with pytest.raises(SegflowError, match="grad_accum 3 is more than the 2 batch"):
        Trainer(_cfg(data, tmp_path / "x", grad_accum=3), progress=False)


def test_volume_trainer_takes_the_same_hooks(tmp_path):
    from segflow.synth.medical3d import export_volumes
    from segflow.volume.train import VolumeTrainer

    export_volumes(tmp_path / "train", n=2, seed=1, size=32)
    export_volumes(tmp_path / "val", n=1, seed=2, size=32)

    def cfg(out):
        return parse_config({
            "out": str(out), "seed": 2,
            "data": {"train": str(tmp_path / "train"), "val": str(tmp_path / "val")},
            "model": {"name": "unet", "args": {"depth": 2, "base_width": 4}},
            "volume": {"context": 1, "samples_per_volume": 2},
            "train": {"epochs": 2, "batch_size": 2, "log_every": 1}})

    rec = Recorder()
    full = VolumeTrainer(cfg(tmp_path / "full"), device="cpu", progress=False, hooks=(rec,))
    full.fit()
    assert rec.count("step") == 4 and rec.count("eval") == 2
    stop = VolumeTrainer(cfg(tmp_path / "s"), device="cpu", progress=False, hooks=(StopAfter(3),))
    assert stop.fit()["stopped"] is True
    again = VolumeTrainer(cfg(tmp_path / "s"), device="cpu", progress=False)
    again.resume(tmp_path / "s" / "last.pt")
    again.fit()
    assert _losses(tmp_path / "s") == _losses(tmp_path / "full")
    for a, b in zip(again.model.state_dict().values(), full.model.state_dict().values()):
        assert torch.equal(a, b)


class _Cancel(Hooks):
    def __init__(self):
        self.flag = False

    def on_step(self, trainer, rec):
        self.flag = rec["step"] >= 1

    def should_stop(self, trainer):
        return self.flag


@pytest.mark.slow
def test_mask_rcnn_path_takes_hooks(tmp_path):
    export_synthetic("retail", tmp_path / "d", n=5, seed=2, size=64, fmt="coco", progress=False)
    cfg = parse_config({
        "name": "m", "task": "instance", "out": str(tmp_path / "run"),
        "data": {"train": str(tmp_path / "d"), "val_fraction": 0.2},
        "model": {"name": "maskrcnn", "args": {"backbone": "resnet18_fpn", "min_size": 64,
                                               "max_size": 64}},
        "train": {"epochs": 2, "batch_size": 2}})
    rec, cancel = Recorder(), _Cancel()
    t_state = torch.random.get_rng_state()
    out = Trainer(cfg, progress=False, hooks=(rec, cancel)).fit()
    assert out["stopped"] is True and rec.count("step") == 1
    assert [p.name for n, p in rec.calls if n == "checkpoint"] == ["last.pt"]
    assert torch.equal(torch.random.get_rng_state(), t_state)  # the RPN's sampler drew elsewhere
