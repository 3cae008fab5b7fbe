"""Self-describing checkpoints: weights plus config, label schema, data fingerprint, metrics,
library versions and everything needed to resume exactly."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import torch

from segflow import __version__
from segflow.annotations import LabelSchema
from segflow.atomic import atomic_path
from segflow.errors import SegflowError

FORMAT = "segflow-checkpoint/1"


def versions() -> dict:
    import torchvision

    return {"segflow": __version__, "torch": torch.__version__,
            "torchvision": torchvision.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def save(path: Path, **payload) -> Path:
    with atomic_path(path) as tmp:  # never a half-written checkpoint
        torch.save({"format": FORMAT, "versions": versions(), **payload}, tmp)
    return Path(path)


def load(path: str | Path) -> dict:
    """A checkpoint file, or a URL (``s3://...``, fetched to a temporary file first)."""
    from segflow import remote

    if remote.is_url(path):
        import tempfile

        with tempfile.TemporaryDirectory(prefix="segflow-") as tmp:
            ck = load(remote.fetch(str(path), Path(tmp) / "checkpoint.pt"))
        return ck
    p = remote.local(path)
    if not p.is_file():
        raise SegflowError(f"{p}: no such checkpoint")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many kinds on a bad file
        raise SegflowError(f"{p}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise SegflowError(f"{p}: not a segflow checkpoint (format {FORMAT} expected)")
    return ck


def build_model(ck: dict):
    from segflow.models import create_model

    m = ck["model"]
    model = create_model(m["name"], **m["args"])
    model.load_state_dict(ck["state_dict"])
    model.eval()
    return model


def schema_of(ck: dict) -> LabelSchema:
    return LabelSchema.from_list(ck["schema"]["classes"], ck["schema"]["ignore_index"])
