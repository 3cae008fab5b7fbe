"""``segflow predict`` on a U-Net trained with a distance head writes objects (16-bit instance
PNG + COCO results JSON), and ``--panoptic`` writes COCO panoptic from that one model."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from segflow.annotations import decode_rle
from segflow.formats import open_dataset
from segflow.io import read_image, read_mask
from segflow.synth.export import export_synthetic
from segflow.train import parse_config
from segflow.train.trainer import Trainer

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def distance_ckpt(tmp_path_factory):
    """A tiny U-Net with a distance head, trained for a few steps on agriculture scenes (soil
    is stuff; crops and weeds are things, a quarter of the pixels)."""
    root = tmp_path_factory.mktemp("dist")
    data = export_synthetic("agriculture", root / "agri", n=6, seed=1, size=64, progress=False)
    cfg = parse_config({
        "name": "d", "seed": 3, "out": str(root / "run"),
        "data": {"train": str(data), "val_fraction": 0.2},
        "model": {"name": "unet", "args": {"depth": 2, "base_width": 8}},
        "loss": {"distance_weight": 1.0}, "optim": {"lr": 0.01},
        "train": {"epochs": 3, "batch_size": 4}})
    Trainer(cfg, progress=False).fit()
    return root / "run" / "last.pt", data


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "segflow", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_predict_writes_objects_for_a_distance_head(distance_ckpt, tmp_path):
    from segflow.predict.predictor import Predictor

    ckpt, data = distance_ckpt
    files = sorted((data / "images").glob("*.png"))[:2]
    p = _cli("predict", ckpt, *files, "-o", tmp_path / "out", "--device", "cpu", "--json")
    assert p.returncode == 0, p.stderr
    outputs = json.loads(p.stdout)["outputs"]
    assert str(tmp_path / "out" / "detections.json") in outputs
    dets = json.loads((tmp_path / "out" / "detections.json").read_text())
    pr = Predictor(ckpt, device="cpu")
    n_objects = 0
    for img_path in files:
        ids = read_mask(tmp_path / "out" / f"{img_path.stem}_instances.png")
        assert ids.dtype == np.uint16
        inst, sem = pr.instances(read_image(img_path))  # the library's answer, same checkpoint
        assert np.array_equal(ids, inst.id_map())
        assert np.array_equal(read_mask(tmp_path / "out" / f"{img_path.stem}_mask.png"), sem)
        mine = [d for d in dets if d["file_name"] == img_path.name]
        assert len(mine) == len(inst.items)
        for d, it in zip(mine, inst.items):
            assert np.array_equal(decode_rle(d["segmentation"]), it.mask)
            assert d["category_id"] in pr.schema.thing_ids and 0 < d["score"] <= 1
        n_objects += len(inst.items)
    assert n_objects > 0  # a few training steps already find some objects


def test_predict_panoptic_from_one_model(distance_ckpt, tmp_path):
    from segflow.predict.predictor import Predictor

    ckpt, data = distance_ckpt
    files = sorted((data / "images").glob("*.png"))[:2]
    p = _cli("predict", ckpt, *files, "-o", tmp_path / "pan", "--panoptic",
             "--min-stuff-area", "1", "--device", "cpu", "--json")
    assert p.returncode == 0, p.stderr
    ds = open_dataset(tmp_path / "pan")
    pr = Predictor(ckpt, device="cpu")
    schema = pr.schema
    assert len(ds) == 2
    for it in ds:
        inst, sem = pr.instances(read_image(data / "images" / f"{it.name}.png"))
        cat = it.panoptic.category_map(void=schema.ignore_index)
        labelled = cat != schema.ignore_index
        assert np.array_equal(cat[labelled], sem[labelled])  # every segment keeps its class
        stuff = np.isin(sem, schema.stuff_ids)
        assert labelled[stuff].all()  # all stuff pixels are in a stuff segment
        things = [s for s in it.panoptic.segments if s.isthing]
        assert len(things) == len(inst.items) > 0  # one segment per object of the model


def test_panoptic_needs_a_semantic_checkpoint(distance_ckpt, tmp_path):
    from segflow.errors import SegflowError
    from segflow.predict.predictor import Predictor

    pr = Predictor(distance_ckpt[0], device="cpu")
    with pytest.raises(SegflowError, match="--things needs a Mask R-CNN checkpoint"):
        pr.panoptic(np.zeros((32, 32, 3), np.uint8), pr)
