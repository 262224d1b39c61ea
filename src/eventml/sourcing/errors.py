"""What event sourcing raises: rejected commands, version conflicts, storage failures."""

from __future__ import annotations


class SourcingError(Exception):
    """The event store could not read or write its topics."""


class CommandRejected(ValueError):
    """A command handler refused a command: it would break an invariant of the aggregate.

    Raise it from ``handle`` with a message naming the invariant; nothing is appended.
    """


class ConcurrencyConflict(SourcingError):
    """``append`` expected the aggregate at one version, but it is at another; nothing appended.

    Another writer appended first: reload the aggregate and run the command again
    (:meth:`~eventml.sourcing.Repository.execute` does so by itself).
    """

    def __init__(self, aggregate_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"aggregate {aggregate_id!r} is at version {actual}, not the expected {expected}: "
            "another writer appended first; reload it and retry the command"
        )
        self.aggregate_id, self.expected, self.actual = aggregate_id, expected, actual
