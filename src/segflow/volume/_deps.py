"""Lazy imports of the ``medical`` extra: a missing package is one line naming the fix."""

from __future__ import annotations

import importlib
from types import ModuleType

from segflow._extras import require


def need(module: str) -> ModuleType:
    """Import ``module`` (nibabel, pydicom, SimpleITK) or raise a one-line
    :class:`~segflow._extras.MissingExtraError` naming ``pip install 'segflow[medical]'``."""
    require("medical", modules=(module.split(".")[0],), what="medical volumes")
    return importlib.import_module(module)
