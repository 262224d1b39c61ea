"""Rollout of a challenger model: which events a canary scores (pure: no I/O, no model).

A canary routes a stable fraction of *keys* to the challenger: the same key always
goes the same way, in every worker process and on every machine, so one card (user,
device) sees one model, and its later events are judged by the model that judged the
first ones. The route is a keyed hash of the key, not Python's ``hash`` (salted per
process) and not the partitioner's murmur2 (which would tie the canary to partitions).

>>> c = Canary("fraud@challenger", 0.25)
>>> c.routes("card-1") == c.routes("card-1")
True
>>> sum(Canary("m", 0.25).routes(f"card-{i}") for i in range(10_000))  # about a quarter
2556
>>> Canary("m", 0.25).routes(None)  # no key, no stable route: the primary model scores it
False
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

__all__ = ["Canary", "canary_share"]

_PERSON = b"eventml-canary"
_SCALE = float(1 << 64)


def canary_share(key: str | bytes) -> float:
    """Where ``key`` falls in [0, 1): a key is routed to a canary of fraction ``f`` when
    this is below ``f`` (so growing ``f`` only adds keys, it never moves one back)."""
    data = key.encode() if isinstance(key, str) else key
    digest = hashlib.blake2b(data, digest_size=8, person=_PERSON).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True, slots=True)
class Canary:
    """Score ``fraction`` of the keys with ``model`` (a model, or a registry reference such
    as ``"fraud@challenger"``) and act on its score for them (``role="canary"``).

    The primary model does not score those keys at all: each event has exactly one
    acted-on score, from one model. Events without a key always go to the primary.
    """

    model: Any
    fraction: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"a canary's fraction must be in [0, 1], got {self.fraction!r}")

    def routes(self, key: str | bytes | None) -> bool:
        """Whether the event with ``key`` goes to the canary."""
        return key is not None and canary_share(key) < self.fraction
