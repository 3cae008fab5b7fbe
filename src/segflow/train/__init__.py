"""Training semantic segmentation models: config, losses, data, trainer, checkpoints."""

from segflow.train.config import TrainConfig, load_config, parse_config

__all__ = ["TrainConfig", "load_config", "parse_config"]
