"""Exporting a checkpoint to ONNX (dynamic image size) or TorchScript."""

from __future__ import annotations

from pathlib import Path

import torch

from segflow.errors import SegflowError
from segflow.train import checkpoint as ckpt


def export(checkpoint: str | Path, out: str | Path, fmt: str = "onnx", opset: int = 17) -> Path:
    ck = ckpt.load(checkpoint)
    if ck.get("volume"):
        raise SegflowError(f"{checkpoint}: volume models (unet3d, 2.5-D) are not exported yet; "
                           "predict volumes with segflow predict")
    model = ckpt.build_model(ck)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    x = torch.rand(1, 3, 93, 121)  # not a multiple of the stride: the padding is traced
    if fmt == "torchscript":
        traced = torch.jit.trace(model, x, check_trace=False)
        traced.save(str(out))
    elif fmt == "onnx":
        torch.onnx.export(model, (x,), str(out), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                        "logits": {0: "batch", 2: "height", 3: "width"}},
                          opset_version=opset, dynamo=False)
    else:
        raise SegflowError(f"unknown export format {fmt!r}; use onnx or torchscript")
    return out
