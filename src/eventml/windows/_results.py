"""What windowed aggregation hands back: results, retractions and late records."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from ._window import Window


@dataclass(frozen=True, slots=True)
class Emitted:
    """The current (update mode) or final (final mode) result of one key's window."""

    key: Hashable
    window: Window
    value: Any


@dataclass(frozen=True, slots=True)
class Retracted:
    """A tombstone: a session window merged into another no longer exists.

    Only in update mode, where the merged-away window had been emitted;
    Kafka Streams forwards a null value for it.
    """

    key: Hashable
    window: Window


@dataclass(frozen=True, slots=True)
class Late:
    """A record that arrived after (some of) its windows closed.

    ``windows`` are the closed windows that did not receive it. Callers route
    the record to a side output (a late topic) and count it; it is never
    silently dropped. For hopping windows a record can be late for its oldest
    windows and still counted in younger, open ones (as in Kafka Streams).
    """

    key: Hashable
    event_time_ms: int
    value: Any
    windows: tuple[Window, ...]


Output = Emitted | Retracted | Late
