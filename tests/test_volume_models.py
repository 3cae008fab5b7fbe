"""Volume models: the 3-D U-Net, 2.5-D slabs, 3-D sliding-window blending (against MONAI's
sliding_window_inference and a known answer) and a tiny training run through the config file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("nibabel")

from segflow.errors import SegflowError  # noqa: E402
from segflow.models import create_model  # noqa: E402
from segflow.train.config import parse_config  # noqa: E402
from segflow.volume.predict import slab, sliding_window_3d  # noqa: E402


@pytest.mark.parametrize("aniso", [True, False])
def test_unet3d_any_size_and_gradients(aniso):
    m = create_model("unet3d", num_classes=3, depth=2, base_width=4, anisotropic=aniso)
    x = torch.randn(1, 1, 13, 10, 7, requires_grad=True)
    y = m(x)
    assert y.shape == (1, 3, 13, 10, 7)
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    with pytest.raises(SegflowError, match="unet3d"):
        create_model("unet3d", num_classes=3, depth=9)


def test_slab_neighbours_as_channels():
    v = np.arange(2 * 2 * 5, dtype=np.float32).reshape(2, 2, 5)
    s = slab(v, 0, 2)
    assert s.shape == (5, 2, 2)
    assert np.array_equal(s[:, 0, 0], v[0, 0, [0, 0, 0, 1, 2]])  # repeats the first slice
    assert np.array_equal(slab(v, 4, 1)[:, 1, 1], v[1, 1, [3, 4, 4]])


def test_sliding_window_blends_to_the_exact_answer():
    rng = np.random.default_rng(0)
    vol = rng.random((2, 23, 17, 9)).astype(np.float32)
    for blend in ("gaussian", "constant"):
        out = sliding_window_3d(lambda x: x, vol, 2, (8, 8, 4), overlap=0.5, blend=blend)
        assert np.allclose(out, vol, atol=1e-6)  # the weights of every voxel sum to one
    with pytest.raises(SegflowError):
        sliding_window_3d(lambda x: x, vol, 2, (8, 8, 4), overlap=1.0)


def test_sliding_window_equals_monai_for_a_pointwise_model():
    inferers = pytest.importorskip("monai.inferers")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 3, 1), torch.nn.Softmax(1)).eval()
    vol = torch.randn(1, 1, 30, 26, 12)
    with torch.no_grad():
        ref = inferers.sliding_window_inference(vol, (16, 16, 8), 2, net, overlap=0.5,
                                                mode="gaussian")[0].numpy()
        whole = net(vol)[0].numpy()
    ours = sliding_window_3d(net, vol[0].numpy(), 3, (16, 16, 8), overlap=0.5)
    assert np.allclose(ours, ref, atol=1e-5) and np.allclose(ours, whole, atol=1e-5)


def test_config_accepts_volume_models_and_names_bad_fields():
    cfg = parse_config({"data": {"train": "x"}, "model": {"name": "unet3d"}})
    assert cfg.volume is not None and cfg.volume.patch == (64, 64, 32)
    with pytest.raises(SegflowError, match="volume.context"):
        parse_config({"data": {"train": "x"}, "volume": {"context": -1}})
    with pytest.raises(SegflowError, match="volume training needs model unet"):
        parse_config({"data": {"train": "x"}, "model": {"name": "fpn"}, "volume": {}})
    with pytest.raises(SegflowError, match="unknown field 'volume.pach'"):
        parse_config({"data": {"train": "x"}, "volume": {"pach": [1, 2, 3]}})


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    from segflow.synth.medical3d import export_volumes

    d = tmp_path_factory.mktemp("vols")
    export_volumes(d / "train", n=3, seed=1, size=32)
    export_volumes(d / "val", n=1, seed=2, size=32)
    return d


@pytest.fixture
def one_thread():
    # Two torch threads on a loaded 2-core machine spin against each other (10x slower).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("model,extra", [
    ("unet3d", {"patch": [16, 16, 8]}), ("unet", {"context": 1})])
def test_tiny_training_then_whole_volume_prediction(tiny_set, tmp_path, model, extra, one_thread):
    from segflow.volume import read_volume
    from segflow.volume.predict import VolumePredictor, predict_volumes
    from segflow.volume.train import VolumeTrainer

    cfg = parse_config({
        "out": str(tmp_path / "run"), "data": {"train": str(tiny_set / "train"),
                                               "val": str(tiny_set / "val")},
        "model": {"name": model, "args": {"depth": 2, "base_width": 4}},
        "volume": {**extra, "samples_per_volume": 1}, "train": {"epochs": 2, "batch_size": 2}})
    tr = VolumeTrainer(cfg, device="cpu", progress=False)
    rec = tr.fit()
    assert tr.step == 4 and "dice" in rec and (tmp_path / "run" / "best.pt").is_file()
    assert {"dice_organ", "dice_lesion"} <= set(rec) and (tmp_path / "run" / "curves.png").is_file()
    src = next((tiny_set / "val" / "images").iterdir())
    written, failures = predict_volumes(tmp_path / "run" / "last.pt", [src], tmp_path / "pred",
                                        device="cpu")
    assert not failures
    m, v = read_volume(written[0]), read_volume(src)
    assert np.array_equal(m.affine, v.affine) and m.array.shape == v.array.shape
    assert set(np.unique(m.array)) <= {0, 1, 2}
    # the predictor and the trainer's validation agree voxel for voxel
    pr = VolumePredictor(tmp_path / "run" / "last.pt", device="cpu")
    tr.model.eval()
    from segflow.volume.predict import normalize

    assert np.array_equal(pr.predict(v.array), tr.predict_normalised(normalize(v.array, (40, 400))))
