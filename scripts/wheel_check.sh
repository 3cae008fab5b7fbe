#!/usr/bin/env bash
# The wheel as a user gets it: build it, install it (not editable) into a clean venv with only the
# core dependencies -- no torch, no web stack -- and run the README tour's light commands from a
# folder outside the checkout. Catches missing package data and eager imports of an extra.
#
#   scripts/wheel_check.sh                    # BUILD_PY builds the wheel, PY makes the venv
#   BUILD_PY=.venv/bin/python PY=python3 KEEP=1 scripts/wheel_check.sh
#
# Needs the package index for the core dependencies (pinned by constraints.txt; pip's cache makes
# a rerun fast). Exit 0 when every check passed; the first failure stops it with its output.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-python3}"
BUILD_PY="${BUILD_PY:-$([ -x "$root/.venv/bin/python" ] && echo "$root/.venv/bin/python" || echo "$PY")}"
# A relative BUILD_PY (the Makefile passes .venv/bin/python) means relative to where we were
# called from; the build runs in another folder, so make it absolute now.
case "$BUILD_PY" in */*) [ "${BUILD_PY#/}" != "$BUILD_PY" ] || BUILD_PY="$PWD/$BUILD_PY" ;; esac
work="$(mktemp -d "${TMPDIR:-/tmp}/segflow-wheel.XXXXXX")"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
unset PYTHONPATH  # nothing from the checkout may leak in
step() { printf '== %s\n' "$*"; }

step "build the wheel"
# From a copy of what an sdist holds (an in-tree build/ could carry stale files), with the dev
# venv's setuptools (--no-build-isolation: building needs no download).
mkdir -p "$work/proj"
cp "$root/pyproject.toml" "$root/README.md" "$work/proj/"
(cd "$root" && tar cf - --exclude=__pycache__ --exclude='*.egg-info' src) | (cd "$work/proj" && tar xf -)
(cd "$work" && "$BUILD_PY" -m pip wheel -q --no-deps --no-build-isolation -w "$work/dist" "$work/proj")
wheel="$(ls "$work"/dist/segflow-*.whl)"
echo "$wheel"

step "install it into a clean venv (core dependencies only)"
"$PY" -m venv "$work/venv"
bin="$work/venv/bin"
"$bin/python" -m pip install -q --disable-pip-version-check -c "$root/constraints.txt" "$wheel"
"$bin/python" - <<'PY'
import importlib.util, sys
heavy = ["torch", "torchvision", "onnx", "onnxruntime", "fastapi", "uvicorn", "sqlalchemy",
         "alembic", "psycopg"]
present = [m for m in heavy if importlib.util.find_spec(m) is not None]
assert not present, f"the core install pulled in {present}"
import segflow
assert "site-packages" in segflow.__file__, f"not the installed wheel: {segflow.__file__}"
assert not [m for m in heavy if m in sys.modules]
print("core install:", segflow.__file__)
PY
echo "core venv size: $(du -sh "$work/venv" | cut -f1)"

mkdir -p "$work/tour" && cd "$work/tour"
sf="$bin/segflow"
step "segflow --help"
"$sf" --help >/dev/null
"$sf" --version
step "segflow data synth"
"$sf" data synth street -n 3 --size 96 --seed 1 -o data/street
"$sf" data synth retail -n 2 --size 96 --seed 2 --format coco -o data/retail
"$sf" data synth street -n 2 --size 96 --seed 7 --format coco_panoptic -o data/street-pan
img="$(ls data/street/images/*.png | head -n 1)"
step "segflow inspect"
"$sf" inspect "$img" >/dev/null
step "segflow segment otsu"
"$sf" segment otsu "$img" -o out/seg
test -s "out/seg/$(basename "${img%.png}")_mask.png"
step "segflow run objects (a built-in pipeline: package data)"
"$sf" run objects data/street/images -o out/objects
test -s out/objects/run.json
"$sf" run cells "$img" -o out/cells
step "segflow examples copy, then a pipeline file"
"$sf" examples copy .
test -s pipelines/coins.yaml && test -s configs/street_unet.yaml
"$sf" run pipelines/coins.yaml "$img" -o out/coins
step "segflow convert"
"$sf" convert data/street -o data/street-coco --to coco
"$sf" convert data/street -o data/street-cs --to cityscapes
step "segflow eval"
"$sf" eval --task semantic --gt data/street --pred data/street --json >/dev/null
"$sf" eval --task panoptic --gt data/street-pan --pred data/street-pan --json >/dev/null

step "commands of a missing extra: one line naming it, exit 2"
expect_extra() {  # expect_extra EXTRA COMMAND...
  local extra="$1"; shift
  set +e; "$@" >out.txt 2>err.txt; local rc=$?; set -e
  local lines; lines="$(wc -l <err.txt)"
  if [ "$rc" != 2 ] || [ "$lines" != 1 ] || ! grep -qF "pip install 'segflow[$extra]'" err.txt; then
    echo "FAILED: $* -> exit $rc, stderr:"; cat err.txt; exit 1
  fi
  cat err.txt
}
expect_extra deep "$sf" train street_unet
expect_extra deep "$sf" predict model.pt "$img" -o out/pred
expect_extra deep "$sf" export model.pt
expect_extra deep "$sf" models show model.pt
expect_extra studio "$sf" studio --demo --data studio-data
expect_extra studio "$sf" studio create-admin --username alice --password a-long-password
step "the demo without torch: classical sections, the deep one names the extra"
"$bin/python" -m segflow.demo --out out/demo 2>err.txt
grep -F "pip install 'segflow[deep]'" err.txt
test -s out/demo/report.html
echo "wheel check passed: $(basename "$wheel") without torch or the web stack"
