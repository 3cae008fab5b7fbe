"""The Ray engine writes what the local engine writes, on a folder and on an S3 prefix (moto's
S3 server on 127.0.0.1); storage and engine mistakes are one line each, with nothing written
that looks finished (run.json is written last)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segflow.io import write_image
from segflow.pipeline import load_pipeline, run_pipeline
from tests.conftest import free_port, moto_s3

ROOT = Path(__file__).resolve().parents[1]


def _images(root: Path) -> Path:
    """Six small images (two in a sub-folder) and one file that is no image."""
    rng = np.random.default_rng(0)
    for k in range(6):
        img = rng.integers(0, 60, (40 + 4 * k, 56), dtype=np.uint8)
        img[8:20, 10 + k:30] = 200
        write_image(root / ("sub" if k >= 4 else "") / f"im{k}.png", img)
    (root / "broken.png").write_bytes(b"not a png")
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "run.json"}


def _summary(run_json: bytes) -> list[tuple]:
    d = json.loads(run_json)
    return [(r["input"].rsplit("/", 1)[-1], r["ok"], r["threshold"], r["n_objects"],
             r["error"] is not None, len(r["outputs"])) for r in d["results"]]


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on loopback; the usual AWS environment points at it."""
    with moto_s3("bucket") as (fs, env):
        yield fs, env


@pytest.fixture(scope="module")
def ray_engine(s3):
    """One small local Ray for the module (started after the S3 environment, which its workers
    inherit): 2 CPUs, no dashboard."""
    ray = pytest.importorskip("ray")
    from segflow.engines import get_engine

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             object_store_memory=128 * 2**20)
    yield get_engine("ray", workers=2)
    ray.shutdown()


def test_ray_writes_what_local_writes_on_a_folder(ray_engine, tmp_path, monkeypatch):
    src = _images(tmp_path / "in")
    spec = load_pipeline("objects")
    a = run_pipeline(spec, [src], tmp_path / "local", progress=False)
    monkeypatch.setattr("segflow.engines.ray.chunk_size", lambda n, cpus: 3)  # 3 images a task
    b = run_pipeline(spec, [src], tmp_path / "ray", progress=False, engine=ray_engine)
    ta, tb = _tree(tmp_path / "local"), _tree(tmp_path / "ray")
    assert len(ta) == 6 * 4 and "sub/im5_regions.json" in ta  # masks, objects, regions, overlays
    assert ta == tb  # byte for byte
    assert _summary((tmp_path / "local" / "run.json").read_bytes()) == \
        _summary((tmp_path / "ray" / "run.json").read_bytes())
    fa, fb = [r.error for r in a.failures], [r.error for r in b.failures]
    assert fa == fb and len(fa) == 1 and "broken.png" in fa[0]  # reported per image, as locally


def test_ray_writes_what_local_writes_on_an_s3_prefix(ray_engine, s3, tmp_path):
    fs, _ = s3
    src = _images(tmp_path / "in")
    fs.put(str(src) + "/", "bucket/in/", recursive=True)
    spec = load_pipeline("objects")
    run_pipeline(spec, ["s3://bucket/in"], "s3://bucket/out-local", progress=False)
    rep = run_pipeline(spec, ["s3://bucket/in"], "s3://bucket/out-ray", progress=False,
                       engine=ray_engine)
    run_pipeline(spec, [src], tmp_path / "folder", progress=False)  # the same, from a folder
    got = {}
    for name in ("out-local", "out-ray"):
        fs.get(f"bucket/{name}/", str(tmp_path / name) + "/", recursive=True)
        got[name] = _tree(tmp_path / name)
    assert got["out-local"] == got["out-ray"]
    folder = _tree(tmp_path / "folder")
    assert set(got["out-ray"]) == set(folder)
    for k, v in folder.items():  # the same pixels; only the input's name differs in the JSON
        if not k.endswith(".json"):
            assert got["out-ray"][k] == v, k
    regions = json.loads(got["out-ray"]["sub/im4_regions.json"])
    assert regions["input"] == "s3://bucket/in/sub/im4.png"
    assert all(o.startswith("s3://bucket/out-ray/") for r in rep.results for o in r.outputs)
    assert _summary(fs.cat("bucket/out-local/run.json")) == _summary(fs.cat("bucket/out-ray/run.json"))


def _cli(*args, env=None):
    e = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "segflow", *map(str, args)], capture_output=True,
                          text=True, env=e, timeout=300)


def _one_line(p, *needles):
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_bad_engine_input_is_one_line(tmp_path):
    src = _images(tmp_path / "in")
    port = free_port()  # nothing listens there
    _one_line(_cli("run", "otsu", src, "-o", tmp_path / "o1", "--engine", "ray",
                   "--ray-address", f"127.0.0.1:{port}"), "cannot reach a Ray cluster")
    _one_line(_cli("run", "otsu", src, "-o", tmp_path / "o2", "--engine", "spark"),
              "--engine must be one of local, ray")
    _one_line(_cli("run", "otsu", src, "-o", tmp_path / "o3", "--engine", "ray",
                   "--ray-address", "nowhere"), "HOST:PORT")
    _one_line(_cli("run", "otsu", "xyz://a/b", "-o", tmp_path / "o4"), "xyz://a/b")
    assert not any((tmp_path / f"o{k}").exists() for k in range(1, 5))


def test_bad_storage_input_is_one_line_and_writes_nothing(s3, tmp_path):
    fs, env = s3
    src = _images(tmp_path / "in")
    _one_line(_cli("run", "otsu", src, "-o", "s3://no-such-bucket/out", env=env),
              "s3://no-such-bucket/out", "no such bucket")
    _one_line(_cli("run", "otsu", "s3://no-such-bucket/in", "-o", tmp_path / "o", env=env),
              "no such bucket")
    no_creds = {**env, "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                "AWS_CONFIG_FILE": str(tmp_path / "none")}
    p = _cli("run", "otsu", src, "-o", "s3://bucket/nocreds", env=no_creds)
    _one_line(p, "no credentials")
    assert "testing" not in p.stderr  # credentials are never printed
    assert not fs.exists("bucket/nocreds") and not (tmp_path / "o").exists()


def test_an_interrupted_remote_run_has_no_run_json(s3, tmp_path, monkeypatch):
    """run.json is the marker written last: a run that dies midway leaves none."""
    fs, _ = s3
    src = _images(tmp_path / "in")
    from segflow.pipeline import runner

    real = runner._safe_run

    def dies_at_the_third(spec, path, *a, **k):
        if Path(path).name == "im1.png":  # after broken.png and im0.png
            raise KeyboardInterrupt
        return real(spec, path, *a, **k)

    monkeypatch.setattr(runner, "_safe_run", dies_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(load_pipeline("otsu"), [src], "s3://bucket/cut", progress=False)
    fs.invalidate_cache()
    done = fs.find("bucket/cut")
    assert "bucket/cut/im0_mask.png" in done and "bucket/cut/run.json" not in done


def _checkpoint(path: Path) -> Path:
    """An untrained 3-class U-Net: prediction only needs its weights to be fixed."""
    torch = pytest.importorskip("torch")
    from segflow.models import create_model
    from segflow.train import checkpoint as ckpt

    torch.manual_seed(0)
    args = {"num_classes": 3, "depth": 2, "base_width": 8}
    m = create_model("unet", **args)
    classes = [{"id": i, "name": f"c{i}"} for i in range(3)]
    return ckpt.save(path, model={"name": "unet", "args": args}, state_dict=m.state_dict(),
                     schema={"classes": classes, "ignore_index": 255}, config={})


@pytest.mark.slow
def test_predict_on_ray_writes_what_local_writes(ray_engine, s3, tmp_path):
    from segflow.predict.predictor import Predictor

    fs, _ = s3
    src = _images(tmp_path / "in")
    ck = _checkpoint(tmp_path / "m.pt")
    fs.put_file(str(ck), "bucket/models/m.pt")
    fs.put(str(src) + "/", "bucket/pin/", recursive=True)
    w1, f1 = Predictor(ck, device="cpu").run([src], tmp_path / "local", progress=False)
    pr = Predictor("s3://bucket/models/m.pt", device="cpu")
    w2, f2 = pr.run(["s3://bucket/pin"], "s3://bucket/pred", progress=False, engine=ray_engine)
    fs.get("bucket/pred/", str(tmp_path / "ray") + "/", recursive=True)
    local, ray = _tree(tmp_path / "local"), _tree(tmp_path / "ray")
    assert len(local) == 2 * 6 and local == ray  # mask + overlay per image, byte for byte
    assert len(f1) == len(f2) == 1 and "broken.png" in f2[0] and f2[0].startswith("s3://")
    assert sorted(w.rsplit("/", 1)[-1] for w in w2) == sorted(Path(w).name for w in w1)


def _mask_pairs(root: Path) -> tuple[Path, Path]:
    from segflow.io import write_mask

    rng = np.random.default_rng(3)
    for k in range(5):
        gt = rng.integers(0, 3, (30, 40), dtype=np.uint8)
        pred = np.where(rng.random((30, 40)) < 0.8, gt, rng.integers(0, 3, (30, 40))).astype(np.uint8)
        gt[0, :k] = 255  # some ignored pixels
        write_mask(root / "gt" / f"m{k}.png", gt)
        write_mask(root / "pred" / f"m{k}.png", pred)
    return root / "gt", root / "pred"


def test_eval_on_ray_is_the_one_pass_result(ray_engine, s3, tmp_path):
    from segflow.evaluate import evaluate_semantic

    gt, pred = _mask_pairs(tmp_path)
    a = evaluate_semantic(gt, pred, boundary_tolerance=1)
    b = evaluate_semantic(gt, pred, boundary_tolerance=1, engine=ray_engine)
    assert json.dumps(a[0].to_dict()) == json.dumps(b[0].to_dict()) and a[2] == b[2]

    fs, env = s3  # and from an S3 prefix, through the CLI
    fs.put(str(tmp_path) + "/", "bucket/evalset/", recursive=True)
    p = _cli("eval", "--task", "semantic", "--gt", "s3://bucket/evalset/gt", "--pred",
             "s3://bucket/evalset/pred", "--json", env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["miou"] == pytest.approx(a[0].miou)


def test_studio_image_store_on_s3_is_shared_by_two_machines(s3, tmp_path):
    """Two studio processes with their own local folders (two machines) and one --store: an
    image one stores, the other reads; a missing bucket is one line at start."""
    pytest.importorskip("fastapi")
    from segflow.errors import SegflowError
    from segflow.io import read_image
    from segflow.studio.services.storage import ImageStore

    fs, _ = s3
    src = _images(tmp_path / "in") / "im1.png"
    a = ImageStore(tmp_path / "a", "s3://bucket/studio")
    b = ImageStore(tmp_path / "b", "s3://bucket/studio")
    sha, ext, pixels = a.add_bytes(src.read_bytes(), "im1.png")
    assert fs.cat(f"bucket/studio/images/{sha[:2]}/{sha}.{ext}") == src.read_bytes()
    assert not (tmp_path / "b" / "images" / sha[:2]).exists()
    np.testing.assert_array_equal(b.read(sha, ext), read_image(src))
    assert b.path(sha, ext).read_bytes() == src.read_bytes()  # now cached on "b"
    with pytest.raises(SegflowError, match="no such bucket"):
        ImageStore(tmp_path / "c", "s3://no-such-bucket/studio")
