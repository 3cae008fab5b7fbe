"""Prediction: checkpoints to masks, tiled for large images; export to ONNX/TorchScript."""

from segflow._extras import require

require("deep", what="segflow.predict")
