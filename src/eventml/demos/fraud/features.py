"""Per-card rolling features: one definition for training (history) and serving (the log).

Pure: no I/O, no wall clock. Feed transactions of a card in event-time order; each
:meth:`FeatureExtractor.update_one` returns the features of that transaction and
then folds it into the card's state.

Conventions:

* the one-hour window is ``(t - 1h, t]`` and includes the current transaction;
* history features (z-score, new category, speed, time since last) compare the
  current transaction with the card's *previous* transactions only;
* the z-score is on ``log1p(amount)`` (card amounts are roughly lognormal), with
  Welford's running mean/variance and a floor on the deviation; 0 with < 2 prior.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from eventml.demos.fraud.catalog import CATEGORY_INDEX
from eventml.demos.fraud.geo import haversine_km
from eventml.demos.fraud.transaction import Transaction

WINDOW_MS = 3_600_000
MIN_STD = 0.25  # floor for the log-amount deviation, so two similar amounts don't make z explode
MIN_ELAPSED_S = 60.0  # speeds are computed over at least a minute

FEATURE_NAMES: tuple[str, ...] = (
    "amount_log",  # log1p(amount)
    "count_1h",  # the card's transactions in the last hour, this one included
    "sum_1h",  # their amount sum
    "amount_zscore",  # log-amount z-score vs the card's previous transactions
    "history_count",  # the card's previous transactions
    "new_category",  # 1 if the card has history and never used this category
    "since_last_log_s",  # log1p(seconds since the card's previous transaction), -1 if none
    "speed_kmh",  # distance from the previous transaction's place / elapsed time
    "home_distance_km",  # distance from where the card was first seen
    "local_hour",  # solar local hour of the place (0-24)
    "category_code",  # index of the merchant category (-1 if unknown)
)


@dataclass(slots=True)
class CardState:
    """What is remembered about one card."""

    window: deque[tuple[int, float]] = field(default_factory=deque)  # (time_ms, amount)
    count: int = 0
    mean: float = 0.0  # Welford over log1p(amount)
    m2: float = 0.0
    categories: set[str] = field(default_factory=set)
    last_time_ms: int = 0
    last_lat: float = 0.0
    last_lon: float = 0.0
    home_lat: float = 0.0
    home_lon: float = 0.0

    def zscore(self, value: float) -> float:
        if self.count < 2:
            return 0.0
        std = math.sqrt(self.m2 / (self.count - 1))
        return (value - self.mean) / max(std, MIN_STD)

    def __reduce__(self) -> tuple[type[CardState], tuple[object, ...]]:
        # positional fields pickle several times faster than the dataclass' __getstate__
        return CardState, (
            self.window, self.count, self.mean, self.m2, self.categories, self.last_time_ms,
            self.last_lat, self.last_lon, self.home_lat, self.home_lon,
        )

    def copy(self) -> CardState:
        """An independent copy (state handed to the engine is never changed in place)."""
        return CardState(
            deque(self.window), self.count, self.mean, self.m2, set(self.categories),
            self.last_time_ms, self.last_lat, self.last_lon, self.home_lat, self.home_lon,
        )

    def learn(self, tx: Transaction, log_amount: float) -> None:
        if self.count == 0:
            self.home_lat, self.home_lon = tx.lat, tx.lon
        self.count += 1
        delta = log_amount - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (log_amount - self.mean)
        self.categories.add(tx.category)
        self.last_time_ms = tx.time_ms
        self.last_lat, self.last_lon = tx.lat, tx.lon


class FeatureExtractor:
    """Keyed state (one :class:`CardState` per card) and the feature function."""

    feature_names = FEATURE_NAMES

    def __init__(self) -> None:
        self.cards: dict[str, CardState] = {}

    def update_one(self, tx: Transaction) -> list[float]:
        """The features of ``tx`` given the card's past; then remember ``tx``."""
        state = self.cards.get(tx.card_id)
        if state is None:
            state = self.cards[tx.card_id] = CardState()
        return featurize(state, tx)

    def update_many(self, txs: Iterable[Transaction]) -> NDArray[np.float64]:
        """:meth:`update_one` over ``txs`` in order, as a ``(n, len(FEATURE_NAMES))`` array."""
        rows = [self.update_one(tx) for tx in txs]
        if not rows:
            return np.empty((0, len(FEATURE_NAMES)), dtype=np.float64)
        return np.asarray(rows, dtype=np.float64)


def featurize(state: CardState, tx: Transaction) -> list[float]:
    """The features of ``tx`` given the card's past in ``state``; then fold ``tx`` into ``state``."""
    window = state.window
    window.append((tx.time_ms, tx.amount))
    horizon = tx.time_ms - WINDOW_MS
    while window[0][0] <= horizon:
        window.popleft()
    log_amount = math.log1p(tx.amount)
    if state.count:
        elapsed_s = max(0.0, (tx.time_ms - state.last_time_ms) / 1000)
        moved_km = haversine_km(state.last_lat, state.last_lon, tx.lat, tx.lon)
        since_last = math.log1p(elapsed_s)
        speed = moved_km / (max(elapsed_s, MIN_ELAPSED_S) / 3600)
        home_km = haversine_km(state.home_lat, state.home_lon, tx.lat, tx.lon)
        new_category = float(tx.category not in state.categories)
    else:
        since_last, speed, home_km, new_category = -1.0, 0.0, 0.0, 0.0
    features = [
        log_amount,
        float(len(window)),
        sum(a for _, a in window),
        state.zscore(log_amount),
        float(state.count),
        new_category,
        since_last,
        speed,
        home_km,
        local_hour(tx.time_ms, tx.lon),
        float(CATEGORY_INDEX.get(tx.category, -1)),
    ]
    state.learn(tx, log_amount)
    return features


def local_hour(time_ms: int, lon: float) -> float:
    """Solar local time of day in hours (UTC shifted by longitude / 15)."""
    return ((time_ms / 3_600_000) + lon / 15.0) % 24.0
