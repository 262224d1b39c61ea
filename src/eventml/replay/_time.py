"""Times as users write them (pure): ISO-8601, epoch milliseconds, or relative to now."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from eventml.replay._errors import ReplayError

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_RELATIVE = re.compile(r"^-(\d+)(ms|s|m|h|d|w)$")


def parse_time(text: str, now_ms: int) -> int:
    """Milliseconds since the epoch for ``text``.

    Accepts ISO-8601 with a timezone (``2026-11-25T00:00:00Z``, ``...+01:00``), epoch
    milliseconds (``1764028800000``), ``now``, or a duration before ``now_ms``
    (``-30m``, ``-24h``, ``-7d``; units ms, s, m, h, d, w).

    >>> parse_time("1970-01-01T00:00:01Z", 0), parse_time("-2s", 10_000), parse_time("42", 0)
    (1000, 8000, 42)
    """
    value = text.strip()
    if value == "now":
        return now_ms
    if value.isdigit():
        return int(value)
    relative = _RELATIVE.match(value)
    if relative:
        return now_ms - int(relative.group(1)) * _UNITS_MS[relative.group(2)]
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ReplayError(
            f"cannot read time {text!r}: use ISO-8601 (2026-11-25T00:00:00Z), "
            "epoch milliseconds, or relative like -24h / -30m"
        ) from None
    if parsed.tzinfo is None:
        raise ReplayError(f"time {text!r} has no timezone: add Z (UTC) or an offset like +01:00")
    return int(parsed.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Event times in ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if self.start_ms >= self.end_ms:
            raise ReplayError(
                f"the window is empty: --from ({self.start_ms}) must be before --to ({self.end_ms})"
            )

    def __contains__(self, time_ms: object) -> bool:
        return isinstance(time_ms, int) and self.start_ms <= time_ms < self.end_ms
