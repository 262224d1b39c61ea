"""The world the generator draws from: cities, merchant categories, time-of-day intensity."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class City:
    name: str
    lat: float
    lon: float
    weight: float  # relative share of cardholders living there


@dataclass(frozen=True, slots=True)
class Category:
    """A merchant category: typical amount (lognormal median and sigma) and popularity."""

    name: str
    median_amount: float
    sigma: float
    weight: float
    online: bool = False  # online purchases happen where the cardholder is


CITIES: tuple[City, ...] = (
    City("New York", 40.7128, -74.0060, 8.0),
    City("Los Angeles", 34.0522, -118.2437, 4.0),
    City("Chicago", 41.8781, -87.6298, 2.7),
    City("Houston", 29.7604, -95.3698, 2.3),
    City("Phoenix", 33.4484, -112.0740, 1.6),
    City("Philadelphia", 39.9526, -75.1652, 1.6),
    City("San Antonio", 29.4241, -98.4936, 1.5),
    City("San Diego", 32.7157, -117.1611, 1.4),
    City("Dallas", 32.7767, -96.7970, 1.3),
    City("San Jose", 37.3382, -121.8863, 1.0),
    City("Austin", 30.2672, -97.7431, 1.0),
    City("Jacksonville", 30.3322, -81.6557, 0.9),
    City("Columbus", 39.9612, -82.9988, 0.9),
    City("Charlotte", 35.2271, -80.8431, 0.9),
    City("San Francisco", 37.7749, -122.4194, 0.9),
    City("Indianapolis", 39.7684, -86.1581, 0.9),
    City("Seattle", 47.6062, -122.3321, 0.75),
    City("Denver", 39.7392, -104.9903, 0.7),
    City("Washington", 38.9072, -77.0369, 0.7),
    City("Boston", 42.3601, -71.0589, 0.7),
    City("Nashville", 36.1627, -86.7816, 0.7),
    City("Detroit", 42.3314, -83.0458, 0.65),
    City("Portland", 45.5152, -122.6784, 0.65),
    City("Las Vegas", 36.1699, -115.1398, 0.65),
    City("Atlanta", 33.7490, -84.3880, 0.5),
    City("Miami", 25.7617, -80.1918, 0.45),
    City("Minneapolis", 44.9778, -93.2650, 0.45),
    City("Toronto", 43.6532, -79.3832, 2.8),
    City("Montreal", 45.5017, -73.5673, 1.8),
    City("Calgary", 51.0447, -114.0719, 1.3),
    City("Vancouver", 49.2827, -123.1207, 0.7),
    City("Mexico City", 19.4326, -99.1332, 3.0),
)

CATEGORIES: tuple[Category, ...] = (
    Category("grocery", 45.0, 0.6, 0.24),
    Category("restaurant", 28.0, 0.6, 0.17),
    Category("fuel", 50.0, 0.35, 0.11),
    Category("coffee", 6.0, 0.4, 0.10),
    Category("pharmacy", 25.0, 0.7, 0.06),
    Category("entertainment", 40.0, 0.6, 0.06),
    Category("online_retail", 60.0, 0.9, 0.12, online=True),
    Category("digital_goods", 10.0, 0.8, 0.04, online=True),
    Category("electronics", 250.0, 0.8, 0.04),
    Category("travel", 450.0, 0.7, 0.03, online=True),
    Category("jewelry", 300.0, 0.9, 0.01),
)
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)
CATEGORY_INDEX: dict[str, int] = {name: i for i, name in enumerate(CATEGORY_NAMES)}
HIGH_VALUE_CATEGORIES: tuple[str, ...] = ("electronics", "jewelry", "travel")

# Relative transaction intensity per local hour (0-23), normalised to a mean of 1.
_HOURLY = (
    0.15, 0.10, 0.08, 0.08, 0.10, 0.20, 0.40, 0.80, 1.10, 1.20, 1.30, 1.50,
    1.80, 1.60, 1.30, 1.30, 1.40, 1.70, 1.90, 1.80, 1.50, 1.10, 0.70, 0.40,
)  # fmt: skip
HOURLY_INTENSITY: tuple[float, ...] = tuple(h * 24 / sum(_HOURLY) for h in _HOURLY)
REGION_UTC_OFFSET_HOURS = -6
"""The region's clock (the cities span UTC-5..-8): it drives when people shop."""
