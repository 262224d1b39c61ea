"""A seeded generator of card transactions with injected fraud (pure, deterministic).

Genuine traffic: each card has a home city, a spending scale, favourite categories
and an activity level; purchases arrive as a Poisson process whose rate follows
the time of day, on a simulated clock. Cardholders sometimes travel (never faster
than a plane). Fraud episodes (:mod:`~eventml.demos.fraud.patterns`) start on a
small share of genuine transactions and are merged into the stream in time order.

The ground truth is returned beside the transactions (:attr:`GeneratedTransactions.patterns`),
never inside them.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from numpy.typing import NDArray

from eventml.demos.fraud.catalog import (
    CATEGORIES,
    CATEGORY_NAMES,
    CITIES,
    HOURLY_INTENSITY,
    REGION_UTC_OFFSET_HOURS,
)
from eventml.demos.fraud.geo import haversine_km
from eventml.demos.fraud.patterns import HOUR_MS, PATTERNS, Victim
from eventml.demos.fraud.population import ONLINE, Population, draw_population
from eventml.demos.fraud.transaction import Transaction, datetime_to_ms

DAY_MS = 24 * HOUR_MS
PLANE_KMH = 700.0
_CHUNK = 4096


PatternWeights = tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class TacticsChange:
    """Concept drift: from ``after_ms`` past the start on, fraud episodes follow
    ``pattern_weights`` (and, if given, start at ``fraud_episodes_per_transaction``).

    Episodes already under way go on as planned; only new ones change.
    """

    after_ms: int
    pattern_weights: PatternWeights
    fraud_episodes_per_transaction: float | None = None


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    cards: int = 10_000
    start: datetime = datetime(2024, 3, 1, tzinfo=UTC)
    transactions_per_card_per_day: float = 2.5
    fraud_episodes_per_transaction: float = 0.004
    pattern_weights: PatternWeights = (
        ("card_testing", 0.15),
        ("high_value_new_category", 0.45),
        ("geo_jump", 0.40),
    )
    trip_probability: float = 0.01  # per genuine transaction at home
    tactics_change: TacticsChange | None = None

    @property
    def change_ms(self) -> int | None:
        """The event time the tactics change (None: they never do)."""
        if self.tactics_change is None:
            return None
        return datetime_to_ms(self.start) + self.tactics_change.after_ms


@dataclass(frozen=True, slots=True)
class GeneratedTransactions:
    """Transactions in event-time order, and per transaction its fraud pattern ("" if genuine)."""

    transactions: tuple[Transaction, ...]
    patterns: tuple[str, ...]
    labels: NDArray[np.bool_] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        labels = np.fromiter((p != "" for p in self.patterns), dtype=np.bool_, count=len(self))
        object.__setattr__(self, "labels", labels)

    def __len__(self) -> int:
        return len(self.patterns)

    @property
    def fraud_count(self) -> int:
        return int(self.labels.sum())

    @property
    def fraud_rate(self) -> float:
        return self.fraud_count / len(self) if len(self) else 0.0


def generate_transactions(
    count: int, *, seed: int | Sequence[int], config: GeneratorConfig | None = None
) -> GeneratedTransactions:
    """Exactly ``count`` transactions; the same ``seed`` and config give the same output."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = np.random.default_rng(seed)
    config = config or GeneratorConfig()
    return _Simulation(rng, draw_population(rng, config.cards), config).run(count)


class _Simulation:
    def __init__(self, rng: np.random.Generator, pop: Population, config: GeneratorConfig) -> None:
        self.rng = rng
        self.pop = pop
        self.config = config
        n = pop.cards
        self.city: list[int] = pop.home_city.tolist()
        self.trip_end: list[int] = [0] * n
        self.last_genuine: list[int] = [-(10**15)] * n
        self.history: list[int] = [0] * n
        self.used: list[set[int]] = [set() for _ in range(n)]
        self.fraud_until: list[int] = [0] * n
        self.mean_gap_ms = DAY_MS / (n * config.transactions_per_card_per_day)
        self.mix = _Mix(config.pattern_weights, config.fraud_episodes_per_transaction)
        change = config.tactics_change
        self.change_ms = config.change_ms if config.change_ms is not None else 2**62
        self.changed = self.mix if change is None else _Mix(
            change.pattern_weights,
            config.fraud_episodes_per_transaction
            if change.fraud_episodes_per_transaction is None
            else change.fraud_episodes_per_transaction,
        )
        self.travel_hours = np.array(
            [
                [haversine_km(a.lat, a.lon, b.lat, b.lon) / PLANE_KMH + 1 for b in CITIES]
                for a in CITIES
            ]
        )
        city_w = np.array([c.weight for c in CITIES])
        self.city_p = city_w / city_w.sum()
        self.log_median = np.log([c.median_amount for c in CATEGORIES])
        self.sigma = np.array([c.sigma for c in CATEGORIES])
        self.online = [c.online for c in CATEGORIES]

    def run(self, count: int) -> GeneratedTransactions:
        txs: list[Transaction] = []
        patterns: list[str] = []
        pending: list[tuple[int, int, Transaction, str]] = []  # heap by time, then schedule order
        scheduled = 0
        t = datetime_to_ms(self.config.start)
        while len(txs) < count:
            gaps, cards, cats, log_amounts, u = self._draw_chunk()
            for i in range(len(cards)):
                t += 1 + int(gaps[i] * self.mean_gap_ms / self._intensity(t))
                while pending and pending[0][0] <= t and len(txs) < count:
                    _, _, tx, pattern = heapq.heappop(pending)
                    self._remember(tx)
                    txs.append(tx)
                    patterns.append(pattern)
                if len(txs) >= count:
                    break
                card = cards[i]
                tx = self._genuine(t, card, cats[i], log_amounts[i], u[0][i], u[1][i])
                self._remember(tx)
                self.last_genuine[card] = t
                txs.append(tx)
                patterns.append("")
                mix = self.mix if t < self.change_ms else self.changed
                if u[2][i] < mix.episode_rate and self.fraud_until[card] < t:
                    name, fraud = self._episode(mix, card, t)
                    for ftx in fraud:
                        heapq.heappush(pending, (ftx.time_ms, scheduled, ftx, name))
                        scheduled += 1
                    if fraud:
                        self.fraud_until[card] = fraud[-1].time_ms
        return GeneratedTransactions(tuple(txs), tuple(patterns))

    def _draw_chunk(
        self,
    ) -> tuple[list[float], list[int], list[int], list[float], list[list[float]]]:
        rng, pop = self.rng, self.pop
        gaps = rng.standard_exponential(_CHUNK)
        cards = np.minimum(
            np.searchsorted(pop.activity_cdf, rng.random(_CHUNK), side="right"), pop.cards - 1
        )
        u_cat = rng.random(_CHUNK)
        cats = np.minimum(
            (u_cat[:, None] >= pop.category_cdf[cards]).sum(axis=1), len(CATEGORIES) - 1
        )
        log_amounts = (
            self.log_median[cats]
            + np.log(pop.spend_scale[cards])
            + self.sigma[cats] * rng.standard_normal(_CHUNK)
        )
        u = rng.random((3, _CHUNK))  # merchant, trip, fraud episode
        return gaps.tolist(), cards.tolist(), cats.tolist(), log_amounts.tolist(), u.tolist()

    def _intensity(self, t: int) -> float:
        return HOURLY_INTENSITY[(t // HOUR_MS + REGION_UTC_OFFSET_HOURS) % 24]

    def _genuine(
        self, t: int, card: int, cat: int, log_amount: float, u_merchant: float, u_trip: float
    ) -> Transaction:
        city = self._move(t, card, u_trip)
        pop = self.pop
        if self.online[cat]:
            merchant = pop.merchants.pick(cat, ONLINE, u_merchant)
            lat, lon = CITIES[city].lat, CITIES[city].lon
        else:
            merchant = pop.merchants.pick(cat, city, u_merchant)
            lat, lon = float(pop.merchants.lat[merchant]), float(pop.merchants.lon[merchant])
        amount = max(0.01, round(math.exp(log_amount), 2))
        return Transaction(
            pop.card_id(card), pop.merchants.merchant_id(merchant), CATEGORY_NAMES[cat],
            amount, lat, lon, t,
        )  # fmt: skip

    def _move(self, t: int, card: int, u_trip: float) -> int:
        """Where the cardholder is at ``t``: trips start and end only as fast as a plane allows."""
        city, home = self.city[card], int(self.pop.home_city[card])
        since_last_h = (t - self.last_genuine[card]) / HOUR_MS
        if city == home:
            if u_trip < self.config.trip_probability:
                dest = int(self.rng.choice(len(CITIES), p=self.city_p))
                if dest != home and since_last_h >= self.travel_hours[home, dest]:
                    self.city[card] = dest
                    self.trip_end[card] = t + int(self.rng.uniform(1, 7) * DAY_MS)
        elif t >= self.trip_end[card] and since_last_h >= self.travel_hours[city, home]:
            self.city[card] = home
        return self.city[card]

    def _episode(self, mix: _Mix, card: int, t: int) -> tuple[str, list[Transaction]]:
        name = mix.names[int(self.rng.choice(len(mix.names), p=mix.p))]
        victim = Victim(card, self.city[card], frozenset(self.used[card]), self.history[card])
        return name, PATTERNS[name](self.rng, self.pop, victim, t)

    def _remember(self, tx: Transaction) -> None:
        card = int(tx.card_id.rpartition("-")[2])
        self.history[card] += 1
        self.used[card].add(CATEGORY_NAMES.index(tx.category))


class _Mix:
    """Which fraud patterns start, in what proportions, and how often."""

    def __init__(self, weights: PatternWeights, episode_rate: float) -> None:
        names, w = zip(*weights, strict=True)
        unknown = sorted(set(names) - set(PATTERNS))
        if unknown:
            raise ValueError(f"unknown fraud patterns {unknown}: use some of {sorted(PATTERNS)}")
        self.names: tuple[str, ...] = names
        p = np.array(w, dtype=np.float64)
        self.p = p / p.sum()
        self.episode_rate = episode_rate
