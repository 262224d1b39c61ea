"""Events: the CloudEvents 1.0 envelope, time-ordered ids, and the Kafka binary binding."""

from eventml.events.binding import (
    EventDecodeError,
    from_record,
    from_structured,
    to_message,
    to_structured,
)
from eventml.events.envelope import Event, utc_now
from eventml.events.ids import new_event_id

__all__ = [
    "Event",
    "EventDecodeError",
    "from_record",
    "from_structured",
    "new_event_id",
    "to_message",
    "to_structured",
    "utc_now",
]
