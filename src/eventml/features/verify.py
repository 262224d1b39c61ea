"""Training/serving skew: compare the values a pipeline served with historical retrieval.

The served log (``materialize(..., log_served=True)``) holds, for every event, the
values computed online when it was processed: in batches, across restarts and
restores, with the event's place ``n`` in its entity's arrivals. :func:`verify_served`
samples those records and replays the source the way historical retrieval does (per
entity in log order, late events dropped by the view's allowed lateness) up to each
record's ``n``th event, reading the values at the entity's stream time then, as online
did. Out-of-order events within the allowed lateness are therefore not skew, and
events dropped as too late are dropped on both sides (the report counts them); any
difference is skew: a restore bug, a feature computed differently, events reordered
in the log between serving and retrieval. Served records without ``n`` (older
pipelines) are compared by ``(entity, time)`` with
:func:`~eventml.features.historical.get_historical_features`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from eventml.features.historical import _historical_by_arrival, _records, get_historical_features
from eventml.features.spec import FeatureView
from eventml.log.base import Log


@dataclass(frozen=True)
class SkewReport:
    view: str
    compared: int
    mismatches: int
    examples: list[str] = field(default_factory=list)
    late: int = 0  # of the compared records, events the view dropped as too late

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    def to_json(self) -> dict[str, Any]:
        """The report as JSON; ``late`` only when some compared events were dropped
        (reports of in-order streams keep their earlier shape)."""
        out: dict[str, Any] = {"view": self.view, "compared": self.compared,
                               "mismatches": self.mismatches, "examples": self.examples}
        if self.late:
            out["late"] = self.late
        return out


def verify_served(
    log: Log,
    view: FeatureView,
    served_topic: str,
    *,
    sample: int | None = 10_000,
    seed: int = 0,
    decode: Callable[[bytes], Any] = orjson.loads,
    rel_tol: float = 1e-9,
    timeout_s: float = 120.0,
    from_offsets: Mapping[int, int] | None = None,
) -> SkewReport:
    """Compare ``sample`` served records (all with ``None``) with historical retrieval
    (of the source from ``from_offsets`` on, if given: the events the pipeline saw)."""
    served = [orjson.loads(r.value) for r in _records(log, served_topic, timeout_s) if r.value is not None]
    if sample is not None and sample < len(served):
        served = random.Random(seed).sample(served, sample)
    by_arrival = [s for s in served if "n" in s]
    by_time = [s for s in served if "n" not in s]
    wants: list[tuple[Any, ...]] = []
    if by_arrival:
        wants, _ = _historical_by_arrival(
            log, view, [(s["entity"], int(s["n"])) for s in by_arrival], decode=decode,
            timeout_s=timeout_s, from_offsets=from_offsets,
        )
    if by_time:
        historical = get_historical_features(
            log, view, [(s["entity"], int(s["t"])) for s in by_time], decode=decode,
            timeout_s=timeout_s, from_offsets=from_offsets,
        )
        wants += [row[2:] for row in historical.rows]
    names = view.feature_names
    mismatches = 0
    examples: list[str] = []
    for s, wanted in zip([*by_arrival, *by_time], wants, strict=True):
        for name, want in zip(names, wanted, strict=True):
            got = s["values"].get(name)
            if not _same(got, want, rel_tol):
                mismatches += 1
                if len(examples) < 10:
                    examples.append(f"{s['entity']}@{s['t']} {name}: served {got!r}, historical {want!r}")
    late = sum(1 for s in served if s.get("late"))
    return SkewReport(view.name, len(served), mismatches, examples, late)


def _same(a: Any, b: Any, rel_tol: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=1e-12)
    return bool(a == b)
