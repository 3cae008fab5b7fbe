"""Errors a person can act on.

Every user mistake raises a :class:`SegflowError` (or a subclass) whose message is one line
naming the file, step or field and what to do. The CLI prints that line and exits 2.
"""

from __future__ import annotations


class SegflowError(Exception):
    """A user-facing error: one line, names the culprit and the fix."""

    exit_code = 2


class ImageReadError(SegflowError):
    """An image file could not be read (missing, not an image, corrupt, too large, bad dtype)."""


class ConfigError(SegflowError):
    """A pipeline or config file is invalid (unknown step, bad parameter, bad YAML/JSON)."""


class ParameterError(SegflowError):
    """A function argument is out of its allowed range."""
