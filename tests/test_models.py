"""Deep models on tiny sizes: shapes on odd sizes, learning, resume, export, tiling, errors."""

import json

import numpy as np
import pytest
import torch

from segflow.errors import ConfigError, SegflowError
from segflow.models import create_model
from segflow.synth.export import export_synthetic
from segflow.train import parse_config
from segflow.train.losses import SegLoss
from segflow.train.trainer import Trainer

torch.set_num_threads(2)


@pytest.mark.parametrize("name,args", [
    ("unet", {"depth": 3, "base_width": 4}),
    ("unet", {"depth": 4, "base_width": 4, "block": "residual"}),
    ("unet", {"depth": 4, "base_width": 4, "block": "residual", "full_res_convs": 1}),
    ("unet", {"depth": 2, "base_width": 4, "norm": "group", "upsampling": "transpose",
              "dropout": 0.1}),
    ("deeplabv3plus", {"backbone": "resnet18", "width": 16}),
    ("fpn", {"backbone": "mobilenet_v3_large", "width": 16}),
    ("fpn", {"backbone": "resnet34", "width": 16}),
])
def test_forward_backward_on_odd_sizes(name, args):
    m = create_model(name, num_classes=3, **args)
    for h, w in ((37, 53), (64, 31)):
        x = torch.rand(2, 3, h, w)
        y = m(x)
        assert y.shape == (2, 3, h, w)
        y.mean().backward()
        assert all(p.grad is not None for p in m.parameters() if p.requires_grad)
        m.zero_grad()


def test_mask_rcnn_options_for_small_images():
    m = create_model("maskrcnn", num_classes=3, anchor_sizes=[8, 16, 32, 64, 128],
                     aspect_ratios=[0.25, 1.0, 4.0], fpn_channels=64, min_size=64, max_size=64)
    assert m.backbone.out_channels == 64
    assert m.rpn.anchor_generator.sizes == ((8,), (16,), (32,), (64,), (128,))
    assert m.rpn.head.cls_logits.out_channels == 3  # three aspect ratios per location
    with pytest.raises(SegflowError, match="anchor_sizes needs 5 sizes"):
        create_model("maskrcnn", num_classes=3, anchor_sizes=[8, 16])


def test_mask_rcnn_trains_on_an_empty_image_without_nans():
    m = create_model("maskrcnn", num_classes=3, backbone="resnet18_fpn", min_size=96, max_size=128)
    m.train()
    imgs = [torch.rand(3, 90, 110), torch.rand(3, 80, 80)]
    obj = torch.zeros(1, 80, 80, dtype=torch.uint8)
    obj[0, 20:50, 10:40] = 1
    targets = [
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
         "masks": torch.zeros(0, 90, 110, dtype=torch.uint8)},
        {"boxes": torch.tensor([[10.0, 20.0, 40.0, 50.0]]), "labels": torch.tensor([2]),
         "masks": obj},
    ]
    opt = torch.optim.SGD(m.parameters(), lr=0.005, momentum=0.9)
    for _ in range(2):
        losses = m(imgs, targets)
        total = sum(losses.values())
        assert all(torch.isfinite(v) for v in losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        out = m([torch.rand(3, 64, 64)])
    assert set(out[0]) >= {"boxes", "labels", "scores", "masks"}


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    m = create_model("unet", num_classes=4, depth=2, base_width=8)
    x = torch.rand(4, 3, 32, 32)
    y = (x[:, 0] * 4).clamp(max=3.99).long()  # a learnable mapping from colour to class
    y[:, :2] = 255  # ignore label
    loss_fn = SegLoss("ce+dice", ignore_index=255, class_weights=[1, 1, 2, 1])
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    first = float(loss_fn(m(x), y))
    for _ in range(10):
        opt.zero_grad()
        loss = loss_fn(m(x), y)
        loss.backward()
        opt.step()
    assert float(loss_fn(m(x), y)) < 0.8 * first


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    export_synthetic("street", root / "street", n=10, seed=1, size=64, progress=False)
    return root / "street"


def _cfg(data, out, **train):
    return parse_config({
        "name": "t", "seed": 3, "out": str(out), "data": {"train": str(data), "val_fraction": 0.2},
        "model": {"name": "unet", "args": {"depth": 2, "base_width": 8}},
        "augment": {"hflip": True, "scale": [0.8, 1.2], "color_jitter": 0.1},
        "train": {"epochs": 3, "batch_size": 4, "log_every": 1, "checkpoint_every": 2, **train},
    })


def _train_losses(out):
    return [r["loss"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
            if r["type"] == "train"]


def test_same_seed_same_run_and_resume_is_exact(tiny_data, tmp_path, monkeypatch):
    Trainer(_cfg(tiny_data, tmp_path / "a"), progress=False).fit()
    Trainer(_cfg(tiny_data, tmp_path / "b"), progress=False).fit()
    full = _train_losses(tmp_path / "a")
    assert full == _train_losses(tmp_path / "b")  # a fixed seed gives the same run

    # Interrupt at the 4th step (as Ctrl-C would), then resume from last.pt.
    t = Trainer(_cfg(tiny_data, tmp_path / "c"), progress=False)
    calls = {"n": 0}
    real = Trainer.train_step

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Trainer, "train_step", flaky)
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    monkeypatch.setattr(Trainer, "train_step", real)
    r = Trainer(_cfg(tiny_data, tmp_path / "c"), progress=False)
    r.resume(tmp_path / "c" / "last.pt")
    assert r.step == 3
    r.fit()
    assert _train_losses(tmp_path / "c") == full  # the curve continues exactly
    assert (tmp_path / "c" / "curves.png").exists() and (tmp_path / "c" / "metrics.csv").exists()


def test_onnx_matches_pytorch_and_tiling_matches_whole_image(tiny_data, tmp_path):
    import onnxruntime as ort

    from segflow.predict.export import export
    from segflow.predict.predictor import Predictor
    from segflow.synth import synthesize

    Trainer(_cfg(tiny_data, tmp_path / "run", epochs=2), progress=False).fit()
    ck = tmp_path / "run" / "last.pt"
    onnx_path = export(ck, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(onnx_path))
    pred = Predictor(ck, device="cpu")
    img = synthesize("street", seed=50, size=(150, 230)).image
    x = (torch.from_numpy(img).permute(2, 0, 1).float() / 255)[None]
    with torch.no_grad():
        ref = pred.model(x).numpy()
    got = sess.run(None, {"image": x.numpy()})[0]
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.999
    whole = pred.predict(img)
    tiled = pred.predict(img, tile=96, overlap=32)
    assert (whole == tiled).mean() >= 0.995


def test_config_errors_name_file_and_field(tmp_path):
    from segflow.train import load_config

    p = tmp_path / "c.yaml"
    p.write_text("name: x\ndata: {train: d}\nmodel: {name: unett}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: model.name: .*unett"):
        load_config(p)
    p.write_text("name: x\ndata: {train: d}\ntrain: {batchsize: 4}\n")
    with pytest.raises(ConfigError, match="unknown field 'train.batchsize'"):
        load_config(p)
    p.write_text("name: x\n")
    with pytest.raises(ConfigError, match="missing required field 'data'"):
        load_config(p)
    with pytest.raises(SegflowError, match="unknown model"):
        create_model("segformer", num_classes=2)


def _schema():
    from segflow.annotations import LabelSchema

    return LabelSchema.from_list([{"id": 1, "name": "road"}, {"id": 2, "name": "sky"},
                                  {"id": 3, "name": "car", "isthing": True},
                                  {"id": 4, "name": "pole"}])


def test_panoptic_fusion_rules():
    from segflow.models.panoptic import fuse_panoptic

    sem = np.ones((20, 20), np.int64)
    sem[:5] = 2  # sky strip
    sem[18:, 18:] = 4  # a tiny pole: below min_stuff_area, becomes void
    a = np.zeros((20, 20))
    a[8:14, 2:10] = 0.9
    b = np.zeros((20, 20))
    b[9:14, 3:10] = 0.8  # mostly covered by a: dropped
    c = np.zeros((20, 20))
    c[8:14, 8:16] = 0.9  # overlaps a by 2/8 columns: keeps its free pixels
    d = np.zeros((20, 20))
    d[15:18, 1:4] = 0.9  # score below the threshold: ignored
    pan = fuse_panoptic(sem, np.stack([a, b, c, d]), np.array([0.95, 0.9, 0.8, 0.3]),
                        np.array([3, 3, 3, 3]), _schema(), min_stuff_area=10)
    things = [s for s in pan.segments if s.isthing]
    assert len(things) == 2
    sa, sc = things
    assert (pan.seg_ids == sa.id).sum() == 48 and (pan.seg_ids == sc.id).sum() == 48 - 12
    cats = pan.category_map(void=0)
    assert (cats[:5] == 2).all() and cats[19, 19] == 0 and cats[16, 2] == 1


def test_instances_from_semantic_split_touching_blobs():
    from segflow.models.panoptic import instances_from_semantic

    sem = np.ones((60, 100), np.int64)
    yy, xx = np.mgrid[:60, :100]
    for cx in (30, 62):
        sem[(yy - 30) ** 2 + (xx - cx) ** 2 <= 17**2] = 3
    sem[5:8, 90:93] = 3  # a small separate blob
    inst = instances_from_semantic(sem, _schema(), min_distance=8, min_area=4)
    assert len(inst) == 3 and all(i.category_id == 3 for i in inst.items)
    covered = np.zeros((60, 100), bool)
    for i in inst.items:
        assert not (covered & i.mask.astype(bool)).any()
        covered |= i.mask.astype(bool)
    assert (covered == (sem == 3)).all()


def test_a_learned_distance_map_seeds_only_at_real_peaks():
    """A distance head that has not learned (a near-zero map with small bumps) must not cut
    objects into pieces: each region without a peak of at least min_peak stays whole, and a
    map with one clear peak per object still splits touching objects."""
    from segflow.models.panoptic import instances_from_semantic

    sem = np.ones((60, 100), np.int64)
    yy, xx = np.mgrid[:60, :100]
    discs = [(yy - 30) ** 2 + (xx - cx) ** 2 <= 17**2 for cx in (30, 62)]
    for d in discs:
        sem[d] = 3
    flat = (0.02 + 0.01 * np.random.default_rng(0).random((60, 100))).astype(np.float32)
    pieces = instances_from_semantic(sem, _schema(), distance=flat, min_area=4, min_peak=None)
    assert len(pieces) > 2  # the bug: every bump of the flat map seeded an object
    whole = instances_from_semantic(sem, _schema(), distance=flat, min_area=4)
    assert len(whole) == 1 and (whole.items[0].mask.astype(bool) == (sem == 3)).all()
    learned = np.zeros((60, 100), np.float32)
    for cx in (30, 62):
        learned = np.maximum(learned, np.clip(1 - np.hypot(yy - 30, xx - cx) / 17, 0, 1))
    split = instances_from_semantic(sem, _schema(), distance=learned, min_area=4)
    assert len(split) == 2
    a, b = (i.mask.astype(bool) for i in split.items)
    assert a[30, 30] != b[30, 30] and a[30, 62] != b[30, 62] and a[30, 30] != a[30, 62]


def test_mask_rcnn_trains_from_a_config_and_predicts(tmp_path):
    from segflow.predict.predictor import Predictor

    export_synthetic("retail", tmp_path / "d", n=6, seed=2, size=80, fmt="coco", progress=False)
    cfg = parse_config({
        "name": "m", "task": "instance", "out": str(tmp_path / "run"),
        "data": {"train": str(tmp_path / "d"), "val_fraction": 0.2},
        "model": {"name": "maskrcnn", "args": {"backbone": "resnet18_fpn", "min_size": 80,
                                               "max_size": 96}},
        "optim": {"name": "adamw", "lr": 2e-4}, "schedule": {"warmup_steps": 2},
        "train": {"epochs": 1, "batch_size": 2, "clip_grad_norm": 5.0}})
    rec = Trainer(cfg, progress=False).fit()
    assert set(rec) >= {"ap", "ap50"} and 0 <= rec["ap50"] <= 1
    written, failures = Predictor(tmp_path / "run" / "last.pt", device="cpu").run(
        [tmp_path / "d" / "images"], tmp_path / "pred", progress=False)
    assert not failures and (tmp_path / "pred" / "detections.json").exists()
    with pytest.raises(ConfigError, match="task instance needs model maskrcnn"):
        parse_config({"task": "instance", "data": {"train": "x"}})


def test_tiled_prediction_matches_whole_image_on_a_2048_aerial_raster(tmp_path):
    """The issue's seam check: a 2048x2048 synthetic aerial image, tiled vs whole."""
    from segflow.predict.predictor import Predictor
    from segflow.synth import synthesize

    export_synthetic("aerial", tmp_path / "d", n=8, seed=3, size=64, progress=False)
    cfg = parse_config({
        "name": "a", "out": str(tmp_path / "run"), "data": {"train": str(tmp_path / "d"),
                                                           "val_fraction": 0.2},
        "model": {"name": "unet", "args": {"depth": 2, "base_width": 4}},
        "train": {"epochs": 2, "batch_size": 4}})
    Trainer(cfg, progress=False).fit()
    pred = Predictor(tmp_path / "run" / "last.pt", device="cpu")
    img = synthesize("aerial", seed=9, size=2048, n_objects=200).image
    whole = pred.predict(img)
    tiled = pred.predict(img, tile=512, overlap=64)
    assert (whole == tiled).mean() >= 0.995


def test_instance_distance_target_peaks_once_per_object():
    from scipy import ndimage

    from segflow.train.data import instance_distance

    ids = np.zeros((40, 70), np.int64)
    ids[5:26, 5:26] = 1  # a 21x21 square
    ids[5:26, 26:47] = 2  # touching it: a second square
    d = instance_distance(ids)
    assert d[15, 15] == pytest.approx(1.0) and d[15, 36] == pytest.approx(1.0)  # centres
    assert d[15, 25] < 0.2 and d[15, 26] < 0.2  # the shared border is low on both sides
    assert (d[ids == 0] == 0).all() and d.max() <= 1
    ref = ndimage.distance_transform_edt(ids == 1)
    assert np.allclose(d[ids == 1], (ref / ref.max())[ids == 1])  # the SciPy EDT, scaled


def test_distance_head_trains_and_splits_objects(tiny_data, tmp_path):
    from segflow.predict.predictor import Predictor

    cfg = _cfg(tiny_data, tmp_path / "d", epochs=2)
    cfg.loss.distance_weight = 1.0
    t = Trainer(cfg, progress=False)
    assert t.model_args["extra_outputs"] == 1
    imgs, (masks, dist) = t._batch(list(range(len(t.train_set))), 0)
    assert dist.shape == masks.shape and dist.max() <= 1 and (dist[masks == 255] == -1).all()
    t.model.train()
    first = [t.train_step(imgs, (masks, dist)) for _ in range(1)][0]
    for _ in range(5):
        t.opt.zero_grad()
        t.train_step(imgs, (masks, dist))
        t.opt.step()
    t.opt.zero_grad()
    assert t.train_step(imgs, (masks, dist)) < first
    rec = t.fit()
    assert 0 <= rec["miou"] <= 1
    pr = Predictor(tmp_path / "d" / "last.pt", device="cpu")
    img = next(iter(t.val_ds)).image()
    d = pr.distance(img)
    assert d.shape == img.shape[:2] and 0 <= d.min() and d.max() <= 1
    inst, sem = pr.instances(img)
    assert sem.shape == img.shape[:2] and all(i.category_id in pr.schema.thing_ids for i in inst.items)
    with pytest.raises(ConfigError, match="distance_weight needs model unet"):
        parse_config({"data": {"train": "x"}, "model": {"name": "fpn"},
                      "loss": {"distance_weight": 1.0}})


def test_panoptic_prediction_fuses_two_checkpoints(tiny_data, tmp_path):
    from segflow.formats import open_dataset
    from segflow.predict.predictor import Predictor

    Trainer(_cfg(tiny_data, tmp_path / "sem", epochs=1), progress=False).fit()
    cfg = parse_config({
        "name": "m", "task": "instance", "out": str(tmp_path / "mr"),
        "data": {"train": str(tiny_data), "val_fraction": 0.2},
        "model": {"name": "maskrcnn", "args": {"min_size": 64, "max_size": 64,
                                               "anchor_sizes": [8, 16, 32, 64, 128],
                                               "fpn_channels": 64}},
        "train": {"epochs": 1, "batch_size": 2}})
    Trainer(cfg, progress=False).fit()
    sem = Predictor(tmp_path / "sem" / "last.pt", device="cpu")
    things = Predictor(tmp_path / "mr" / "last.pt", device="cpu")
    written, failures = sem.run_panoptic([tiny_data / "images"], tmp_path / "pan", things,
                                         progress=False, score_threshold=0.0, min_stuff_area=1)
    assert not failures
    out = open_dataset(tmp_path / "pan")
    src = open_dataset(tiny_data)
    assert len(out) == len(src)
    for it in out:
        pan = it.panoptic
        assert pan.seg_ids.shape == (64, 64)
        things_ids = {s.id for s in pan.segments if s.isthing}
        assert all(s.category_id in src.schema.ids for s in pan.segments)
        # stuff never overlaps things: each pixel has one segment, every segment has pixels
        assert set(np.unique(pan.seg_ids)) - {0} == {s.id for s in pan.segments}
        assert things_ids <= set(np.unique(pan.seg_ids))
    with pytest.raises(SegflowError, match="panoptic prediction needs a semantic checkpoint"):
        things.panoptic(np.zeros((64, 64, 3), np.uint8), sem)
