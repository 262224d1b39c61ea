"""Delivery checkers that count every event: loss, duplicates, per-key order.

Give them what was sent (acknowledged) and what was received, as ``(key, seq)``
pairs where ``seq`` increases per key in send order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

Item = tuple[Hashable, int]


class DeliveryViolation(AssertionError):
    pass


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    sent: int
    received: int
    missing: tuple[Item, ...]
    duplicated: tuple[Item, ...]
    unexpected: tuple[Item, ...]
    out_of_order_keys: tuple[Hashable, ...]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.unexpected or self.out_of_order_keys)

    def summary(self) -> str:
        parts = [f"sent {self.sent}, received {self.received}"]
        for name, items in (
            ("missing", self.missing),
            ("duplicated", self.duplicated),
            ("never sent", self.unexpected),
            ("keys out of order", self.out_of_order_keys),
        ):
            if items:
                parts.append(f"{len(items)} {name} (e.g. {list(items[:3])})")
        return "; ".join(parts)

    def assert_ok(self) -> None:
        if not self.ok:
            raise DeliveryViolation(self.summary())


def check_delivery(
    sent: Iterable[Item], received: Iterable[Item], *, allow_duplicates: bool = False
) -> DeliveryReport:
    """Compare ``received`` with ``sent``: every sent item exactly once (at least once with
    ``allow_duplicates``), nothing unsent, and per key, first deliveries in ``seq`` order."""
    sent_counts = Counter(sent)
    got = list(received)
    got_counts = Counter(got)
    missing = tuple(sorted((i for i in sent_counts if i not in got_counts), key=repr))
    unexpected = tuple(sorted((i for i in got_counts if i not in sent_counts), key=repr))
    duplicated: tuple[Item, ...] = ()
    if not allow_duplicates:
        duplicated = tuple(
            sorted((i for i, n in got_counts.items() if n > sent_counts.get(i, 0) and i in sent_counts), key=repr)
        )
    last: dict[Hashable, int] = defaultdict(lambda: -(1 << 62))
    first_seen: set[Item] = set()
    disorder: set[Hashable] = set()
    for key, seq in got:
        if (key, seq) in first_seen:
            continue  # a redelivery after a rewind is not a reordering
        first_seen.add((key, seq))
        if seq < last[key]:
            disorder.add(key)
        last[key] = max(last[key], seq)
    return DeliveryReport(
        sent=sum(sent_counts.values()),
        received=len(got),
        missing=missing,
        duplicated=duplicated,
        unexpected=unexpected,
        out_of_order_keys=tuple(sorted(disorder, key=repr)),
    )
