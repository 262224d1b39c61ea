"""Cards and merchants drawn from a seed: who shops where, how much and how often."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from eventml.demos.fraud.catalog import CATEGORIES, CITIES

ONLINE = -1  # the "city" of online merchants
MERCHANTS_PER_ONLINE_CATEGORY = 150
MERCHANT_JITTER_DEG = 0.04  # merchants sit within a few km of their city's centre


@dataclass(frozen=True, slots=True)
class Merchants:
    """Merchant ``i`` is ``merchant_id(i)``; ``ranges[(category, city)] = (first, count)``."""

    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    ranges: dict[tuple[int, int], tuple[int, int]]

    def pick(self, category: int, city: int, u: float) -> int:
        """The merchant of ``category`` in ``city`` (or online) at quantile ``u`` in [0, 1)."""
        key = (category, ONLINE if CATEGORIES[category].online else city)
        first, count = self.ranges[key]
        return first + min(int(u * count), count - 1)

    @staticmethod
    def merchant_id(i: int) -> str:
        return f"m-{i:05d}"


@dataclass(frozen=True, slots=True)
class Population:
    """Per card: home city, spending scale, category preferences (CDF) and activity (CDF)."""

    home_city: NDArray[np.int64]
    spend_scale: NDArray[np.float64]
    category_cdf: NDArray[np.float64]  # (cards, categories)
    activity_cdf: NDArray[np.float64]  # (cards,)
    merchants: Merchants

    @property
    def cards(self) -> int:
        return len(self.home_city)

    @staticmethod
    def card_id(i: int) -> str:
        return f"card-{i:05d}"


def draw_population(rng: np.random.Generator, cards: int) -> Population:
    city_w = np.array([c.weight for c in CITIES])
    home = rng.choice(len(CITIES), size=cards, p=city_w / city_w.sum()).astype(np.int64)
    scale = rng.lognormal(0.0, 0.35, size=cards)
    base = np.array([c.weight for c in CATEGORIES])
    base = base / base.sum()
    # each card favours a few categories, but can still buy anything
    prefs = 0.85 * rng.dirichlet(base * 4.0, size=cards) + 0.15 * base
    activity = rng.gamma(2.0, 0.5, size=cards)
    return Population(
        home_city=home,
        spend_scale=scale,
        category_cdf=np.cumsum(prefs / prefs.sum(axis=1, keepdims=True), axis=1),
        activity_cdf=np.cumsum(activity / activity.sum()),
        merchants=_draw_merchants(rng),
    )


def _draw_merchants(rng: np.random.Generator) -> Merchants:
    lat: list[float] = []
    lon: list[float] = []
    ranges: dict[tuple[int, int], tuple[int, int]] = {}
    for ci, cat in enumerate(CATEGORIES):
        if cat.online:
            ranges[(ci, ONLINE)] = (len(lat), MERCHANTS_PER_ONLINE_CATEGORY)
            lat.extend([float("nan")] * MERCHANTS_PER_ONLINE_CATEGORY)
            lon.extend([float("nan")] * MERCHANTS_PER_ONLINE_CATEGORY)
            continue
        for ki, city in enumerate(CITIES):
            n = max(2, round(3 * city.weight))
            ranges[(ci, ki)] = (len(lat), n)
            jitter = rng.normal(0.0, MERCHANT_JITTER_DEG, size=(n, 2))
            lat.extend((city.lat + jitter[:, 0]).tolist())
            lon.extend((city.lon + jitter[:, 1]).tolist())
    return Merchants(np.array(lat), np.array(lon), ranges)
