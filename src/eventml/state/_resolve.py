"""Pick an implementation by the class of a log, importing it only when first used.

A registry maps a log class name (``"KafkaLog"``) to an object or to
``"module:attribute"``; :func:`lookup` walks the log's class hierarchy, so
subclasses inherit their parent's entry. No if/elif over backends, and a
backend's dependencies (confluent-kafka) load only when its log is used.
"""

from __future__ import annotations

import importlib
from typing import Any


def lookup(registry: dict[str, Any], obj: object) -> Any | None:
    """The entry for the nearest class of ``obj`` named in ``registry`` (``None``: none)."""
    for cls in type(obj).__mro__:
        entry = registry.get(cls.__name__)
        if entry is None:
            continue
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            registry[cls.__name__] = entry
        return entry
    return None
