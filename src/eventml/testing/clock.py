"""A clock you move by hand, for deterministic tests of time-driven logic."""

from __future__ import annotations


class FakeClock:
    """Milliseconds since the epoch that change only when told to. Call it to read it."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> int:
        if ms < 0:
            raise ValueError("a clock only moves forward; use set() to jump")
        self.now_ms += ms
        return self.now_ms

    def set(self, ms: int) -> None:
        self.now_ms = ms
