"""Inputs as users have them, in the layouts the tools write:

* Label Studio "COCO" export: ``result.json`` beside ``images/``; ids from 0; ``file_name``
  like ``images\\\\3f2a-photo.jpg`` (Windows separators) or, since 1.16, a path into the media
  store; rectangles as ``segmentation: []`` with a ``bbox``; ``ignore``/``iscrowd``/``area``.
* CVAT "COCO 1.0": ``annotations/instances_default.json`` + ``images/`` (older) or
  ``images/default/`` (newer); masks as ``iscrowd: 1`` with uncompressed RLE; ``attributes``.
* panopticapi / Detectron2: ``coco/annotations/panoptic_val2017.json`` beside the PNG folder
  ``panoptic_val2017/``, images in ``coco/val2017/``; predictions as ``pred.json`` + ``pred/``.
* schema-less semantic folders: PNG masks only.

Masks are compared with pycocotools' own decoding of the same JSON; scores with a second,
independent computation.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from segflow.errors import SegflowError
from segflow.formats import detect, open_dataset
from segflow.io import read_image, write_image, write_mask
from segflow.synth.export import export_synthetic

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "segflow", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def _one_line_error(p, *needles):
    assert p.returncode == 2, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def _rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _poly_area(poly, h, w):
    return float(mask_utils.area(mask_utils.merge(mask_utils.frPyObjects([poly], h, w))))


@pytest.fixture
def label_studio(tmp_path):
    """What Label Studio's "COCO" export unpacks to (label-studio-converter's layout)."""
    root = tmp_path / "project-4-at-2026-11-28"
    (root / "images").mkdir(parents=True)
    sizes = [(48, 64), (40, 40), (30, 52)]
    files = ["3f2a9c1e-street.png", "b71d0f22-shop.jpg", "c0ffee00-yard.png"]
    names = ["images\\3f2a9c1e-street.png", "images/b71d0f22-shop.jpg",  # Windows and POSIX
             "..\\..\\label-studio\\media\\upload\\4\\c0ffee00-yard.png"]  # 1.16's media path
    for (h, w), f, k in zip(sizes, files, range(3)):
        Image.fromarray(_rgb(h, w, k)).save(root / "images" / f)
    polys = [[4.0, 4.0, 30.5, 6.0, 28.0, 30.0, 6.0, 26.0], [35.0, 10.0, 60.0, 10.0, 50.0, 40.0]]
    anns = [
        {"id": 0, "image_id": 0, "category_id": 1, "segmentation": [polys[0]],
         "bbox": [4.0, 4.0, 26.5, 26.0], "ignore": 0, "iscrowd": 0,
         "area": _poly_area(polys[0], 48, 64)},
        {"id": 1, "image_id": 0, "category_id": 0, "segmentation": [polys[1]],
         "bbox": [35.0, 10.0, 25.0, 30.0], "ignore": 0, "iscrowd": 0,
         "area": _poly_area(polys[1], 48, 64)},
        {"id": 2, "image_id": 1, "category_id": 0, "segmentation": [],  # a rectangle
         "bbox": [5.0, 6.0, 20.0, 12.0], "ignore": 0, "iscrowd": 0, "area": 240.0},
    ]
    data = {"images": [{"width": w, "height": h, "id": k, "file_name": n}
                       for k, ((h, w), n) in enumerate(zip(sizes, names))],
            "categories": [{"id": 0, "name": "Car"}, {"id": 1, "name": "Person"}],
            "annotations": anns,
            "info": {"year": 2026, "version": "1.0", "description": "", "contributor":
                     "Label Studio", "url": "", "date_created": "2026-11-28 20:40:00.000000"}}
    (root / "result.json").write_text(json.dumps(data))
    return root


@pytest.fixture
def cvat(tmp_path):
    """CVAT "COCO 1.0" (datumaro's writer): polygons, and a brush mask as crowd RLE."""
    root = tmp_path / "task_12_dataset_2026_11_28"
    (root / "annotations").mkdir(parents=True)
    (root / "images" / "default").mkdir(parents=True)
    h, w = 36, 50
    for k in range(2):
        Image.fromarray(_rgb(h, w, 10 + k)).save(root / "images" / "default" / f"frame_{k:06d}.png")
    m = np.zeros((h, w), np.uint8)
    m[5:20, 30:45] = 1
    m[8:12, 34:38] = 0  # a hole: only a mask, not a polygon, holds it
    counts, v, run = [], 0, 0
    for px in m.ravel(order="F"):  # COCO's uncompressed RLE runs down columns, 0s first
        if px == v:
            run += 1
        else:
            counts.append(run)
            v, run = px, 1
    counts.append(run)
    poly = [2.0, 2.0, 20.0, 3.0, 18.0, 25.0, 3.0, 20.0]
    data = {
        "licenses": [{"name": "", "id": 0, "url": ""}],
        "info": {"contributor": "", "date_created": "", "description": "", "url": "",
                 "version": "", "year": ""},
        "categories": [{"id": 1, "name": "car", "supercategory": ""},
                       {"id": 2, "name": "tree", "supercategory": ""}],
        "images": [{"id": k + 1, "width": w, "height": h, "file_name": f"frame_{k:06d}.png",
                    "license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0}
                   for k in range(2)],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "segmentation": [poly],
             "area": _poly_area(poly, h, w), "bbox": [2.0, 2.0, 18.0, 23.0], "iscrowd": 0,
             "attributes": {"occluded": False, "rotation": 0.0}},
            {"id": 2, "image_id": 2, "category_id": 2,
             "segmentation": {"counts": counts, "size": [h, w]}, "area": float(m.sum()),
             "bbox": [30.0, 5.0, 15.0, 15.0], "iscrowd": 1, "attributes": {"occluded": False}},
        ]}
    (root / "annotations" / "instances_default.json").write_text(json.dumps(data))
    return root


def _reference_masks(jpath):
    api = COCO(str(jpath))
    out = {}
    for a in api.dataset["annotations"]:
        if not a["segmentation"]:  # pycocotools' loadRes turns a box into this polygon
            x, y, bw, bh = a["bbox"]
            a = dict(a, segmentation=[[x, y, x + bw, y, x + bw, y + bh, x, y + bh]])
        out[a["id"]] = api.annToMask(a)
    return out


@pytest.mark.parametrize("which", ["label_studio", "cvat"])
def test_tool_exports_read_as_pycocotools_reads_them(which, request):
    root = request.getfixturevalue(which)
    jpath = root / ("result.json" if which == "label_studio" else
                    "annotations/instances_default.json")
    ref = _reference_masks(jpath)
    for src in (root, jpath):  # the folder, or the JSON given directly
        assert detect(src) == "coco"
        ds = open_dataset(src)
        got = {i.id: i.mask for it in ds for i in it.instances.items}
        assert got.keys() == ref.keys()
        for k in ref:
            assert np.array_equal(got[k], ref[k]), k
        for it in ds:  # every image found, whatever the file_name's form
            assert it.image_path is not None and it.image().shape[:2] == (it.height, it.width)


def test_label_studio_export_converts_and_evaluates(label_studio, tmp_path):
    p = _cli("convert", label_studio / "result.json", "-o", tmp_path / "f", "--to", "folders",
             "--json")
    assert p.returncode == 0, p.stderr
    back = open_dataset(tmp_path / "f")
    src = open_dataset(label_studio / "result.json")
    assert back.names == src.names == ["3f2a9c1e-street", "b71d0f22-shop", "c0ffee00-yard"]
    for a, b in zip(src, back):
        assert np.array_equal(a.image(), b.image())
        for inst in a.instances.items:  # each object's pixels carry its class (ids from 0)
            assert inst.mask.any() and (b.semantic.ids[inst.mask.astype(bool)]
                                        == inst.category_id).all()
    # perfect detections in COCO results form score AP 1 against the lone JSON
    data = json.loads((label_studio / "result.json").read_text())
    res = [{"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.9,
            "segmentation": {**m, "counts": m["counts"].decode()}}
           for a in data["annotations"]
           for m in [mask_utils.encode(np.asfortranarray(
               _reference_masks(label_studio / "result.json")[a["id"]]))]]
    (tmp_path / "res.json").write_text(json.dumps(res))
    p = _cli("eval", "--task", "instance", "--gt", label_studio / "result.json", "--pred",
             tmp_path / "res.json", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["ap"] == pytest.approx(1.0)


def test_cvat_export_converts_and_keeps_the_crowd_mask(cvat, tmp_path):
    p = _cli("convert", cvat, "-o", tmp_path / "cp", "--to", "coco_panoptic", "--json")
    assert p.returncode == 0, p.stderr
    lost = json.loads(p.stdout)["lost"]
    assert any("void" in x for x in lost)  # instances hold no stuff: said, not hidden
    pan = open_dataset(tmp_path / "cp")[1].panoptic
    ref = _reference_masks(cvat / "annotations" / "instances_default.json")[2]
    (crowd,) = [s for s in pan.segments if s.iscrowd]
    assert np.array_equal(pan.seg_ids == crowd.id, ref.astype(bool))
    # the older CVAT layout, images/ without the subset folder, reads the same
    for f in (cvat / "images" / "default").iterdir():
        shutil.move(f, cvat / "images" / f.name)
    assert open_dataset(cvat)[0].image_path == cvat / "images" / "frame_000000.png"


def test_lone_json_with_images_elsewhere(label_studio, tmp_path):
    alone = tmp_path / "only-json" / "annotations.json"
    alone.parent.mkdir()
    shutil.copy(label_studio / "result.json", alone)
    ds = open_dataset(alone)
    assert ds[0].image_path is None and "give --images DIR" in ds[0].missing
    ds = open_dataset(alone, images=label_studio / "images")
    assert all(it.image_path is not None for it in ds)
    p = _cli("convert", alone, "-o", tmp_path / "v", "--to", "voc", "--images",
             label_studio / "images")
    assert p.returncode == 0, p.stderr
    assert len(list((tmp_path / "v" / "JPEGImages").iterdir())) == 3
    p = _cli("convert", alone, "-o", tmp_path / "v2", "--to", "voc", "--json")  # no images
    assert p.returncode == 0 and any("images: none found" in x
                                     for x in json.loads(p.stdout)["lost"])


def _panopticapi_layout(tmp_path):
    """A synthetic COCO panoptic set moved into Detectron2's datasets/coco layout."""
    src = export_synthetic("street", tmp_path / "src", n=3, seed=5, size=64, fmt="coco_panoptic",
                           progress=False)
    coco = tmp_path / "datasets" / "coco"
    (coco / "annotations").mkdir(parents=True)
    shutil.copytree(src / "annotations" / "panoptic_default",
                    coco / "annotations" / "panoptic_val2017")
    shutil.copy(src / "annotations" / "panoptic_default.json",
                coco / "annotations" / "panoptic_val2017.json")
    shutil.copytree(src / "images" / "default", coco / "val2017")
    return src, coco


def test_panopticapi_json_beside_its_folder(tmp_path):
    src, coco = _panopticapi_layout(tmp_path)
    gt = coco / "annotations" / "panoptic_val2017.json"
    assert detect(gt) == "coco_panoptic" and detect(coco) == "coco_panoptic"
    ds = open_dataset(gt)
    for a, b in zip(open_dataset(src), ds):
        assert np.array_equal(a.panoptic.seg_ids, b.panoptic.seg_ids)
        assert b.image_path == coco / "val2017" / f"{b.name}.png"  # Detectron2's image folder
        assert np.array_equal(a.image(), b.image())
    # predictions as panopticapi writes them: pred.json + pred/ (another scene per image)
    other = export_synthetic("street", tmp_path / "o", n=3, seed=6, size=64,
                             fmt="coco_panoptic", progress=False)
    pred = tmp_path / "out" / "pred.json"
    pred.parent.mkdir()
    shutil.copytree(other / "annotations" / "panoptic_default", tmp_path / "out" / "pred")
    shutil.copy(other / "annotations" / "panoptic_default.json", pred)
    shutil.copytree(src / "images", other / "images", dirs_exist_ok=True)
    names = {p.name for p in (tmp_path / "out" / "pred").iterdir()}
    d = json.loads(pred.read_text())  # same image names as the ground truth
    gnames = sorted(p.name for p in (coco / "annotations" / "panoptic_val2017").iterdir())
    ren = dict(zip(sorted(names), gnames))
    for a in d["annotations"]:
        a["file_name"] = ren[a["file_name"]]
    for im in d["images"]:
        im["file_name"] = ren[im["file_name"]]
    for old, new in ren.items():
        (tmp_path / "out" / "pred" / old).rename(tmp_path / "out" / "pred" / f"_{new}")
    for f in (tmp_path / "out" / "pred").iterdir():
        f.rename(f.with_name(f.name[1:]))
    pred.write_text(json.dumps(d))
    p = _cli("eval", "--task", "panoptic", "--gt", gt, "--pred", pred, "--json")
    assert p.returncode == 0, p.stderr
    # the same PQ as the same files in segflow's own COCO layout
    ref_pred = tmp_path / "refpred"
    shutil.copytree(tmp_path / "out" / "pred", ref_pred / "annotations" / "panoptic_default")
    shutil.copy(pred, ref_pred / "annotations" / "panoptic_default.json")
    q = _cli("eval", "--task", "panoptic", "--gt", src, "--pred", ref_pred, "--json")
    assert q.returncode == 0, q.stderr
    assert json.loads(p.stdout)["pq"] == json.loads(q.stdout)["pq"] < 1
    # and it converts from the JSON
    p = _cli("convert", gt, "-o", tmp_path / "cs", "--to", "cityscapes")
    assert p.returncode == 0, p.stderr
    assert len(open_dataset(tmp_path / "cs")) == 3


def test_schema_less_semantic_folders_infer_the_ids(tmp_path):
    rng = np.random.default_rng(3)
    gts, preds = [], []
    for k in range(3):
        g = rng.choice(np.array([0, 3, 7, 255], np.uint8), (20, 30))
        q = np.where(rng.random((20, 30)) < 0.7, g, rng.choice(np.array([0, 3, 9], np.uint8),
                                                                (20, 30)))
        q[q == 255] = 0
        write_mask(tmp_path / "gt" / f"m{k}.png", g)
        write_mask(tmp_path / "pred" / f"m{k}.png", q)
        gts.append(g)
        preds.append(q)
    p = _cli("eval", "--task", "semantic", "--gt", tmp_path / "gt", "--pred", tmp_path / "pred",
             "--json")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["inferred_classes"] == [0, 3, 7, 9]
    assert "4 classes inferred from the masks (ids 0, 3, 7, 9" in p.stderr
    assert set(d["per_class"]) == {"0", "3", "7", "9"}
    g, q = np.concatenate([x.ravel() for x in gts]), np.concatenate([x.ravel() for x in preds])
    keep = g != 255
    ious = [((g == c) & (q == c) & keep).sum() / (((g == c) | (q == c)) & keep).sum()
            for c in (0, 3, 7, 9)]
    assert d["miou"] == pytest.approx(np.mean(ious), abs=1e-12)
    assert d["per_class"]["9"]["iou"] == 0.0  # predicted only: in the mean, as a miss
    p = _cli("eval", "--task", "semantic", "--gt", tmp_path / "gt", "--pred", tmp_path / "pred",
             "--num-classes", "12", "--json")
    assert p.returncode == 0 and "inferred" not in p.stdout + p.stderr


def test_bad_inputs_are_one_line_each(label_studio, tmp_path):
    # an image the JSON names but that is not there, beside ones that are
    (label_studio / "images" / "b71d0f22-shop.jpg").unlink()
    _one_line_error(_cli("convert", label_studio / "result.json", "-o", tmp_path / "a", "--to",
                         "folders"), "b71d0f22-shop.jpg", "not found", "--images")
    # an image whose size disagrees with the JSON
    write_image(label_studio / "images" / "b71d0f22-shop.jpg", _rgb(40, 41, 1))
    _one_line_error(_cli("convert", label_studio, "-o", tmp_path / "b", "--to", "folders"),
                    "b71d0f22-shop.jpg", "is 41x40", "says 40x40")
    # a panoptic JSON without its PNG folder
    src, coco = _panopticapi_layout(tmp_path)
    shutil.rmtree(coco / "annotations" / "panoptic_val2017")
    _one_line_error(_cli("eval", "--task", "panoptic", "--gt",
                         coco / "annotations" / "panoptic_val2017.json", "--pred", src),
                    "panoptic_val2017.json", "no folder panoptic_val2017/")
    # a JSON that is not COCO, and a format that is a folder given as a file
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    _one_line_error(_cli("convert", tmp_path / "x.json", "-o", tmp_path / "c", "--to", "voc"),
                    "x.json", "missing 'images'")
    with pytest.raises(SegflowError, match="voc datasets are folders"):
        open_dataset(tmp_path / "x.json", "voc")


def test_predict_detections_evaluate_by_file_name(tmp_path):
    """segflow predict's detections.json names images by file, not by COCO id."""
    gt = export_synthetic("retail", tmp_path / "gt", n=2, seed=3, size=64, fmt="coco",
                          progress=False)
    d = json.loads((gt / "annotations" / "instances_default.json").read_text())
    names = {im["id"]: im["file_name"] for im in d["images"]}
    dets = [{"file_name": names[a["image_id"]], "category_id": a["category_id"],
             "segmentation": a["segmentation"], "score": 0.8} for a in d["annotations"]]
    (tmp_path / "det.json").write_text(json.dumps(dets))
    # panoptic annotations beside the instances ones, as in Detectron2's coco/annotations/
    export_synthetic("retail", gt, n=2, seed=3, size=64, fmt="coco_panoptic", progress=False)
    assert detect(gt) == "coco_panoptic"
    p = _cli("eval", "--task", "instance", "--gt", gt, "--pred", tmp_path / "det.json", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["ap"] == pytest.approx(1.0)
    dets[0]["file_name"] = "nowhere.png"
    (tmp_path / "det.json").write_text(json.dumps(dets))
    _one_line_error(_cli("eval", "--task", "instance", "--gt", gt, "--pred", tmp_path / "det.json"),
                    "nowhere.png", "not among the ground truth's images")


def test_read_image_and_image_size_agree_on_exif_rotation(tmp_path):
    from segflow.io import image_size

    img = Image.fromarray(_rgb(20, 30, 4))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    img.save(tmp_path / "r.jpg", exif=exif)
    assert image_size(tmp_path / "r.jpg") == read_image(tmp_path / "r.jpg").shape[:2] == (30, 20)


@pytest.mark.parametrize("height,message", [
    (float("nan"), "needs a whole height and width"), (float("inf"), "needs a whole height"),
    ("tall", "needs a whole height"), (0, "sizes must be positive"),
    (2**40, "over the pixel cap"), (None, "needs a whole height"),
])
def test_coco_image_sizes_are_checked(tmp_path, height, message):
    d = {"images": [{"id": 1, "file_name": "a.png", "height": height, "width": 10}],
         "annotations": [], "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "a.json").write_text(json.dumps(d))
    with pytest.raises(SegflowError, match=message):
        open_dataset(tmp_path / "a.json")[0]


def test_schema_less_eval_refuses_instance_id_masks(tmp_path):
    from segflow.io import write_ids

    ids = np.arange(20 * 30, dtype=np.int32).reshape(20, 30) * 50  # object ids up to 29950
    write_ids(tmp_path / "gt" / "a.png", ids)
    write_ids(tmp_path / "pred" / "a.png", ids)
    _one_line_error(_cli("eval", "--task", "semantic", "--gt", tmp_path / "gt", "--pred",
                         tmp_path / "pred"), "ids up to 29950", "instance ids")
    _one_line_error(_cli("eval", "--task", "semantic", "--gt", tmp_path / "gt", "--pred",
                         tmp_path / "pred", "--num-classes", str(2**40)), "--num-classes")


def test_a_stray_json_is_no_dataset_and_paths_do_not_climb_out(tmp_path):
    (tmp_path / "photos").mkdir()
    write_image(tmp_path / "photos" / "a.png", _rgb(8, 8, 1))
    (tmp_path / "photos" / "meta.json").write_text(json.dumps({"camera": "x"}))
    with pytest.raises(SegflowError, match="cannot tell the dataset format"):
        detect(tmp_path / "photos")  # still a plain folder of images (the studio imports it)
    write_image(tmp_path / "secret.png", _rgb(8, 8, 2))
    d = {"images": [{"id": 1, "file_name": "../secret.png", "height": 8, "width": 8}],
         "annotations": [], "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "a.json").write_text(json.dumps(d))
    assert open_dataset(tmp_path / "ds" / "a.json")[0].image_path is None
    write_image(tmp_path / "ds" / "images" / "secret.png", _rgb(8, 8, 3))  # by its name: found
    assert open_dataset(tmp_path / "ds")[0].image_path == tmp_path / "ds" / "images" / "secret.png"
