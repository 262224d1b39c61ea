"""Training/serving skew: compare the values a pipeline served with historical retrieval.

The served log (``materialize(..., log_served=True)``) holds, for every event, the
values computed online when it was processed: in batches, across restarts and
restores. :func:`verify_served` samples those records and asks
:func:`~eventml.features.historical.get_historical_features` for the same
``(entity, time)`` pairs; any difference is skew (late events, a restore bug, a
feature computed differently).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from eventml.features.historical import _records, get_historical_features
from eventml.features.spec import FeatureView
from eventml.log.base import Log


@dataclass(frozen=True)
class SkewReport:
    view: str
    compared: int
    mismatches: int
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    def to_json(self) -> dict[str, Any]:
        return {"view": self.view, "compared": self.compared, "mismatches": self.mismatches,
                "examples": self.examples}


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
    rows = [(s["entity"], int(s["t"])) for s in served]
    historical = get_historical_features(
        log, view, rows, decode=decode, timeout_s=timeout_s, from_offsets=from_offsets
    )
    names = view.feature_names
    mismatches = 0
    examples: list[str] = []
    for s, row in zip(served, historical.rows, strict=True):
        for name, want in zip(names, row[2:], strict=True):
            got = s["values"].get(name)
            if not _same(got, want, rel_tol):
                mismatches += 1
                if len(examples) < 10:
                    examples.append(f"{s['entity']}@{s['t']} {name}: served {got!r}, historical {want!r}")
    return SkewReport(view.name, len(served), mismatches, examples)


def _same(a: Any, b: Any, rel_tol: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=1e-12)
    return bool(a == b)
