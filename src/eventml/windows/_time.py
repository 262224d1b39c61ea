"""Stream time (the watermark of one partition) and window close."""

from __future__ import annotations

from ._window import Window


class StreamTime:
    """Max event time seen by one partition (Kafka Streams' "observed stream time").

    It never moves backwards; out-of-order events leave it unchanged.
    """

    __slots__ = ("_value",)

    def __init__(self, value_ms: int | None = None) -> None:
        self._value = value_ms

    @property
    def value_ms(self) -> int | None:
        """The stream time, or None before the first event."""
        return self._value

    def observe(self, event_time_ms: int) -> int:
        """Take an event time into account; returns the (possibly advanced) stream time."""
        if self._value is None or event_time_ms > self._value:
            self._value = event_time_ms
        return self._value


def is_closed(window: Window, stream_time_ms: int | None, grace_ms: int) -> bool:
    """A window is closed once ``stream_time >= end + grace``.

    ``end`` is the first millisecond after the window, so a closed window
    ``[s, e]`` (session, sliding) closes at ``e + 1 + grace`` — the same rule
    Kafka Streams applies to session windows (``end < stream_time - grace``).
    """
    return stream_time_ms is not None and stream_time_ms >= window.close_ms(grace_ms)
