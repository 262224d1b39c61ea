"""A window: bounds in integer milliseconds since the epoch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True, slots=True)
class Window:
    """Window bounds, as in Kafka Streams.

    Tumbling and hopping windows are half-open, ``[start_ms, end_ms)``.
    Sliding and session windows are closed, ``[start_ms, end_ms]``
    (``end_inclusive=True``).
    """

    start_ms: int
    end_ms: int
    end_inclusive: bool = False

    def __post_init__(self) -> None:
        if self.end_ms < self.start_ms or (self.end_ms == self.start_ms and not self.end_inclusive):
            raise ValueError(f"empty window: start {self.start_ms}, end {self.end_ms}")

    @property
    def exclusive_end_ms(self) -> int:
        """The first millisecond after the window."""
        return self.end_ms + 1 if self.end_inclusive else self.end_ms

    def contains(self, event_time_ms: int) -> bool:
        """Whether an event at ``event_time_ms`` falls inside the bounds."""
        return self.start_ms <= event_time_ms < self.exclusive_end_ms

    def close_ms(self, grace_ms: int) -> int:
        """Stream time at which the window closes: ``end + grace`` (first ms after the end)."""
        return self.exclusive_end_ms + grace_ms
