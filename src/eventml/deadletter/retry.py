"""Retries for an operator's failures (pure: sleep and randomness are passed in).

A failure is one of three kinds:

* ``"permanent"``: retrying cannot help (bad input, a handler bug on that
  record): dead-letter at once.
* ``"transient"``: it may pass (timeouts, a connection reset): retry with
  exponential backoff and jitter, up to :attr:`RetryPolicy.max_attempts`, then
  dead-letter.
* ``"fatal"``: the worker itself is broken (out of memory, misconfiguration, a
  fenced producer): stop, never dead-letter, or a misconfiguration would drain
  the topic into its dead-letter topic.

:func:`classify` decides by exception type; raise (or subclass)
:class:`PermanentError`, :class:`TransientError` or :class:`FatalError` to say it
yourself. :func:`call_with_retry` runs one call under a :class:`RetryPolicy` and
returns an :data:`Outcome` instead of raising.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeAlias, TypeVar

from eventml.log.base import BrokerUnavailable, Fenced

ErrorKind = Literal["permanent", "transient", "fatal"]

T = TypeVar("T")
A = TypeVar("A")


class PermanentError(Exception):
    """Raise (or subclass) to dead-letter the record at once, without retrying."""


class TransientError(Exception):
    """Raise (or subclass) to have the call retried with backoff, then dead-lettered."""


class FatalError(Exception):
    """Raise (or subclass) to stop the worker: nothing is retried or dead-lettered."""


DEFAULT_PERMANENT: tuple[type[BaseException], ...] = (
    ValueError,  # includes UnicodeDecodeError, json.JSONDecodeError, EventDecodeError
    LookupError,  # KeyError, IndexError
    TypeError,
    AttributeError,
    ArithmeticError,  # ZeroDivisionError, OverflowError
    AssertionError,
    NotImplementedError,
)
"""Failures that retrying the same record cannot fix."""

DEFAULT_TRANSIENT: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    OSError,
    BrokerUnavailable,
)
"""Failures of the world around the call, which may pass."""

DEFAULT_FATAL: tuple[type[BaseException], ...] = (
    MemoryError,
    PermissionError,  # an OSError, but a misconfiguration: retrying or dead-lettering hides it
    ImportError,  # a missing dependency
    Fenced,  # a newer instance took over: this one must stop
)
"""Failures of the worker itself."""


def classify(
    exc: BaseException,
    *,
    transient: tuple[type[BaseException], ...] = DEFAULT_TRANSIENT,
    permanent: tuple[type[BaseException], ...] = DEFAULT_PERMANENT,
    fatal: tuple[type[BaseException], ...] = DEFAULT_FATAL,
) -> ErrorKind:
    """What kind of failure ``exc`` is.

    The most specific listed class wins, walking ``exc``'s method resolution
    order: so ``PermissionError`` is fatal although ``OSError`` is transient, and
    ``class Busy(TransientError, ValueError)`` is transient. :class:`PermanentError`,
    :class:`TransientError` and :class:`FatalError` always count, whatever the
    tuples say; pass ``DEFAULT_TRANSIENT + (MyError,)`` to extend a default.
    Exceptions that are not :class:`Exception` (``KeyboardInterrupt``,
    ``SystemExit``) are fatal. Anything else unknown is transient: it is retried,
    then dead-lettered.
    """
    if not isinstance(exc, Exception):
        return "fatal"
    kinds: tuple[tuple[ErrorKind, tuple[type[BaseException], ...]], ...] = (
        ("fatal", (FatalError, *fatal)),
        ("permanent", (PermanentError, *permanent)),
        ("transient", (TransientError, *transient)),
    )
    for cls in type(exc).__mro__:
        for kind, classes in kinds:
            if cls in classes:
                return kind
    for kind, classes in kinds:  # virtual subclasses (ABCs registered with .register)
        if isinstance(exc, classes):
            return kind
    return "transient"


class RandomSource(Protocol):
    """Where jitter comes from: ``random.Random(seed)`` fits."""

    def random(self) -> float:
        """A float in [0.0, 1.0)."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry transient failures.

    ``max_attempts`` counts every call, the first included (1 = never retry).
    The wait after failed attempt ``n`` is capped exponential backoff,
    ``backoff_ms(n) = min(max_backoff_ms, initial_backoff_ms * multiplier ** (n - 1))``,
    less a random share of it: ``jitter`` is a *ratio*, the wait is drawn
    uniformly from ``[backoff_ms(n) * (1 - jitter), backoff_ms(n)]``. ``jitter=0``
    waits exactly the backoff; ``jitter=1`` is "full jitter" (anywhere from 0 to
    the backoff). Jitter only ever shortens the wait, so ``max_backoff_ms`` is a
    hard bound.
    """

    max_attempts: int = 3
    initial_backoff_ms: int = 100
    max_backoff_ms: int = 10_000
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.initial_backoff_ms < 0:
            raise ValueError(f"initial_backoff_ms must be >= 0, got {self.initial_backoff_ms}")
        if self.max_backoff_ms < self.initial_backoff_ms:
            raise ValueError(
                f"max_backoff_ms ({self.max_backoff_ms}) must be >= initial_backoff_ms "
                f"({self.initial_backoff_ms})"
            )
        if not (math.isfinite(self.multiplier) and self.multiplier >= 1.0):
            raise ValueError(f"multiplier must be a finite number >= 1.0, got {self.multiplier}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter is a ratio in [0.0, 1.0], got {self.jitter}")

    def backoff_ms(self, attempt: int) -> int:
        """The wait after failed attempt ``attempt`` (1-based) before jitter; non-decreasing."""
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, got {attempt}")
        try:
            grown = self.initial_backoff_ms * self.multiplier ** (attempt - 1)
        except OverflowError:
            grown = math.inf
        return int(min(float(self.max_backoff_ms), grown))

    def delay_ms(self, attempt: int, rng: RandomSource) -> int:
        """The jittered wait after failed attempt ``attempt``: within
        ``[floor(backoff_ms(attempt) * (1 - jitter)), backoff_ms(attempt)]``."""
        backoff = self.backoff_ms(attempt)
        if self.jitter == 0.0:
            return backoff
        return math.floor(backoff * (1.0 - self.jitter * rng.random()))


@dataclass(frozen=True, slots=True)
class Ok(Generic[T]):
    """The call returned ``value`` on attempt number ``attempts``."""

    value: T
    attempts: int


@dataclass(frozen=True, slots=True)
class Failed:
    """The call failed for good: ``error`` was raised by the last of ``attempts`` calls.

    ``kind`` says what to do next: ``"fatal"`` stop the worker; otherwise
    dead-letter the record (``"permanent"`` at once, ``"transient"`` after the
    policy's attempts ran out).
    """

    error: Exception
    kind: ErrorKind
    attempts: int


Outcome: TypeAlias = Ok[T] | Failed
"""What :func:`call_with_retry` returns: ``Ok`` or ``Failed``."""


def call_with_retry(
    fn: Callable[[A], T],
    arg: A,
    policy: RetryPolicy,
    sleep: Callable[[float], None],
    rng: RandomSource,
    *,
    classifier: Callable[[BaseException], ErrorKind] = classify,
) -> Outcome[T]:
    """Call ``fn(arg)``; retry transient failures as ``policy`` says.

    ``sleep`` takes *seconds* (``time.sleep`` fits; tests pass a recorder) and is
    called once between attempts, with ``policy.delay_ms(n, rng) / 1000``.
    Permanent and fatal failures return at once. Only :class:`Exception` is
    caught: ``KeyboardInterrupt`` and ``SystemExit`` propagate.
    """
    attempt = 1
    while True:
        try:
            return Ok(fn(arg), attempt)
        except Exception as e:
            kind = classifier(e)
            if kind != "transient" or attempt >= policy.max_attempts:
                return Failed(e, kind, attempt)
        sleep(policy.delay_ms(attempt, rng) / 1000)
        attempt += 1
