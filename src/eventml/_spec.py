"""Resolve ``"module:attribute"`` specs, as the CLI's ``--app`` options take them."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


def import_attribute(spec: str, example: str) -> Any:
    """The object named by ``spec`` (the current directory is importable).

    Raises :class:`ValueError` with a one-line reason; ``example`` shows the form.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"name it as module:attribute, e.g. {example} (got {spec!r})")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import {module_name!r}: {e}") from e
    if not hasattr(module, attr):
        raise ValueError(f"{spec}: module {module_name!r} has no attribute {attr!r}")
    return getattr(module, attr)
