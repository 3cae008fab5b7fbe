#!/usr/bin/env bash
# The DDP launcher on a GPU machine (issue 13): NCCL through torchrun, one GPU is enough.
#   PY=.venv/bin/python scripts/ddp_device_check.sh            # DEVICE=cpu checks the gloo path
# Trains a tiny U-Net three ways on the same data and global batch -- one plain process,
# torchrun with NCCL on 1 process, and `segflow train --nproc 2` when there are 2 GPUs -- and
# checks that the loss curves agree. Writes under ${OUT:-/tmp/ddp-check}; about a minute.
set -euo pipefail
PY=${PY:-python}
DEVICE=${DEVICE:-cuda}
OUT=${OUT:-/tmp/ddp-check}
rm -rf "$OUT" && mkdir -p "$OUT"
"$PY" -m segflow data synth street -n 12 --size 64 --seed 1 -o "$OUT/street" >/dev/null
for run in one torchrun nproc2; do
cat > "$OUT/$run.yaml" <<YAML
name: $run
seed: 5
out: $OUT/runs/$run
data: {train: $OUT/street, val_fraction: 0.25}
model: {name: unet, args: {depth: 2, base_width: 8, norm: group}}
loss: {name: ce}
schedule: {name: constant}
train: {epochs: 2, batch_size: 4, log_every: 1, channels_last: "off", amp: "off"}
YAML
done
"$PY" -m segflow train "$OUT/one.yaml" --device "$DEVICE" --json >/dev/null
"$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m segflow train \
    "$OUT/torchrun.yaml" --device "$DEVICE" --json >/dev/null
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
RUNS="one torchrun"
if [ "$DEVICE" = cpu ] || [ "$GPUS" -ge 2 ]; then
    "$PY" -m segflow train "$OUT/nproc2.yaml" --nproc 2 --device "$DEVICE" --json >/dev/null
    RUNS="$RUNS nproc2"
fi
"$PY" - "$OUT/runs" $RUNS <<'PYCODE'
import json, sys
from pathlib import Path
root, runs = Path(sys.argv[1]), sys.argv[2:]
curves = {r: [x["loss"] for x in map(json.loads, (root / r / "metrics.jsonl").read_text().splitlines())
              if x["type"] == "train"] for r in runs}
for r, c in curves.items():
    print(f"{r:9s}", " ".join(f"{v:.5f}" for v in c))
ref = curves["one"]
bad = [r for r, c in curves.items() if len(c) != len(ref) or
       any(abs(a - b) > 2e-3 * max(1.0, abs(a)) for a, b in zip(ref, c))]
print("DDP check:", "FAILED for " + ", ".join(bad) if bad else "ok (curves agree)")
sys.exit(1 if bad else 0)
PYCODE
