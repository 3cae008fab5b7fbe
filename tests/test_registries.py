"""One list per kind: every threshold method and every model of the registries is accepted
and works everywhere that names them (ops, pipeline spec, CLI, studio, training configs)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from segflow.errors import ConfigError, ParameterError
from segflow.models.registry import MODELS, model_info, model_names
from segflow.ops.threshold import THRESHOLD_METHODS, threshold, threshold_value
from segflow.pipeline import parse_pipeline, run_image


@pytest.fixture(scope="module")
def two_blobs():
    img = np.full((64, 96), 30, np.uint8)
    img[8:30, 8:40] = 200
    img[36:58, 50:90] = 220
    return img


def _params(name):
    return {"value": 100} if THRESHOLD_METHODS[name].kind == "fixed" else \
        {"block_size": 31, "offset": -5} if THRESHOLD_METHODS[name].kind == "local" else {}


@pytest.mark.parametrize("name", list(THRESHOLD_METHODS))
def test_every_threshold_method_runs_in_ops_and_in_a_pipeline(name, two_blobs, tmp_path):
    r = threshold(two_blobs, name, **_params(name))
    assert r.mask.shape == two_blobs.shape and r.mask.dtype == np.uint8
    if THRESHOLD_METHODS[name].binary:
        assert set(np.unique(r.mask)) <= {0, 1} and r.mask[15, 20] == 1 and r.mask[2, 2] == 0
    else:
        assert r.mask.max() >= 1
    spec = parse_pipeline({"steps": [{"threshold": {"method": name, **_params(name)}}]})
    from segflow.io import write_image

    write_image(tmp_path / "b.png", two_blobs)
    res = run_image(spec, tmp_path / "b.png", tmp_path / "out")
    assert res.outputs


@pytest.mark.parametrize("name", list(THRESHOLD_METHODS))
def test_every_threshold_method_is_a_cli_method(name, two_blobs, tmp_path):
    from segflow.io import write_image

    write_image(tmp_path / "b.png", two_blobs)
    extra = [a for k, v in _params(name).items() for a in (f"--{k}", str(v))]
    p = subprocess.run([sys.executable, "-m", "segflow", "segment", name, str(tmp_path / "b.png"),
                        "-o", str(tmp_path / "o"), "--json", *extra],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    if THRESHOLD_METHODS[name].binary:
        assert d["n_objects"] == 2


def test_threshold_names_come_from_the_registry_everywhere():
    from segflow.cli.main import _SEGMENTERS
    from segflow.pipeline.steps import STEPS, ThresholdParams
    from segflow.studio.schemas import Assist
    from segflow.studio.services.assist import THRESHOLD_TOOL_METHODS

    for name in THRESHOLD_METHODS:
        assert ThresholdParams(method=name).method == name and name in _SEGMENTERS
        assert name in STEPS["threshold"].doc
    for name in THRESHOLD_TOOL_METHODS:
        assert Assist(tool="threshold", method=name).method == name
    assert {"otsu", "adaptive", "li", "adaptive_mean"} <= set(THRESHOLD_TOOL_METHODS)
    with pytest.raises(ConfigError, match="step 1 \\(threshold\\)"):
        parse_pipeline({"steps": [{"threshold": {"method": "otsu2"}}]})


@pytest.mark.parametrize("bad", ["otsu2", "", None, 3, ["otsu"], "OTSU"])
def test_unknown_threshold_methods_are_refused_in_one_line(two_blobs, bad):
    with pytest.raises(ParameterError, match="unknown method"):
        threshold(two_blobs, bad)
    with pytest.raises(ParameterError, match="unknown automatic method"):
        threshold_value(two_blobs, bad)


def test_threshold_value_refuses_a_non_automatic_method_even_on_a_constant_image():
    with pytest.raises(ParameterError, match="unknown automatic method 'fixed'"):
        threshold_value(np.full((8, 8), 7, np.uint8), "fixed")


def test_studio_assist_runs_every_threshold_tool_method(two_blobs):
    from segflow.studio.services.assist import THRESHOLD_TOOL_METHODS, threshold_region

    rgb = np.dstack([two_blobs] * 3)
    for name in THRESHOLD_TOOL_METHODS:
        region = threshold_region(rgb, (20, 15), method=name)
        assert region[15, 20] and not region[50, 20], name


def test_models_registry_drives_the_config_validator():
    from segflow.train import parse_config

    for name, info in MODELS.items():
        cfg = parse_config({"task": info.task, "data": {"train": "x"}, "model": {"name": name}})
        assert cfg.model.name == name
    with pytest.raises(ConfigError, match="model.name"):
        parse_config({"data": {"train": "x"}, "model": {"name": "segformer"}})
    with pytest.raises(ConfigError, match="task instance needs model maskrcnn, not unet"):
        parse_config({"task": "instance", "data": {"train": "x"}, "model": {"name": "unet"}})
    assert model_names("instance") == ("maskrcnn",)
    with pytest.raises(Exception, match="unknown model 'x'; use one of unet"):
        model_info("x")


@pytest.mark.parametrize("name", [n for n in model_names("semantic") if MODELS[n].stride is not None])
def test_registry_stride_is_the_networks_real_stride(name):
    """The raw network maps an odd multiple of the registry's stride to the same size (a stride
    claimed too small fails there), and create_model pads any size to it."""
    import torch

    from segflow.models import create_model

    info = MODELS[name]
    args = {"num_classes": 3, **({"depth": 3, "base_width": 8} if name == "unet" else {})}
    model = create_model(name, **args).eval()
    stride = info.stride(args)
    assert model.stride == stride
    with torch.no_grad():
        y = model.net(torch.rand(1, 3, stride * 3, stride * 3))
        assert y.shape[-2:] == (stride * 3, stride * 3)
        assert model(torch.rand(1, 3, 37, 53)).shape[-2:] == (37, 53)
    assert MODELS["unet"].stride({"depth": 5}) == 32 and MODELS["unet"].stride({}) == 16


def test_cli_help_reads_the_models_registry():
    from segflow.cli.models import TRAIN_EPILOG

    for name, info in MODELS.items():
        assert f"`{name}` ({info.task}) {info.summary}" in TRAIN_EPILOG
