"""Shared CLI helpers: one-line errors, JSON output, console."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
from rich.console import Console

console = Console(stderr=True)


def _default(o: Any):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def emit_json(obj: Any) -> None:
    """Write one JSON object on stdout (machine-readable results)."""
    sys.stdout.write(json.dumps(obj, default=_default) + "\n")
    sys.stdout.flush()


def parse_extra_params(args: list[str]) -> dict[str, Any]:
    """``--key value`` / ``--flag`` pairs into a dict; values parsed as YAML scalars/lists."""
    import yaml

    from segflow.errors import ConfigError

    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--") or len(a) < 3:
            raise ConfigError(f"unexpected argument {a!r}; give parameters as --name value")
        key = a[2:].replace("-", "_")
        if "=" in key:
            key, val = key.split("=", 1)
            out[key] = yaml.safe_load(val)
            i += 1
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            out[key] = yaml.safe_load(args[i + 1])
            i += 2
        else:
            out[key] = True
            i += 1
    return out


def error_line(msg: str, prefix: str = "error") -> None:
    """One plain line on stderr (no wrapping, no markup), as scripts and people both want."""
    sys.stderr.write(f"{prefix}: {' '.join(str(msg).split())}\n")
    sys.stderr.flush()
