"""``diff_decisions``: a replay's decisions against what happened (pure core, thin reader).

Decisions (alerts) are events whose JSON value names the decided-on event in
``id_field``. Both sides are restricted to the window by record timestamp (an
alert carries its input event's time). Every event is counted: duplicates (the
same id twice on one side) and events without a readable id are reported, never
silently merged. With a labels topic of positives (chargebacks: confirmed fraud
only), each side gets precision, recall and F1 against the positives whose
labelled event falls in the window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from eventml.log.base import Log, Record
from eventml.replay._read import read_all, require_topics

EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class Side:
    """One topic's decisions in the window, and how they score against the labels."""

    topic: str
    events: int  # events in the window, duplicates included
    decisions: int  # distinct ids
    duplicates: int  # events beyond the first per id
    duplicate_examples: tuple[str, ...]
    unreadable: int  # in the window but no JSON value with the id field
    outside: int  # events outside the window
    true_positives: int | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class DecisionDiff:
    """Candidate against baseline: ids in both (``common``), only in the candidate
    (``added``), only in the baseline (``removed``), with a few example ids each."""

    baseline: Side
    candidate: Side
    id_field: str
    start_ms: int | None
    end_ms: int | None
    common: int
    added: int
    removed: int
    added_examples: tuple[str, ...]
    removed_examples: tuple[str, ...]
    labels_topic: str | None = None
    positives: int | None = None  # distinct labelled ids in the window

    @property
    def identical(self) -> bool:
        """The same decisions, once each, on both sides."""
        return (not self.added and not self.removed and not self.baseline.duplicates
                and not self.candidate.duplicates)

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline.to_json(), "candidate": self.candidate.to_json(),
            "id_field": self.id_field, "from_ms": self.start_ms, "to_ms": self.end_ms,
            "common": self.common, "added": self.added, "removed": self.removed,
            "added_examples": list(self.added_examples),
            "removed_examples": list(self.removed_examples),
            "labels_topic": self.labels_topic, "positives": self.positives,
        }


@dataclass(frozen=True, slots=True)
class Decisions:
    """One side's ids, as read: what :func:`compare` takes."""

    topic: str
    ids: tuple[str, ...]  # in the window, in log order, duplicates kept
    unreadable: int = 0
    outside: int = 0


def compare(
    baseline: Decisions, candidate: Decisions, *, id_field: str = "transaction_id",
    start_ms: int | None = None, end_ms: int | None = None,
    positives: Iterable[str] | None = None, labels_topic: str | None = None,
) -> DecisionDiff:
    """The diff of two sides' decisions (pure)."""
    labels = None if positives is None else set(positives)
    base, cand = set(baseline.ids), set(candidate.ids)
    return DecisionDiff(
        baseline=_side(baseline, labels), candidate=_side(candidate, labels), id_field=id_field,
        start_ms=start_ms, end_ms=end_ms, common=len(base & cand), added=len(cand - base),
        removed=len(base - cand), added_examples=_examples(cand - base),
        removed_examples=_examples(base - cand), labels_topic=labels_topic,
        positives=None if labels is None else len(labels),
    )


def diff_decisions(
    log: Log,
    baseline_topic: str,
    candidate_topic: str,
    *,
    id_field: str = "transaction_id",
    start_ms: int | None = None,
    end_ms: int | None = None,
    labels_topic: str | None = None,
    label_id_field: str = "transaction_id",
    label_time_field: str | None = "transaction_time_ms",
) -> DecisionDiff:
    """Compare the decisions on ``candidate_topic`` (e.g. a replay's sandbox alerts) with
    those on ``baseline_topic`` (the live alerts), in ``[start_ms, end_ms)`` by record time.

    ``labels_topic`` holds positives only, naming the labelled event in ``label_id_field``;
    a label is in the window if its labelled event is: ``label_time_field`` (epoch ms in
    the value, as on the fraud demo's chargebacks), else the label's own record time.
    Raises :class:`ReplayError` if a topic does not exist.
    """
    require_topics(log, [t for t in (baseline_topic, candidate_topic, labels_topic) if t])

    def inside(ms: int) -> bool:
        return (start_ms is None or ms >= start_ms) and (end_ms is None or ms < end_ms)

    def side(topic: str) -> Decisions:
        return read_decisions(read_all(log, topic), topic, id_field, inside)

    positives = None
    if labels_topic is not None:
        positives = set()
        for record in read_all(log, labels_topic):
            value = _json(record)
            ident = value.get(label_id_field) if value is not None else None
            if ident is None:
                continue
            at = value.get(label_time_field) if label_time_field and value is not None else None
            if inside(at if isinstance(at, int) else record.timestamp_ms):
                positives.add(str(ident))
    return compare(
        side(baseline_topic), side(candidate_topic), id_field=id_field, start_ms=start_ms,
        end_ms=end_ms, positives=positives, labels_topic=labels_topic,
    )


def read_decisions(records: Iterable[Record], topic: str, id_field: str, inside: Any) -> Decisions:
    """The ids of ``records`` whose timestamp is ``inside`` the window."""
    ids: list[str] = []
    unreadable = outside = 0
    for record in records:
        if not inside(record.timestamp_ms):
            outside += 1
            continue
        value = _json(record)
        ident = value.get(id_field) if value is not None else None
        if ident is None:
            unreadable += 1
        else:
            ids.append(str(ident))
    return Decisions(topic, tuple(ids), unreadable, outside)


def _side(d: Decisions, positives: set[str] | None) -> Side:
    counts = Counter(d.ids)
    dupes = [i for i, n in counts.items() if n > 1]
    tp = precision = recall = f1 = None
    if positives is not None:
        tp = sum(1 for i in counts if i in positives)
        precision = tp / len(counts) if counts else None
        recall = tp / len(positives) if positives else None
        if precision is not None and recall is not None:
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Side(
        d.topic, len(d.ids), len(counts), len(d.ids) - len(counts), _examples(dupes),
        d.unreadable, d.outside, tp, precision, recall, f1,
    )


def _examples(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(ids)[:EXAMPLES])


def _json(record: Record) -> dict[str, Any] | None:
    if record.value is None:
        return None
    try:
        value = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
