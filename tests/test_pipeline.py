"""Pipeline validation and runs over files and folders."""

import json
from pathlib import Path

import numpy as np
import pytest

from segflow.errors import ConfigError
from segflow.io import read_mask, write_image
from segflow.ops import label, threshold
from segflow.pipeline import load_pipeline, parse_pipeline, run_pipeline


def test_builtin_pipelines_are_package_data():
    from segflow import resources

    assert set(resources.names("pipelines")) == {"coins", "otsu", "objects", "kmeans", "cells",
                                                 "document"}
    with pytest.raises(ConfigError, match="no such pipeline file.*cells, coins"):
        load_pipeline("no_such_pipeline")
    with pytest.raises(ConfigError, match="no such pipeline"):
        load_pipeline("../pipelines/cells")  # names only, never a path out of the package


@pytest.mark.parametrize("name", ["coins", "otsu", "objects", "kmeans", "cells", "document"])
def test_shipped_pipelines_validate(name):
    spec = load_pipeline(name)  # built-in: package data
    assert spec.steps and spec.name == name


@pytest.mark.parametrize("steps,message", [
    ([{"blurr": {}}], "step 1: unknown step 'blurr'; allowed steps: grayscale"),
    (["grayscale", {"blur": {"sigmaa": 2}}], "step 2 (blur): unknown parameter 'sigmaa'"),
    ([{"blur": {"method": "box"}}], "step 1 (blur): method: .*allowed values: gaussian, median"),
    ([{"blur": {"sigma": -1}}], "step 1 (blur): sigma: "),
    ([{"threshold": {"classes": 9}}], "step 1 (threshold): classes"),
    (["grayscale", "label"], "step 2 (label) needs a mask, but no step before it makes one; "
                             "put one of .*threshold"),
    (["threshold", "regions"], "step 2 (regions) needs labelled objects"),
    ([42], "step 1: write a step as"),
])
def test_validation_names_position_and_allowed_values(steps, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_pipeline({"steps": steps}, source="p.yaml")


def test_bad_yaml_and_unknown_keys(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("steps:\n  - blur: {sigma: 2\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML at line"):
        load_pipeline(p)
    p.write_text("stepz: []\n")
    with pytest.raises(ConfigError, match="unknown top-level key"):
        load_pipeline(p)
    with pytest.raises(ConfigError, match="no such pipeline"):
        load_pipeline(tmp_path / "missing.yaml")


def test_json_pipeline(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"steps": [{"threshold": {"method": "li"}}]}))
    assert load_pipeline(p).steps[0].params.method == "li"


def test_run_writes_outputs_equal_to_library_calls(tmp_path, samples):
    img = samples["coins"]
    write_image(tmp_path / "in" / "coins.png", img)
    spec = parse_pipeline({"steps": ["threshold", "label", "regions"]})
    rep = run_pipeline(spec, [tmp_path / "in"], tmp_path / "out", progress=False)
    assert not rep.failures
    r = rep.results[0]
    t = threshold(img, "otsu")
    assert r.threshold == t.threshold
    assert np.array_equal(read_mask(tmp_path / "out" / "coins_mask.png"), t.mask)
    assert np.array_equal(read_mask(tmp_path / "out" / "coins_instances.png"), label(t.mask))
    data = json.loads((tmp_path / "out" / "coins_regions.json").read_text())
    assert data["n_objects"] == len(data["regions"]) == label(t.mask).max()
    assert (tmp_path / "out" / "coins_overlay.png").exists()
    assert json.loads((tmp_path / "out" / "run.json").read_text())["failed"] == 0


def test_folder_with_corrupt_file_finishes_the_others(tmp_path, samples):
    src = tmp_path / "in"
    for i in range(3):
        write_image(src / "sub" / f"ok{i}.png", samples["camera"][i * 10:])
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    spec = load_pipeline("otsu")
    rep = run_pipeline(spec, [src], tmp_path / "out", progress=False)
    assert len(rep.results) == 4
    assert [Path(f.input).name for f in rep.failures] == ["broken.png"]
    assert "broken.png" in rep.failures[0].error
    for i in range(3):  # sub-folders mirrored in the output
        assert (tmp_path / "out" / "sub" / f"ok{i}_mask.png").exists()


def test_two_workers_give_the_same_outputs(tmp_path, samples):
    src = tmp_path / "in"
    for i, n in enumerate(["coins", "camera", "moon", "page"]):
        write_image(src / f"{i}.png", samples[n])
    spec = load_pipeline("objects")
    a = run_pipeline(spec, [src], tmp_path / "a", workers=1, progress=False)
    b = run_pipeline(spec, [src], tmp_path / "b", workers=2, progress=False)
    assert [r.threshold for r in a.results] == [r.threshold for r in b.results]
    for i in range(4):
        assert np.array_equal(read_mask(tmp_path / "a" / f"{i}_instances.png"),
                              read_mask(tmp_path / "b" / f"{i}_instances.png"))


def test_save_steps_writes_every_intermediate(tmp_path, samples):
    write_image(tmp_path / "c.png", samples["coins"])
    spec = load_pipeline("coins")
    rep = run_pipeline(spec, [tmp_path / "c.png"], tmp_path / "out", save_steps=True,
                       progress=False)
    steps = sorted(p.name for p in (tmp_path / "out" / "c_steps").iterdir())
    assert len(steps) == len(spec.steps) and steps[0] == "01_blur.png"
    assert rep.results[0].n_objects == 24  # the 24 coins of skimage's sample, each found once


def test_cells_pipeline_splits_touching_objects(tmp_path):
    from tests.conftest import touching_discs

    write_image(tmp_path / "d.png", touching_discs(noise=5))
    spec = load_pipeline("cells")
    rep = run_pipeline(spec, [tmp_path / "d.png"], tmp_path / "out", progress=False)
    assert rep.results[0].n_objects == 2
