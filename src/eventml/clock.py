"""Clocks are passed in: logic never reads the wall clock directly."""

from __future__ import annotations

import time
from collections.abc import Callable

ClockMs = Callable[[], int]
"""A clock: returns milliseconds since the epoch."""


def system_clock_ms() -> int:
    """The wall clock, in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000
