"""Injected fraud patterns: each turns one victim card into a few fraudulent transactions.

A pattern is a pure function of a random generator, the population, the victim and
the current event time; it returns the fraudulent transactions in time order, all
later than ``at_ms`` (the generator merges them into the stream).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from eventml.demos.fraud.catalog import CATEGORIES, CATEGORY_INDEX, CITIES, HIGH_VALUE_CATEGORIES
from eventml.demos.fraud.geo import haversine_km
from eventml.demos.fraud.population import ONLINE, Population
from eventml.demos.fraud.transaction import Transaction

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
GEO_JUMP_MIN_KM = 1500.0


@dataclass(frozen=True, slots=True)
class Victim:
    card: int
    city: int  # where the cardholder is now
    used_categories: frozenset[int]
    history: int  # the card's transactions so far


Pattern = Callable[[np.random.Generator, Population, Victim, int], list[Transaction]]


def card_testing(
    rng: np.random.Generator, pop: Population, victim: Victim, at_ms: int
) -> list[Transaction]:
    """A burst of 6-15 tiny online charges a minute or so apart, often then a cash-out."""
    city = CITIES[victim.city]
    digital = CATEGORY_INDEX["digital_goods"]
    merchants = [
        pop.merchants.pick(digital, ONLINE, u) for u in rng.random(int(rng.integers(1, 3)))
    ]
    t = at_ms + int(rng.uniform(MINUTE_MS, 3 * HOUR_MS))
    out: list[Transaction] = []
    for _ in range(int(rng.integers(6, 16))):
        t += int(rng.exponential(45_000)) + 1_000
        m = merchants[int(rng.integers(len(merchants)))]
        amount = round(float(rng.uniform(0.5, 4.99)), 2)
        out.append(_tx(pop, victim, m, "digital_goods", amount, city.lat, city.lon, t))
    if rng.random() < 0.7:  # the card works: cash out
        t += int(rng.uniform(2, 30) * MINUTE_MS)
        retail = CATEGORY_INDEX["online_retail"]
        m = pop.merchants.pick(retail, ONLINE, float(rng.random()))
        amount = round(float(rng.uniform(400, 2000)), 2)
        out.append(_tx(pop, victim, m, "online_retail", amount, city.lat, city.lon, t))
    return out


def high_value_new_category(
    rng: np.random.Generator, pop: Population, victim: Victim, at_ms: int
) -> list[Transaction]:
    """One purchase 4-12x the category's typical amount, in a category the card never used."""
    unused = [c for c in HIGH_VALUE_CATEGORIES if CATEGORY_INDEX[c] not in victim.used_categories]
    if victim.history < 3 or not unused:
        return []
    name = unused[int(rng.integers(len(unused)))]
    cat = CATEGORY_INDEX[name]
    scale = float(pop.spend_scale[victim.card])
    amount = round(CATEGORIES[cat].median_amount * scale * float(rng.uniform(4, 12)), 2)
    t = at_ms + int(rng.uniform(10 * MINUTE_MS, 12 * HOUR_MS))
    m = pop.merchants.pick(cat, victim.city, float(rng.random()))
    lat, lon = _place(pop, cat, victim.city, m)
    return [_tx(pop, victim, m, name, amount, lat, lon, t)]


_GEO_CATEGORIES = ("electronics", "jewelry", "grocery", "fuel", "restaurant")
_GEO_WEIGHTS = np.array([0.35, 0.15, 0.2, 0.15, 0.15])


def geo_jump(
    rng: np.random.Generator, pop: Population, victim: Victim, at_ms: int
) -> list[Transaction]:
    """1-3 card-present purchases in a city >= 1500 km away, minutes after a genuine one."""
    here = CITIES[victim.city]
    far = [
        i
        for i, c in enumerate(CITIES)
        if haversine_km(here.lat, here.lon, c.lat, c.lon) >= GEO_JUMP_MIN_KM
    ]
    if not far:
        return []
    weights = np.array([CITIES[i].weight for i in far])
    city = far[int(rng.choice(len(far), p=weights / weights.sum()))]
    scale = float(pop.spend_scale[victim.card])
    t = at_ms + int(rng.uniform(5, 60) * MINUTE_MS)
    out: list[Transaction] = []
    for _ in range(int(rng.integers(1, 4))):
        name = _GEO_CATEGORIES[int(rng.choice(len(_GEO_CATEGORIES), p=_GEO_WEIGHTS))]
        cat = CATEGORY_INDEX[name]
        spec = CATEGORIES[cat]
        typical = spec.median_amount * scale * math.exp(spec.sigma * float(rng.standard_normal()))
        amount = round(typical * float(rng.uniform(1.5, 3.0)), 2)
        m = pop.merchants.pick(cat, city, float(rng.random()))
        lat, lon = _place(pop, cat, city, m)
        out.append(_tx(pop, victim, m, name, amount, lat, lon, t))
        t += int(rng.uniform(2, 20) * MINUTE_MS)
    return out


_GIFT_CARD_DENOMINATIONS = (50.0, 75.0, 100.0, 150.0, 200.0)
_NIGHT_START_H = (0.5, 4.5)  # local hours the cash-out begins between


def gift_card_cashout(
    rng: np.random.Generator, pop: Population, victim: Victim, at_ms: int
) -> list[Transaction]:
    """Low and slow: 2-4 digital gift cards of 50-200 each, bought online through a
    proxy in the cardholder's own city, 25-90 minutes apart, in the small hours.

    The new tactic of the demo's concept drift: no burst (each purchase alone in its
    hour), no distance, no high-value category, amounts only a few times the card's
    usual. A model that learned the other patterns scores it low; the features still
    tell it apart (digital goods at night, far above the card's digital spend).
    """
    city = CITIES[victim.city]
    digital = CATEGORY_INDEX["digital_goods"]
    now_h = (at_ms / HOUR_MS + city.lon / 15.0) % 24.0
    wait_h = (float(rng.uniform(*_NIGHT_START_H)) - now_h) % 24.0
    t = at_ms + int(max(wait_h, 0.2) * HOUR_MS)
    out: list[Transaction] = []
    for _ in range(int(rng.integers(2, 5))):
        amount = _GIFT_CARD_DENOMINATIONS[int(rng.integers(len(_GIFT_CARD_DENOMINATIONS)))]
        m = pop.merchants.pick(digital, ONLINE, float(rng.random()))
        out.append(_tx(pop, victim, m, "digital_goods", amount, city.lat, city.lon, t))
        t += int(rng.uniform(25, 90) * MINUTE_MS)
    return out


PATTERNS: dict[str, Pattern] = {
    "card_testing": card_testing,
    "high_value_new_category": high_value_new_category,
    "geo_jump": geo_jump,
    "gift_card_cashout": gift_card_cashout,
}



def _place(pop: Population, category: int, city: int, merchant: int) -> tuple[float, float]:
    if CATEGORIES[category].online:
        return CITIES[city].lat, CITIES[city].lon
    return float(pop.merchants.lat[merchant]), float(pop.merchants.lon[merchant])


def _tx(
    pop: Population,
    victim: Victim,
    merchant: int,
    category: str,
    amount: float,
    lat: float,
    lon: float,
    time_ms: int,
) -> Transaction:
    return Transaction(
        pop.card_id(victim.card), pop.merchants.merchant_id(merchant), category,
        amount, lat, lon, time_ms,
    )  # fmt: skip
