"""Atomic file writes: write a temporary file beside the target, then rename it over the target.

A reader sees the old file or the new one, never half of either; a crash or an exception during
the write leaves the old file as it was and no temporary file behind. ``os.replace`` is atomic
on POSIX and Windows when both names are on one file system, which a sibling file always is.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _tmp_name(path: Path) -> Path:
    # Hidden, unique per process and per call (threads of one process write side by side),
    # with the suffix kept last: OpenCV and Pillow pick the encoder from it.
    return path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on error it is removed.

    The parent folder is created. Use it when a library writes the file itself::

        with atomic_path(out / "mask.png") as tmp:
            cv2.imwrite(str(tmp), mask)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)


def atomic_write_json(path: str | os.PathLike, data: Any, **dumps: Any) -> Path:
    """Serialise ``data`` with :func:`json.dumps` (keyword arguments passed on), then write it
    atomically. The text is built before the file is opened, so a value that cannot be
    serialised leaves the old file untouched."""
    return atomic_write_text(path, json.dumps(data, **dumps))
