"""Dead letters: what could not be decoded, validated or processed, kept byte-exact.

A dead-letter record keeps the original key, value and headers and adds
provenance headers (``eventml.dlq.*``, listed in :mod:`eventml.deadletter.record`):
where the record came from, what failed (exception class, kind and a redacted
message), attempts, and when. :func:`parse_dead_letter` splits one back into the
original and its provenance; :func:`replay` appends originals back, exactly once.

Retries: :func:`classify` sorts failures into permanent, transient and fatal;
:func:`call_with_retry` retries transient ones under a :class:`RetryPolicy`.
"""

from eventml.deadletter.parse import DeadLetter, InvalidDeadLetter, parse_dead_letter
from eventml.deadletter.record import (
    DLQ_PREFIX,
    dead_letter_message,
    dead_letter_topic,
    provenance,
    redact,
)
from eventml.deadletter.replay import REPLAY_GROUP, REPLAY_OF, ReplayResult, replay
from eventml.deadletter.retry import (
    ErrorKind,
    Failed,
    FatalError,
    Ok,
    Outcome,
    PermanentError,
    RetryPolicy,
    TransientError,
    call_with_retry,
    classify,
)

__all__ = [
    "DLQ_PREFIX",
    "REPLAY_GROUP",
    "REPLAY_OF",
    "DeadLetter",
    "ErrorKind",
    "Failed",
    "FatalError",
    "InvalidDeadLetter",
    "Ok",
    "Outcome",
    "PermanentError",
    "ReplayResult",
    "RetryPolicy",
    "TransientError",
    "call_with_retry",
    "classify",
    "dead_letter_message",
    "dead_letter_topic",
    "parse_dead_letter",
    "provenance",
    "redact",
    "replay",
]
