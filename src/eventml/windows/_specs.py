"""Window specifications: frozen config, no runtime state."""

from __future__ import annotations

from dataclasses import dataclass

from ._window import Window


def _positive(name: str, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be a positive number of milliseconds, got {value}")


def _non_negative(event_time_ms: int) -> None:
    if event_time_ms < 0:
        raise ValueError(
            f"event time {event_time_ms} is before the epoch; Kafka Streams rejects negative "
            "timestamps too: fix or dead-letter the event before windowing"
        )


@dataclass(frozen=True, slots=True)
class Tumbling:
    """Fixed-size, non-overlapping, epoch-aligned windows ``[start, start + size)``."""

    size_ms: int

    def __post_init__(self) -> None:
        _positive("size_ms", self.size_ms)

    def windows_for(self, event_time_ms: int) -> tuple[Window, ...]:
        """The one window an event at ``event_time_ms`` belongs to."""
        _non_negative(event_time_ms)
        start = event_time_ms - event_time_ms % self.size_ms
        return (Window(start, start + self.size_ms),)


@dataclass(frozen=True, slots=True)
class Hopping:
    """Fixed-size, overlapping, epoch-aligned windows ``[start, start + size)``.

    Starts are multiples of ``advance_ms``; an event at ``t`` belongs to
    every window with ``0 <= start <= t < start + size``.
    """

    size_ms: int
    advance_ms: int

    def __post_init__(self) -> None:
        _positive("size_ms", self.size_ms)
        _positive("advance_ms", self.advance_ms)
        if self.advance_ms > self.size_ms:
            raise ValueError(
                f"advance_ms ({self.advance_ms}) must not exceed size_ms ({self.size_ms}); "
                "use Tumbling for advance == size"
            )

    def windows_for(self, event_time_ms: int) -> tuple[Window, ...]:
        """Every window containing ``event_time_ms``, oldest first."""
        _non_negative(event_time_ms)
        last_start = event_time_ms - event_time_ms % self.advance_ms
        # Smallest multiple of advance strictly greater than t - size; like Kafka
        # Streams (TimeWindows.windowsFor), no window starts before the epoch.
        first_start = max(
            0, ((event_time_ms - self.size_ms) // self.advance_ms + 1) * self.advance_ms
        )
        return tuple(
            Window(start, start + self.size_ms)
            for start in range(first_start, last_start + 1, self.advance_ms)
        )


@dataclass(frozen=True, slots=True)
class Sliding:
    """Kafka Streams ``SlidingWindows``: closed windows ``[start, end]`` of length
    ``time_difference_ms``, aligned to record times (KIP-450).

    Each record ``t`` has a left window ``[t - diff, t]`` and, when it would
    hold records, a right window ``[t + 1, t + 1 + diff]``: together these are
    every distinct set of records that fits in ``diff`` milliseconds.
    """

    time_difference_ms: int

    def __post_init__(self) -> None:
        _positive("time_difference_ms", self.time_difference_ms)

    def left_window(self, event_time_ms: int) -> Window:
        """The window ending at the record."""
        return Window(event_time_ms - self.time_difference_ms, event_time_ms, end_inclusive=True)

    def right_window(self, event_time_ms: int) -> Window:
        """The window starting just after the record."""
        start = event_time_ms + 1
        return Window(start, start + self.time_difference_ms, end_inclusive=True)


@dataclass(frozen=True, slots=True)
class Session:
    """Per-key activity sessions ``[first event, last event]`` (closed bounds).

    A record within ``gap_ms`` of a session (``start - gap <= t <= end + gap``)
    joins it; a record within the gap of two sessions merges them.
    """

    gap_ms: int

    def __post_init__(self) -> None:
        _positive("gap_ms", self.gap_ms)

    def joins(self, session: Window, event_time_ms: int) -> bool:
        """Whether a record at ``event_time_ms`` extends (or falls inside) ``session``."""
        return session.start_ms - self.gap_ms <= event_time_ms <= session.end_ms + self.gap_ms


WindowSpec = Tumbling | Hopping | Sliding | Session
"""Any window specification."""
