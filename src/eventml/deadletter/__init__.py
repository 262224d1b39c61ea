"""Dead letters: what could not be decoded, validated or processed, kept byte-exact.

A dead-letter record keeps the original key, value and headers and adds
provenance headers (``eventml.dlq.*``): where the record came from, what failed
(exception class and a redacted message), attempts, and when.
"""

from eventml.deadletter.record import (
    DLQ_PREFIX,
    dead_letter_message,
    dead_letter_topic,
    provenance,
    redact,
)

__all__ = ["DLQ_PREFIX", "dead_letter_message", "dead_letter_topic", "provenance", "redact"]
