"""One registry of formats: every format writes from the one Sample shape, is detected as
itself, reads back, and every list of format names (CLI help, synth, studio) is the registry's."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from segflow.formats import FORMAT_NAMES, FORMATS, detect, open_dataset
from segflow.synth.export import export_synthetic

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_every_format_writes_synth_detects_and_reads_back(fmt, tmp_path):
    out = export_synthetic("retail", tmp_path / fmt, n=2, seed=4, size=64, fmt=fmt, progress=False)
    assert detect(out) == fmt
    ds = open_dataset(out)
    assert len(ds) == 2 and ds.kind == FORMATS[fmt].carries
    ref = open_dataset(export_synthetic("retail", tmp_path / "ref", n=2, seed=4, size=64,
                                        progress=False))
    for a, b in zip(ref, ds):
        assert np.array_equal(a.image(), b.image())
        if fmt != "yolo":  # yolo keeps polygons, not masks (its 'loses' says so)
            objs = sorted(i.mask.sum() for i in b.instances.items if not i.iscrowd)
            assert objs == sorted(i.mask.sum() for i in a.instances.items if not i.iscrowd)


def test_every_list_of_names_is_the_registry():
    from segflow.studio.schemas import ExportIn
    from segflow.synth.export import EXPORT_FORMATS

    assert tuple(ExportIn.model_json_schema()["properties"]["format"]["enum"]) == FORMAT_NAMES
    assert EXPORT_FORMATS == (*FORMAT_NAMES, "geotiff")  # + georeferenced synthetic scenes (geo)
    for args in (["convert", "--help"], ["data", "synth", "--help"]):
        p = subprocess.run([sys.executable, "-m", "segflow", *args], capture_output=True,
                           text=True, cwd=ROOT, timeout=120, env={**os.environ, "COLUMNS": "200"})
        assert p.returncode == 0, p.stderr
        for name in FORMAT_NAMES:  # `convert --help` used to omit yolo
            assert name in p.stdout, (args, name)


def test_each_format_states_what_it_loses():
    assert set(FORMATS["coco"].loses) == {"stuff"}
    assert "exact masks" in FORMATS["yolo"].loses and "crowd" in FORMATS["voc"].loses
    assert "crowd" not in FORMATS["coco_panoptic"].loses  # segments_info keeps iscrowd
