"""Compatibility levels: which earlier versions a new schema is checked against, and which way.

BACKWARD means the new schema reads data written with the previous one (new is the
reader); FORWARD means the previous reads data written with the new (new is the
writer); FULL is both. The ``_TRANSITIVE`` forms check against every earlier
version instead of the latest only; NONE checks nothing. Pure: no registry, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

from eventml.schema.errors import Incompatibility, InvalidCompatibilityLevel
from eventml.schema.types import ParsedSchema

Level = Literal[
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
]
LEVELS: tuple[Level, ...] = get_args(Level)
DEFAULT_LEVEL: Level = "BACKWARD"


def parse_level(text: object) -> Level:
    """``text`` as a level (case-insensitive), or :class:`InvalidCompatibilityLevel`."""
    level = text.upper() if isinstance(text, str) else text
    if level not in LEVELS:
        raise InvalidCompatibilityLevel(
            f"Invalid compatibility level {text!r}: use one of {', '.join(LEVELS)}"
        )
    return level


def check(level: Level, new: ParsedSchema, previous: Sequence[ParsedSchema]) -> list[Incompatibility]:
    """Why ``new`` breaks ``level`` against ``previous`` (oldest first); empty: compatible."""
    if level == "NONE" or not previous:
        return []
    against = previous if level.endswith("_TRANSITIVE") else previous[-1:]
    found: list[Incompatibility] = []
    for old in reversed(against):  # newest first: the likeliest culprit is reported first
        if level.startswith(("BACKWARD", "FULL")):
            found += _pair(reader=new, writer=old, direction="backward")
        if level.startswith(("FORWARD", "FULL")):
            found += _pair(reader=old, writer=new, direction="forward")
    return found


def _pair(reader: ParsedSchema, writer: ParsedSchema, direction: str) -> list[Incompatibility]:
    if reader.schema_type != writer.schema_type:
        return [
            Incompatibility(
                "SCHEMA_TYPE_CHANGED",
                "",
                f"the schema type changed from {writer.schema_type} to {reader.schema_type} "
                f"({direction})",
            )
        ]
    return reader.incompatibilities(writer)


def describe(level: Level, reasons: Sequence[Incompatibility]) -> str:
    """One message for a 409: the level broken and each reason."""
    head = f"Schema being registered is incompatible with an earlier schema for compatibility level {level}"
    if not reasons:
        return head
    return head + ": " + "; ".join(str(r) for r in reasons)
