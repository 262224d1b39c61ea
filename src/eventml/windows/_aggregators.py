"""Mergeable aggregators: ``initialize / add / merge / result``, all pure.

Accumulators are immutable values (ints, floats, tuples, frozensets, bytes)
or fresh copies, so ``add`` and ``merge`` never change their arguments and an
accumulator can be stored, shared and merged (session windows, partitions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

V_contra = TypeVar("V_contra", contravariant=True)
A = TypeVar("A")
R_co = TypeVar("R_co", covariant=True)


class Aggregator(Protocol[V_contra, A, R_co]):
    """Any object with these four pure methods is an aggregator.

    ``merge(a, b)`` must equal adding ``b``'s values after ``a``'s.
    """

    def initialize(self) -> A:
        """The accumulator of no values."""
        ...

    def add(self, acc: A, value: V_contra) -> A:
        """A new accumulator with ``value`` added."""
        ...

    def merge(self, a: A, b: A) -> A:
        """A new accumulator of ``a``'s values followed by ``b``'s."""
        ...

    def result(self, acc: A) -> R_co:
        """The aggregate the accumulator stands for."""
        ...


@dataclass(frozen=True, slots=True)
class Count:
    """Number of values."""

    def initialize(self) -> int:
        return 0

    def add(self, acc: int, value: object) -> int:
        return acc + 1

    def merge(self, a: int, b: int) -> int:
        return a + b

    def result(self, acc: int) -> int:
        return acc


@dataclass(frozen=True, slots=True)
class Sum:
    """Sum of numeric values (0 for none)."""

    def initialize(self) -> float:
        return 0

    def add(self, acc: float, value: float) -> float:
        return acc + value

    def merge(self, a: float, b: float) -> float:
        return a + b

    def result(self, acc: float) -> float:
        return acc


@dataclass(frozen=True, slots=True)
class Mean:
    """Arithmetic mean (None for no values); accumulator ``(count, sum)``."""

    def initialize(self) -> tuple[int, float]:
        return (0, 0.0)

    def add(self, acc: tuple[int, float], value: float) -> tuple[int, float]:
        return (acc[0] + 1, acc[1] + value)

    def merge(self, a: tuple[int, float], b: tuple[int, float]) -> tuple[int, float]:
        return (a[0] + b[0], a[1] + b[1])

    def result(self, acc: tuple[int, float]) -> float | None:
        return acc[1] / acc[0] if acc[0] else None


@dataclass(frozen=True, slots=True)
class Min:
    """Smallest value (None for no values)."""

    def initialize(self) -> float | None:
        return None

    def add(self, acc: float | None, value: float) -> float | None:
        return value if acc is None or value < acc else acc

    def merge(self, a: float | None, b: float | None) -> float | None:
        return b if a is None else a if b is None else min(a, b)

    def result(self, acc: float | None) -> float | None:
        return acc


@dataclass(frozen=True, slots=True)
class Max:
    """Largest value (None for no values)."""

    def initialize(self) -> float | None:
        return None

    def add(self, acc: float | None, value: float) -> float | None:
        return value if acc is None or value > acc else acc

    def merge(self, a: float | None, b: float | None) -> float | None:
        return b if a is None else a if b is None else max(a, b)

    def result(self, acc: float | None) -> float | None:
        return acc


Welford = tuple[int, float, float]
"""``(count, mean, sum of squared deviations)``."""


@dataclass(frozen=True, slots=True)
class StdDev:
    """Standard deviation by Welford's algorithm; merged with Chan et al.'s formula.

    ``ddof=1`` (the default, as river's ``Var``) gives the sample standard
    deviation, ``ddof=0`` the population one; None while ``count <= ddof``.
    """

    ddof: int = 1

    def initialize(self) -> Welford:
        return (0, 0.0, 0.0)

    def add(self, acc: Welford, value: float) -> Welford:
        n, mean, m2 = acc
        n += 1
        delta = value - mean
        mean += delta / n
        return (n, mean, m2 + delta * (value - mean))

    def merge(self, a: Welford, b: Welford) -> Welford:
        if a[0] == 0:
            return b
        if b[0] == 0:
            return a
        n = a[0] + b[0]
        delta = b[1] - a[1]
        mean = a[1] + delta * b[0] / n
        return (n, mean, a[2] + b[2] + delta * delta * a[0] * b[0] / n)

    def result(self, acc: Welford) -> float | None:
        n, _, m2 = acc
        if n <= self.ddof:
            return None
        return math.sqrt(max(m2, 0.0) / (n - self.ddof))


@dataclass(frozen=True, slots=True)
class Last:
    """The value with the latest event time (None for no values).

    Values are ``(event_time_ms, value)`` pairs, since ``add`` sees only the
    value: call ``process(key, t, (t, v))``. On equal times the value added
    (or merged) later wins.
    """

    def initialize(self) -> tuple[int, Any] | None:
        return None

    def add(self, acc: tuple[int, Any] | None, value: tuple[int, Any]) -> tuple[int, Any] | None:
        return value if acc is None or value[0] >= acc[0] else acc

    def merge(self, a: tuple[int, Any] | None, b: tuple[int, Any] | None) -> tuple[int, Any] | None:
        if a is None:
            return b
        if b is None:
            return a
        return b if b[0] >= a[0] else a

    def result(self, acc: tuple[int, Any] | None) -> Any:
        return None if acc is None else acc[1]
