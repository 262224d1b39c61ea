"""The replay package's one error type."""

from __future__ import annotations


class ReplayError(ValueError):
    """A replay or diff cannot run as asked; the message (one line) says what to change."""
