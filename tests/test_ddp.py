"""Training on several processes (torch DDP, gloo on CPU) follows the one-process run with the
same global batch; checkpoints and logs are written once; a DDP run resumes; bad --nproc is one
line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

torch = pytest.importorskip("torch")

from segflow.synth.export import export_synthetic  # noqa: E402
from segflow.train import load_config  # noqa: E402
from segflow.train.trainer import Trainer  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    export_synthetic("street", root / "street", n=10, seed=1, size=48, progress=False)
    return root / "street"


def _config(path: Path, data: Path, out: Path, epochs: int) -> Path:
    # GroupNorm and a per-pixel loss: every sample's gradient is independent of the others in
    # its batch, so splitting the batch over processes must not change the run.
    path.write_text(yaml.safe_dump({
        "name": "ddp", "seed": 5, "out": str(out),
        "data": {"train": str(data), "val_fraction": 0.2},
        "model": {"name": "unet", "args": {"depth": 2, "base_width": 8, "norm": "group"}},
        "loss": {"name": "ce"}, "schedule": {"name": "constant"},
        "augment": {"hflip": True},
        "train": {"epochs": epochs, "batch_size": 4, "log_every": 1, "checkpoint_every": 1,
                  "channels_last": "off"},
    }))
    return path


def _cli(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "segflow", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def _records(out: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if r["type"] == kind]


@pytest.mark.slow
def test_two_processes_match_one_and_resume(data, tmp_path):
    one = tmp_path / "one"
    torch.set_num_threads(1)
    Trainer(load_config(_config(tmp_path / "one.yaml", data, one, 2)), device="cpu",
            progress=False).fit()

    # DDP: one epoch, then resumed from its last.pt for the second.
    two = tmp_path / "two"
    p = _cli("train", _config(tmp_path / "two.yaml", data, two, 1), "--nproc", "2", "--device",
             "cpu", "--json")
    assert p.returncode == 0, p.stderr
    assert len(p.stdout.strip().splitlines()) == 1  # rank 0 alone reports
    p = _cli("train", _config(tmp_path / "two.yaml", data, two, 2), "--nproc", "2", "--device",
             "cpu", "--resume", "last", "--json")
    assert p.returncode == 0, p.stderr

    a, b = _records(one, "train"), _records(two, "train")
    assert [r["step"] for r in b] == [r["step"] for r in a] == [1, 2, 3, 4]  # each step once
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], rel=1e-4)
    va, vb = _records(one, "val"), _records(two, "val")
    assert len(vb) == len(va) == 2
    assert vb[-1]["miou"] == pytest.approx(va[-1]["miou"], abs=1e-3)
    wa = torch.load(one / "last.pt", weights_only=False)["state_dict"]
    wb = torch.load(two / "last.pt", weights_only=False)["state_dict"]
    assert not any(k.startswith("module.") for k in wb)  # saved unwrapped, loadable anywhere
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), rtol=1e-3, atol=1e-5), k
    leftovers = [f.name for f in two.iterdir() if f.name.startswith(".")]
    assert not leftovers  # no temporary checkpoint of a second writer


def test_bad_nproc_is_one_line(tmp_path, data):
    from segflow.errors import SegflowError
    from segflow.train.distributed import check_nproc

    for value in ("0", "NaN", "inf", str(2**63), "-1", "two", "", "1.5"):
        with pytest.raises(SegflowError, match=r"^--nproc must be"):
            check_nproc(value)
    assert check_nproc("2") == 2
    p = _cli("train", _config(tmp_path / "c.yaml", data, tmp_path / "o", 1), "--nproc", "NaN")
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "--nproc" in lines[0], p.stderr
    assert not (tmp_path / "o").exists()


def test_batch_that_does_not_split_is_one_line(tmp_path, data):
    p = _cli("train", _config(tmp_path / "c.yaml", data, tmp_path / "o", 1), "--nproc", "3",
             "--device", "cpu")
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "multiple of 3" in lines[0], p.stderr


def test_shards_weight_to_the_global_mean():
    from segflow.train.distributed import DistContext

    idx = list(range(5))
    parts = [DistContext(r, 2).shard(idx) for r in range(2)]
    assert [p for p, _ in parts] == [[0, 1], [2, 3, 4]]
    assert [w for _, w in parts] == pytest.approx([0.8, 1.2])  # mean of w_r * mean_r = global
    # a batch smaller than the processes: the idle ones repeat a sample at weight 0
    assert [DistContext(r, 3).shard([7]) for r in range(3)] == [([7], 0.0), ([7], 0.0), ([7], 3.0)]
