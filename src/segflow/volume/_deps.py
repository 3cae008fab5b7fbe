"""Lazy imports of the ``medical`` extra: a missing package is one line naming the fix."""

from __future__ import annotations

import importlib
from types import ModuleType

from segflow.errors import SegflowError

_HINT = "pip install 'segflow[medical]'"


def need(module: str) -> ModuleType:
    """Import ``module`` (nibabel, pydicom, SimpleITK) or raise a one-line SegflowError."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SegflowError(f"medical volumes need {module.split('.')[0]}; {_HINT}") from None
