"""Delivery checkers that count every event: loss, duplicates, per-key order.

Give them what was sent (acknowledged) and what was received, as ``(key, seq)``
pairs where ``seq`` increases per key in send order. :func:`check_delivery` counts
every event; :func:`check_sequences` checks, per key, that outputs come in strict
``+1`` steps and agree with the state they were computed from (exactly-once
processing with state). :func:`check_predictions` checks a prediction log under hot
swap: every event acted on exactly once, by versions the alias named, in its order.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

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


# -- per-key sequences and the state behind them -------------------------------------------

SequenceKind = Literal["gap", "repeat", "state"]


class SequenceViolation(NamedTuple):
    """One output that breaks its key's sequence.

    ``kind``: ``"gap"`` (``seq`` jumps past ``previous + 1``: outputs in between are
    missing), ``"repeat"`` (``seq`` is not above the previous output's: a duplicate or a
    reordering), ``"state"`` (the state the output was computed from said ``state_seq``,
    not ``seq - 1``: state and outputs disagree).
    """

    kind: SequenceKind
    key: Hashable
    position: int  # among the key's outputs, from 0
    seq: int
    expected: int  # previous output's seq + 1 (gap, repeat) or seq - 1 (state)
    got: int | None  # seq (gap, repeat) or the state's seq (state)


@dataclass(frozen=True, slots=True)
class SequenceReport:
    """What :func:`check_sequences` found: counts of each kind and the first examples."""

    keys: int
    received: int
    gaps: int
    repeats: int
    state_mismatches: int
    examples: tuple[SequenceViolation, ...]

    @property
    def violations(self) -> int:
        return self.gaps + self.repeats + self.state_mismatches

    @property
    def ok(self) -> bool:
        return self.violations == 0

    def summary(self) -> str:
        parts = [f"{self.received} outputs of {self.keys} keys"]
        for name, n in (("gaps", self.gaps), ("repeats", self.repeats),
                        ("state mismatches", self.state_mismatches)):
            if n:
                parts.append(f"{n} {name}")
        if self.examples:
            parts.append(f"e.g. {list(self.examples[:3])}")
        return "; ".join(parts)

    def assert_ok(self) -> None:
        if not self.ok:
            raise DeliveryViolation(self.summary())


def check_sequences(
    received: Iterable[tuple[Hashable, int] | tuple[Hashable, int, int | None]],
    *,
    start: int = 1,
    max_examples: int = 100,
) -> SequenceReport:
    """Check outputs, in the order one key's outputs were written, against per-key sequences.

    Each item is ``(key, seq)`` or ``(key, seq, state_seq)``: ``seq`` numbers the key's
    input events ``start, start + 1, ...`` in send order; ``state_seq`` is the last seq
    the processor's state held for the key when it made the output (``None``: no state,
    counted as ``start - 1``). Exactly-once means, per key, each output's ``seq`` is the
    previous output's plus one (the first is ``start``) and ``state_seq == seq - 1``:
    nothing lost, nothing repeated, and state consistent with what was emitted.
    Each output is compared with the key's previous output, so a replayed run
    (``5 6 7 5 6 7``) is one repeat, and a hole one gap; count copies with
    :func:`check_delivery`. Every violation is counted; the first ``max_examples`` are kept.
    """
    last: dict[Hashable, int] = {}
    counts: dict[Hashable, int] = defaultdict(int)
    examples: list[SequenceViolation] = []
    gaps = repeats = states = total = 0

    def note(v: SequenceViolation) -> None:
        if len(examples) < max_examples:
            examples.append(v)

    for item in received:
        key, seq = item[0], item[1]
        total += 1
        position = counts[key]
        counts[key] = position + 1
        expected = last.get(key, start - 1) + 1
        if seq != expected:
            if seq > expected:
                gaps += 1
                note(SequenceViolation("gap", key, position, seq, expected, seq))
            else:
                repeats += 1
                note(SequenceViolation("repeat", key, position, seq, expected, seq))
        last[key] = seq
        if len(item) > 2:
            state_seq = item[2]
            if (start - 1 if state_seq is None else state_seq) != seq - 1:
                states += 1
                note(SequenceViolation("state", key, position, seq, seq - 1, state_seq))
    return SequenceReport(len(counts), total, gaps, repeats, states, tuple(examples))


# -- hot swap: the prediction log against the input and the alias's moves ------------------


class SwitchPoint(NamedTuple):
    """Where a partition first used an assignment of the alias: ``assignment`` indexes the
    alias's versions in order (0: the version before the first change)."""

    partition: int
    assignment: int
    version: int | None
    event_id: str
    offset: int


class VersionRevert(NamedTuple):
    """An acted-on prediction whose version the alias named only before the partition's
    current assignment (``reached``): the partition went back to an earlier version."""

    partition: int
    offset: int
    event_id: str
    version: int | None
    reached: int  # the assignment the partition had already used


@dataclass(frozen=True, slots=True)
class PredictionReport:
    """What :func:`check_predictions` found; ``ok`` when every event was acted on exactly
    once, by a version the alias named, in the alias's order on every partition."""

    events: int
    acted_on: int  # acted-on predictions (primary and canary)
    shadow: int
    missing: tuple[str, ...]  # input events with no acted-on prediction
    duplicated: tuple[str, ...]  # input events with more than one
    conflicting: tuple[str, ...]  # of those, events acted on by two different versions
    unexpected: tuple[str, ...]  # acted-on predictions of events that were never input
    unknown_versions: tuple[tuple[str, int | None], ...]  # (event, version) never assigned
    reverted: tuple[VersionRevert, ...]
    versions: Mapping[int | None, int]  # checked predictions per version
    assignments: tuple[int | None, ...]
    switches: tuple[SwitchPoint, ...]

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.unexpected
                    or self.unknown_versions or self.reverted)

    def summary(self) -> str:
        parts = [f"{self.events} events, {self.acted_on} acted-on predictions "
                 f"({self.shadow} shadow), versions used {dict(self.versions)}"]
        for name, found in (
            ("missing", self.missing),
            ("duplicated", self.duplicated),
            ("acted on by two versions", self.conflicting),
            ("never input", self.unexpected),
            ("by a version the alias never named", self.unknown_versions),
            ("back to an earlier version", self.reverted),
        ):
            if found:
                parts.append(f"{len(found)} {name} (e.g. {list(found[:3])})")
        return "; ".join(parts)

    def assert_ok(self) -> None:
        if not self.ok:
            raise DeliveryViolation(self.summary())


def check_predictions(
    events: Iterable[tuple[str, int, int]],
    predictions: Iterable[Any],
    changes: Iterable[Any] = (),
    *,
    initial: int | None = None,
    alias: str | None = None,
    roles: Collection[str] = ("primary",),
) -> PredictionReport:
    """Check a prediction log against the events scored and the alias's moves.

    ``events`` are every input event as ``(event_id, partition, offset)``; ``predictions``
    the log's records (:class:`~eventml.ml.records.Prediction`: ``event_id``, ``version``,
    ``role``); ``changes`` the alias's :class:`~eventml.ml.records.AliasChange` records in
    control-topic order (only those of ``alias``, ``"name@alias"``, if given); ``initial``
    the version the alias named before the first change.

    Every input event must have exactly one acted-on prediction (role ``primary`` or
    ``canary``; ``shadow`` ones are counted, never acted on): none missing, none twice,
    none for an event never input. The predictions of ``roles`` (default: primary) must
    use versions the alias named, and per partition, in input offset order, follow the
    alias's order: a partition may skip an assignment (no event arrived while it held)
    but never return to an earlier one. A version the alias named twice (1, 2, 1) counts
    as two assignments, so 1 → 2 → 1 is fine on a partition and 2 → 1 → 2 is not if the
    alias went 1 → 2 → 1.
    """
    where: dict[str, tuple[int, int]] = {}
    for event_id, partition, offset in events:
        where[event_id] = (partition, offset)
    assigned: list[int | None] = [] if initial is None else [initial]
    for c in changes:
        if alias is None or f"{c.model}@{c.alias}" == alias:
            assigned.append(c.version)
    first: dict[str, int | None] = {}
    repeats: Counter[str] = Counter()
    conflicting: set[str] = set()
    unexpected: list[str] = []
    versions: Counter[int | None] = Counter()
    rows: dict[int, list[tuple[int, int, str, int | None]]] = defaultdict(list)
    acted = shadow = 0
    for n, p in enumerate(predictions):
        if p.role == "shadow":
            shadow += 1
            continue
        acted += 1
        event_id, version = p.event_id, p.version
        place = where.get(event_id)
        if place is None:
            unexpected.append(event_id)
            continue
        if event_id in first:
            repeats[event_id] += 1
            if first[event_id] != version:
                conflicting.add(event_id)
        else:
            first[event_id] = version
        if p.role in roles:
            versions[version] += 1
            rows[place[0]].append((place[1], n, event_id, version))
    unknown: list[tuple[str, int | None]] = []
    reverted: list[VersionRevert] = []
    switches: list[SwitchPoint] = []
    for partition in sorted(rows):
        at = -1  # the assignment this partition has reached
        for offset, _, event_id, version in sorted(rows[partition]):
            if at >= 0 and assigned[at] == version:
                continue
            later = next((k for k in range(at + 1, len(assigned)) if assigned[k] == version), None)
            if later is not None:
                at = later
                switches.append(SwitchPoint(partition, at, version, event_id, offset))
            elif version in assigned[: at + 1]:
                reverted.append(VersionRevert(partition, offset, event_id, version, at))
            else:
                unknown.append((event_id, version))
    return PredictionReport(
        events=len(where),
        acted_on=acted,
        shadow=shadow,
        missing=tuple(e for e in where if e not in first),
        duplicated=tuple(sorted(repeats)),
        conflicting=tuple(sorted(conflicting)),
        unexpected=tuple(unexpected),
        unknown_versions=tuple(unknown),
        reverted=tuple(reverted),
        versions=dict(sorted(versions.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))),
        assignments=tuple(assigned),
        switches=tuple(switches),
    )
