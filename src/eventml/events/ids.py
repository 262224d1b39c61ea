"""Event ids: UUIDv7, so ids sort by creation time (RFC 9562)."""

from __future__ import annotations

import uuid_utils


def new_event_id() -> str:
    """A new time-ordered id (UUIDv7, canonical text form)."""
    return str(uuid_utils.uuid7())
