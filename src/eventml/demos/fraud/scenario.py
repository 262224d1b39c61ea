"""The lifecycle demo's scenario: fraudsters change tactics mid-stream; fraud reports
(chargebacks) arrive days after each fraudulent transaction, during the stream.

The story. A card issuer's model was trained on a history of three fraud patterns
(card testing, high-value purchases in a new category, card-present purchases far
from the cardholder). ``onset_days`` into the live stream, a ring working a batch of
breached card numbers switches to ``gift_card_cashout``
(:func:`~eventml.demos.fraud.patterns.gift_card_cashout`): a few digital gift cards,
bought online at night from the cardholder's own city, nothing like what the model
learned. With a fresh batch of card numbers the ring also works faster: fraud episodes
start twice as often (``post_episode_rate``). The model
misses the new pattern, the fraud reports that come back show it, and the lifecycle
(:mod:`~eventml.demos.fraud.lifecycle`) has to notice, retrain and promote.

Delays. Each fraudulent transaction gets a ``card.chargeback`` ``delay_min_ms`` plus a
lognormal delay (median ``delay_median_ms``, shape ``delay_sigma``) after it, at most
``delay_max_ms``: 1.25 days at the median, 2.2 days at the 95th percentile. Real
chargebacks take weeks; these are compressed (as fraud reports from the cardholder's
app would be) so that one run holds the drift, its labels and the recovery.
"No chargeback" means genuine only after ``maturity_ms`` (2.5 days: 97.5 % of the
reports are in by then): the label join imputes the negative then, and retraining
leaves out newer transactions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from eventml.demos.fraud.events import chargeback_event, transaction_event
from eventml.demos.fraud.generator import (
    DAY_MS,
    GeneratedTransactions,
    GeneratorConfig,
    PatternWeights,
    TacticsChange,
)
from eventml.events import Event

HOUR_MS = 3_600_000
NEW_TACTIC = "gift_card_cashout"


@dataclass(frozen=True, slots=True)
class DriftScenario:
    """The tactics change and the label delays of one lifecycle run."""

    cards: int = 2_000  # ~5,000 transactions a simulated day
    onset_days: float = 5.0
    new_mix: PatternWeights = (
        (NEW_TACTIC, 0.70),
        ("high_value_new_category", 0.12),
        ("card_testing", 0.09),
        ("geo_jump", 0.09),
    )
    pre_episode_rate: float = 0.004  # fraud episodes started per genuine transaction
    post_episode_rate: float = 0.008
    delay_min_ms: int = 12 * HOUR_MS
    delay_median_ms: int = 18 * HOUR_MS  # of the lognormal part (so 1.25 days in all)
    delay_sigma: float = 0.5
    delay_max_ms: int = 10 * DAY_MS
    maturity_ms: int = 60 * HOUR_MS

    def __post_init__(self) -> None:
        if self.cards < 1:
            raise ValueError(f"cards must be >= 1, got {self.cards}")
        if self.onset_days <= 0:
            raise ValueError(f"onset_days must be > 0, got {self.onset_days}")
        if not 0 <= self.delay_min_ms <= self.delay_max_ms:
            raise ValueError("chargeback delays need 0 <= delay_min_ms <= delay_max_ms")

    @property
    def onset_ms(self) -> int:
        """The tactics change, in ms after the stream's start."""
        return int(self.onset_days * DAY_MS)

    def generator_config(self, start: datetime) -> GeneratorConfig:
        return GeneratorConfig(
            cards=self.cards,
            start=start,
            fraud_episodes_per_transaction=self.pre_episode_rate,
            tactics_change=TacticsChange(self.onset_ms, self.new_mix, self.post_episode_rate),
        )

    def chargeback_delays(self, rng: np.random.Generator, n: int) -> NDArray[np.int64]:
        """``n`` reporting delays in ms (see the module docstring)."""
        tail = rng.lognormal(np.log(self.delay_median_ms), self.delay_sigma, n)
        return np.minimum(self.delay_min_ms + tail, self.delay_max_ms).astype(np.int64)

    def describe(self) -> dict[str, object]:
        """The scenario's settings, for the demo's summary."""
        return {
            "cards": self.cards,
            "onset_days": self.onset_days,
            "new_tactic": NEW_TACTIC,
            "mix_before": _mix(GeneratorConfig().pattern_weights),
            "mix_after": _mix(self.new_mix),
            "episodes_per_transaction": [self.pre_episode_rate, self.post_episode_rate],
            "chargeback_delay_days": {
                "min": self.delay_min_ms / DAY_MS,
                "median": (self.delay_min_ms + self.delay_median_ms) / DAY_MS,
                "max": self.delay_max_ms / DAY_MS,
            },
            "label_maturity_days": self.maturity_ms / DAY_MS,
        }


@dataclass(frozen=True, slots=True)
class Slice:
    """What happens in ``[start_ms, end_ms)`` of event time: transactions and chargebacks."""

    start_ms: int
    end_ms: int
    transactions: list[Event]
    chargebacks: list[Event]


@dataclass(frozen=True, slots=True)
class Timeline:
    """The run's events, transactions and their chargebacks, in event-time order.

    ``events[i]`` is transaction ``i`` of the generated stream; ``chargeback_times[i]``
    is when its fraud report arrives (-1: genuine). Chargebacks due after the last
    transaction arrive after the run (``late_chargebacks``): a run's labels are the
    ones it saw.
    """

    live: GeneratedTransactions
    events: list[Event]
    chargebacks: list[Event]  # in arrival order
    chargeback_times: NDArray[np.int64]  # per transaction
    times: NDArray[np.int64] = field(init=False, repr=False)  # per transaction
    arrivals: NDArray[np.int64] = field(init=False, repr=False)  # per chargeback, sorted

    def __post_init__(self) -> None:
        times = np.fromiter((tx.time_ms for tx in self.live.transactions), np.int64, len(self.live))
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "arrivals", np.sort(self.chargeback_times[self.chargeback_times >= 0]))

    @property
    def late_chargebacks(self) -> int:
        """Chargebacks that arrive after the last transaction (outside the run)."""
        last = int(self.times[-1]) if len(self.times) else 0
        return int((self.arrivals > last).sum())

    def slices(self, step_ms: int) -> Iterator[Slice]:
        """Consecutive slices of ``step_ms`` of event time, from the first transaction to
        the last (chargebacks after the last transaction are left out)."""
        if step_ms <= 0:
            raise ValueError(f"step_ms must be > 0, got {step_ms}")
        if not self.events:
            return
        first, last = int(self.times[0]), int(self.times[-1])
        i = j = 0
        for start in range(first, last + 1, step_ms):
            end = start + step_ms
            i2 = int(np.searchsorted(self.times, end, side="left"))
            j2 = int(np.searchsorted(self.arrivals, min(end, last + 1), side="left"))
            yield Slice(start, end, self.events[i:i2], self.chargebacks[j:j2])
            i, j = i2, j2


def build_timeline(
    live: GeneratedTransactions, delays: Sequence[int] | NDArray[np.int64]
) -> Timeline:
    """Transaction events for ``live`` and, for its ``k``-th fraudulent transaction, a
    chargeback ``delays[k]`` later, sorted by arrival."""
    events = [transaction_event(tx) for tx in live.transactions]
    fraud = np.flatnonzero(live.labels)
    if len(delays) < len(fraud):
        raise ValueError(f"{len(fraud)} fraudulent transactions but {len(delays)} delays")
    times = np.full(len(events), -1, dtype=np.int64)
    arrived: list[tuple[int, int, Event]] = []
    for k, i in enumerate(fraud.tolist()):
        tx = live.transactions[i]
        delay = int(delays[k])
        times[i] = tx.time_ms + delay
        arrived.append((tx.time_ms + delay, i, chargeback_event(events[i].id, tx, delay)))
    arrived.sort(key=lambda a: (a[0], a[1]))
    return Timeline(live, events, [e for _, _, e in arrived], times)


def _mix(weights: PatternWeights) -> str:
    total = sum(w for _, w in weights)
    return ", ".join(f"{name} {w / total:.0%}" for name, w in weights)
