"""What a user of the wheel gets: package data in the wheel, a light core that runs without
torch or the web stack, one line naming the extra otherwise, and extras that match the code.

The full check (the wheel installed into a clean venv, the README tour run from it) is
scripts/wheel_check.sh, run by `make wheel-check` in CI (.ci/run); these tests are its cheap half.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from segflow import _extras, resources
from segflow.errors import SegflowError
from segflow.io import write_image

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# A sitecustomize that makes the heavy extras unimportable, as in a light install.
BLOCKER = '''
import importlib.abc, os, sys
BLOCK = set(os.environ["SEGFLOW_TEST_BLOCK"].split(","))
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCK:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _Block())
'''
HEAVY = ["torch", "torchvision", "onnx", "onnxruntime", "fastapi", "starlette", "uvicorn",
         "sqlalchemy", "alembic", "psycopg", "argon2", "multipart", "python_multipart",
         # and every other extra's modules: the light core must not need them either
         *sorted({m for mods in _extras.EXTRAS.values() for m in mods})]


@pytest.fixture(scope="module")
def light(tmp_path_factory):
    """Run ``python -m segflow ...`` (or ``-c``) with torch and the web stack unimportable."""
    site = tmp_path_factory.mktemp("light-site")
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "SEGFLOW_TEST_BLOCK": ",".join(HEAVY),
           "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "src"),
                                          os.environ.get("PYTHONPATH", "")])}

    def run(*args, cwd):
        return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                              env=env, cwd=cwd, timeout=300)
    return run


def _one_line(p, *needles):
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_light_core_runs_the_classical_tour_without_torch_or_web_stack(light, tmp_path):
    p = light("-c", "import sys, segflow, segflow.cli.main, segflow.models, segflow.models.panoptic, "
              "segflow.train.config, segflow.pipeline, segflow.formats, segflow.metrics; "
              f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stderr
    img = np.zeros((60, 80), np.uint8)
    img[10:30, 10:30] = 200
    img[35:55, 40:70] = 180
    write_image(tmp_path / "blobs.png", img)
    assert light("-m", "segflow", "--help", cwd=tmp_path).returncode == 0
    p = light("-m", "segflow", "segment", "otsu", "blobs.png", "-o", "seg", "--json", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert '"n_objects": 2' in p.stdout
    p = light("-m", "segflow", "run", "objects", "blobs.png", "-o", "objects", cwd=tmp_path)
    assert p.returncode == 0 and (tmp_path / "objects" / "blobs_instances.png").is_file(), p.stderr
    p = light("-m", "segflow", "data", "synth", "street", "-n", "2", "--size", "64", "-o", "street",
              cwd=tmp_path)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("args,extra", [
    (["train", "street_unet"], "deep"),
    (["predict", "m.pt", "blobs.png", "-o", "pred"], "deep"),
    (["export", "m.pt"], "deep"),
    (["models", "show", "m.pt"], "deep"),
    (["studio", "--data", "studio-data"], "studio"),
    (["studio", "create-admin", "--username", "a", "--password", "long-enough-pw"], "studio"),
])
def test_a_command_of_a_missing_extra_names_it_in_one_line(light, tmp_path, args, extra):
    _one_line(light("-m", "segflow", *args, cwd=tmp_path), f"pip install 'segflow[{extra}]'")


def test_library_imports_of_a_missing_extra_name_it(light, tmp_path):
    p = light("-c", "from segflow.models import create_model", cwd=tmp_path)
    assert "MissingExtraError" in p.stderr and "pip install 'segflow[deep]'" in p.stderr
    p = light("-c", "import segflow.studio.app", cwd=tmp_path)
    assert "pip install 'segflow[studio]'" in p.stderr


def test_require():
    _extras.require("deep")  # installed here
    with pytest.raises(_extras.MissingExtraError, match=r"segflow x needs the 'deep' extra "
                       r"\(no_such_module_zz is not installed\): pip install 'segflow\[deep\]'$"):
        _extras.require("deep", modules=("no_such_module_zz",), what="segflow x")
    e = _extras.MissingExtraError("m")
    assert isinstance(e, SegflowError) and isinstance(e, ImportError) and e.exit_code == 2
    with pytest.raises(ValueError, match="unknown extra"):
        _extras.require("nope")
    assert _extras.extra_for_module("torch.nn") == "deep"
    assert _extras.extra_for_module("sqlalchemy.orm") == "studio"
    assert _extras.extra_for_module("numpy") is None and _extras.extra_for_module(None) is None


def _dist_names(reqs):
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def test_core_has_no_heavy_dependency_and_extras_hold_what_the_code_checks():
    core = _dist_names(PYPROJECT["project"]["dependencies"])
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert not core & {"torch", "torchvision", "onnx", "onnxruntime", "fastapi", "uvicorn",
                       "sqlalchemy", "alembic", "psycopg", "argon2-cffi"}
    module_to_dist = {"argon2": "argon2-cffi", "multipart": "python-multipart"}
    for extra, modules in _extras.EXTRAS.items():
        dists = _dist_names(extras[extra])
        for m in modules:
            assert module_to_dist.get(m, m).lower() in dists, (extra, m)
    def self_extras(reqs):
        return {e.strip() for r in reqs if r.startswith("segflow[")
                for e in r[len("segflow["):r.index("]")].split(",")}

    assert {"deep", "studio"} <= self_extras(extras["all"])
    assert {"all", "docs"} <= self_extras(extras["dev"])  # make test installs everything
    # lower bounds, never exact pins, in pyproject
    for r in PYPROJECT["project"]["dependencies"] + [r for v in extras.values() for r in v]:
        assert "==" not in r, r


def test_constraints_pin_every_direct_dependency():
    pinned = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not NAME==VERSION"
            pinned[name.lower().replace("_", "-")] = version
    assert pinned["torch"] == "2.14.1" and pinned["torchvision"] == "0.29.1"
    extras = PYPROJECT["project"]["optional-dependencies"]
    reqs = PYPROJECT["project"]["dependencies"] + [
        r for k, v in extras.items() if k != "bench" for r in v if not r.startswith("segflow[")]
    missing = sorted(_dist_names(reqs) - set(pinned))
    assert not missing, f"add NAME==VERSION to constraints.txt for {missing}"


def test_examples_list_show_and_copy(tmp_path):
    from typer.testing import CliRunner

    from segflow.cli.main import app

    r = CliRunner().invoke(app, ["examples", "--json"])
    assert r.exit_code == 0 and '"street_unet"' in r.output and '"cells"' in r.output
    r = CliRunner().invoke(app, ["examples", "show", "cells"])
    assert r.output == resources.read_text("pipelines", "cells")
    r = CliRunner().invoke(app, ["examples", "copy", str(tmp_path)])
    assert r.exit_code == 0
    for kind in resources.KINDS:
        for name in resources.names(kind):
            assert (tmp_path / kind / f"{name}.yaml").read_text() == resources.read_text(kind, name)
    (tmp_path / "pipelines" / "cells.yaml").write_text("edited")
    CliRunner().invoke(app, ["examples", "copy", str(tmp_path), "--only", "cells"])
    assert (tmp_path / "pipelines" / "cells.yaml").read_text() == "edited"  # kept without --force
    CliRunner().invoke(app, ["examples", "copy", str(tmp_path), "--only", "cells", "--force"])
    assert (tmp_path / "pipelines" / "cells.yaml").read_text() != "edited"
    r = CliRunner().invoke(app, ["examples", "show", "../../etc/passwd"])
    assert r.exit_code != 0 and "no example named" in str(r.exception)


def test_a_shipped_config_loads_by_name():
    from segflow.train import load_config

    cfg = load_config("street_unet")
    assert cfg.name == "street-unet" and cfg.model.name == "unet"
    assert cfg.data.train == "data/street-train"  # relative to the working folder


def test_wheel_ships_pipelines_configs_templates_and_no_source_tree_paths(tmp_path):
    # Build from a copy of what an sdist holds: an in-tree build/ could carry stale files.
    proj = tmp_path / "proj"
    shutil.copytree(ROOT / "src", proj / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, proj / f)
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                        "--no-build-isolation", "-w", str(tmp_path / "dist"), str(proj)],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("segflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    src = ROOT / "src"
    for sub in ("segflow/resources/pipelines", "segflow/resources/configs", "segflow/templates",
                "segflow/studio/templates", "segflow/studio/static"):
        files = [f.relative_to(src).as_posix() for f in (src / sub).iterdir() if f.is_file()]
        assert files and set(files) <= names, sorted(set(files) - names)
    assert "segflow/py.typed" in names
    assert not [n for n in names if n.startswith(("pipelines/", "configs/", "tests/"))]
    # no code looks for files in the source tree any more
    offenders = [str(f) for f in (src / "segflow").rglob("*.py")
                 if re.search(r"parents\[\d\]\s*/\s*\"(pipelines|configs)\"", f.read_text())]
    assert not offenders


def test_an_unguarded_import_of_an_extra_still_gives_one_line(monkeypatch, capsys):
    from segflow.cli import main as cli

    def boom(**kw):
        raise ModuleNotFoundError("No module named 'sqlalchemy'", name="sqlalchemy")

    monkeypatch.setattr(cli, "app", boom)
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err == ("error: this needs the 'studio' extra (sqlalchemy is not installed): "
                   "pip install 'segflow[studio]'\n")

    def other(**kw):
        raise ModuleNotFoundError("No module named 'zzz'", name="zzz")

    monkeypatch.setattr(cli, "app", other)
    with pytest.raises(SystemExit) as e:
        cli.main()
    assert e.value.code == 1 and "a bug in segflow" in capsys.readouterr().err


def test_light_core_reads_a_model_registry(light, tmp_path):
    from segflow.registry import ModelRegistry

    (tmp_path / "m.pt").write_bytes(b"weights")
    rec = ModelRegistry(tmp_path / "data" / "models").record(
        tmp_path / "m.pt", task="semantic", model="unet", config={}, dataset={}, metrics={"miou": 0.5})
    p = light("-m", "segflow", "models", "list", "data", "--json", cwd=tmp_path)
    assert p.returncode == 0 and rec.id in p.stdout, p.stderr
    p = light("-m", "segflow", "models", "show", rec.id, "--data", "data", cwd=tmp_path)
    assert p.returncode == 0 and "miou" in p.stdout, p.stderr
