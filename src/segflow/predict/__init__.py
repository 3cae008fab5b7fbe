"""Prediction: checkpoints to masks, tiled for large images; export to ONNX/TorchScript."""
