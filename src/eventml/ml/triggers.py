"""When to retrain (pure): a drift event, a schedule in event time, or N new labels,
with a cool-down so a burst of signals launches one job.

:class:`RetrainTrigger` is the configuration; :meth:`RetrainTrigger.build` makes the
:class:`TriggerLogic` that is fed the signals, each with its event time (nothing reads
a clock), and answers a :class:`RetrainRequest` when a job should start. The request's
``at_ms`` is the job's cut-off: it trains on what was known then.

>>> logic = RetrainTrigger(new_labels=3, cooldown_ms=1_000).build()
>>> logic.on_labels(2, now_ms=10), logic.on_labels(1, now_ms=20).cause
(None, 'labels')
>>> logic.on_labels(5, now_ms=30) is None  # in the cool-down: waits for it to end
True
>>> logic.on_time(1_020).reason
'5 new labels since the last training (threshold 3)'

Rules. Every request counts as a training at its ``at_ms``: the label count restarts
at zero, the schedule counts ``every_ms`` from there, and no request is made within
``cooldown_ms`` of it. A drift event inside the cool-down is dropped (counted in
:attr:`TriggerLogic.suppressed`): the job just launched trains on data that already
shows the drift. A label or schedule condition met inside the cool-down is kept and
fires at the first signal after it (``on_time`` is that signal when nothing else
comes). Signal times may arrive out of order; the logic's time only moves forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from eventml.ml.records import DriftDetected

__all__ = ["RetrainRequest", "RetrainTrigger", "TriggerCause", "TriggerLogic"]

TriggerCause = Literal["drift", "schedule", "labels"]


@dataclass(frozen=True, slots=True)
class RetrainRequest:
    """Start a retraining job with cut-off ``at_ms`` (event time), because ``reason``."""

    cause: TriggerCause
    at_ms: int
    reason: str
    labels_since: int  # labels counted since the previous training
    drift: DriftDetected | None = None


@dataclass(frozen=True, slots=True)
class RetrainTrigger:
    """When to retrain: on a drift event (``on_drift``), every ``every_ms`` of event time
    since the last training, or once ``new_labels`` labels arrived since it; never twice
    within ``cooldown_ms``. ``None`` turns a condition off."""

    on_drift: bool = True
    every_ms: int | None = None
    new_labels: int | None = None
    cooldown_ms: int = 0

    def __post_init__(self) -> None:
        if self.every_ms is not None and self.every_ms <= 0:
            raise ValueError(f"every_ms must be > 0 (or None for no schedule), got {self.every_ms}")
        if self.new_labels is not None and self.new_labels <= 0:
            raise ValueError(f"new_labels must be > 0 (or None), got {self.new_labels}")
        if self.cooldown_ms < 0:
            raise ValueError(f"cooldown_ms must be >= 0, got {self.cooldown_ms}")

    def build(self, *, last_trained_ms: int | None = None, labels_since: int = 0) -> TriggerLogic:
        """The logic, resumed from the last training's cut-off (e.g. the challenger's
        ``training.end_ms`` in the registry) and the labels counted since."""
        return TriggerLogic(self, last_trained_ms=last_trained_ms, labels_since=labels_since)


class TriggerLogic:
    """The state of one :class:`RetrainTrigger`: last training, labels since, time."""

    def __init__(
        self, config: RetrainTrigger, *, last_trained_ms: int | None = None, labels_since: int = 0
    ) -> None:
        self.config = config
        self.last_trained_ms = last_trained_ms
        self.labels_since = labels_since
        self.now_ms: int | None = last_trained_ms
        self.suppressed = 0  # drift events dropped inside a cool-down
        self.requests = 0
        self._anchor_ms = last_trained_ms  # the schedule counts from here

    def _advance(self, now_ms: int) -> int:
        self.now_ms = now_ms if self.now_ms is None else max(self.now_ms, now_ms)
        if self._anchor_ms is None:
            self._anchor_ms = self.now_ms
        return self.now_ms

    def in_cooldown(self, now_ms: int) -> bool:
        last = self.last_trained_ms
        return last is not None and now_ms < last + self.config.cooldown_ms

    def on_drift(self, event: DriftDetected, now_ms: int | None = None) -> RetrainRequest | None:
        """A drift event (at ``now_ms``, default its window's end)."""
        now = self._advance(event.window_end_ms if now_ms is None else now_ms)
        if not self.config.on_drift:
            return self._pending(now)
        if self.in_cooldown(now):
            self.suppressed += 1
            return None
        what = f"{event.kind} drift on {event.feature}" if event.feature else f"{event.kind} drift"
        reason = (f"{what} in {event.model}: {event.statistic}={event.value:.4g} "
                  f">= {event.threshold:.4g} (alpha {event.alpha:g})")
        return self._fire("drift", now, reason, event)

    def on_labels(self, count: int, now_ms: int) -> RetrainRequest | None:
        """``count`` new labels arrived by ``now_ms``."""
        if count < 0:
            raise ValueError(f"a label count cannot be negative, got {count}")
        self.labels_since += count
        return self._pending(self._advance(now_ms))

    def on_time(self, now_ms: int) -> RetrainRequest | None:
        """Event time reached ``now_ms`` (e.g. a watermark, or each batch's newest time)."""
        return self._pending(self._advance(now_ms))

    def _pending(self, now: int) -> RetrainRequest | None:
        """A label or schedule condition that holds, outside the cool-down."""
        if self.in_cooldown(now):
            return None
        c = self.config
        if c.new_labels is not None and self.labels_since >= c.new_labels:
            reason = f"{self.labels_since} new labels since the last training (threshold {c.new_labels})"
            return self._fire("labels", now, reason)
        if c.every_ms is not None and self._anchor_ms is not None and now >= self._anchor_ms + c.every_ms:
            since = "the last training" if self.last_trained_ms is not None else "the first signal"
            return self._fire("schedule", now, f"{now - self._anchor_ms} ms since {since} "
                                               f"(every {c.every_ms} ms)")
        return None

    def _fire(
        self, cause: TriggerCause, now: int, reason: str, drift: DriftDetected | None = None
    ) -> RetrainRequest:
        request = RetrainRequest(cause, now, reason, self.labels_since, drift)
        self.last_trained_ms = self._anchor_ms = now
        self.labels_since = 0
        self.requests += 1
        return request
