"""Pipeline validation by each step's ``needs`` and ``makes``: an order that would fail at run
time is refused before any image is read, with one line naming the step and what it needs."""

import numpy as np
import pytest

from segflow.errors import ConfigError
from segflow.pipeline import STEPS, parse_pipeline
from segflow.pipeline.runner import apply_pipeline


@pytest.mark.parametrize("steps,message", [
    # slic makes labelled superpixels, not a mask: open has nothing to work on (issue 12)
    (["slic", "open"], "p.yaml: step 2 (open) needs a mask, but no step before it makes one; "
                       "put one of grabcut, kmeans, threshold before it"),
    (["slic", "label"], "step 2 (label) needs a mask"),
    (["slic", "apply_mask"], "step 2 (apply_mask) needs a mask"),
    # open replaces the mask, so the objects labelled before it are gone at run time
    (["threshold", "label", "open", "regions"],
     "step 4 (regions) needs labelled objects, but step 3 (open) replaced what they came from"),
    ([{"threshold": {"method": "multi_otsu"}}, "fill_holes"],
     "step 2 (fill_holes) needs a binary mask, but step 1 (threshold) makes several classes"),
    ([{"kmeans": {"k": 4}}, "label"], "step 2 (label) needs a binary mask, but step 1 (kmeans)"),
])
def test_order_is_refused_at_validation(steps, message):
    with pytest.raises(ConfigError) as e:
        parse_pipeline({"steps": steps}, source="p.yaml")
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("steps", [
    ["slic", "regions"],
    ["threshold", "open", "label", "regions"],
    ["threshold", "label", "regions", "open", "label", "regions"],
    [{"kmeans": {"k": 2}}, "label", "regions"],
    [{"kmeans": {"k": "auto"}}],
    ["grayscale", "threshold", "fill_holes", "watershed", "regions"],
])
def test_every_order_that_validates_also_runs(steps):
    """The validator and the step functions agree: what passes validation runs."""
    rng = np.random.default_rng(0)
    img = (rng.random((40, 50, 3)) * 60).astype(np.uint8)
    img[10:30, 10:25] += 150
    img[12:28, 30:45] += 120
    st = apply_pipeline(parse_pipeline({"steps": steps}), img)
    last = STEPS[parse_pipeline({"steps": steps}).steps[-1].name]
    for made in last.makes:
        assert getattr(st, made) is not None


def test_runner_reads_what_a_step_makes_not_its_name(tmp_path, monkeypatch):
    """A new step that makes labels is saved as an id map by --save-steps, with no list of
    step names to update (the runner reads ``makes``)."""
    from dataclasses import replace

    from segflow.io import read_mask, write_image
    from segflow.pipeline.runner import run_image

    monkeypatch.setitem(STEPS, "my_superpixels", replace(STEPS["slic"]))
    img = np.zeros((30, 40, 3), np.uint8)
    img[:, 20:] = 200
    write_image(tmp_path / "a.png", img)
    spec = parse_pipeline({"steps": [{"my_superpixels": {"n_segments": 300}}]})
    r = run_image(spec, tmp_path / "a.png", tmp_path / "out", save_steps=True)
    saved = [p for p in r.outputs if "01_my_superpixels" in p][0]
    ids = read_mask(saved)
    assert ids.dtype == np.uint16 and ids.max() > 2  # object ids, not a grey rendering
