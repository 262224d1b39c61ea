"""A card transaction, the unit the generator produces and the pipeline scores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Transaction:
    """One card payment. ``time_ms`` is event time (ms since the epoch, simulated clock).

    It carries no fraud label: ground truth stays beside it, in the generator's output.
    ``lat``/``lon`` is where the card was used (for online purchases, where the
    cardholder was).
    """

    card_id: str
    merchant_id: str
    category: str
    amount: float
    lat: float
    lon: float
    time_ms: int

    @property
    def time(self) -> datetime:
        return ms_to_datetime(self.time_ms)


def ms_to_datetime(ms: int) -> datetime:
    """Exact (no float rounding) UTC datetime for ``ms`` since the epoch."""
    return _EPOCH + ms * _MS


def datetime_to_ms(time: datetime) -> int:
    """Exact inverse of :func:`ms_to_datetime` (sub-millisecond parts are dropped)."""
    return (time - _EPOCH) // _MS
