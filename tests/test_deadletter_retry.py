"""Retry policy, failure classification and the retry runner (pure: fake sleep, seeded rng)."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventml.deadletter import (
    ErrorKind,
    Failed,
    FatalError,
    Ok,
    PermanentError,
    RetryPolicy,
    TransientError,
    call_with_retry,
    classify,
)
from eventml.deadletter.retry import DEFAULT_TRANSIENT
from eventml.events.binding import EventDecodeError
from eventml.log import BrokerUnavailable, Fenced


class Busy(TransientError, ValueError):
    """Marked transient although it is also a ValueError."""


class Corrupt(PermanentError, ConnectionError):
    """Marked permanent although it is also a ConnectionError."""


class Misconfigured(FatalError):
    pass


class Mystery(Exception):
    pass


class SubValueError(ValueError):
    pass


def _decode_error() -> UnicodeDecodeError:
    try:
        b"\xff".decode("utf-8")
    except UnicodeDecodeError as e:
        return e
    raise AssertionError("unreachable")


def _json_error() -> json.JSONDecodeError:
    try:
        json.loads("{oops")
    except json.JSONDecodeError as e:
        return e
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ValueError("bad"), "permanent"),
        (KeyError("k"), "permanent"),
        (IndexError(0), "permanent"),
        (TypeError("t"), "permanent"),
        (AttributeError("a"), "permanent"),
        (ZeroDivisionError(), "permanent"),
        (_decode_error(), "permanent"),
        (_json_error(), "permanent"),
        (EventDecodeError("not a CloudEvent"), "permanent"),
        (PermanentError("mine"), "permanent"),
        (Corrupt("reset while reading a corrupt frame"), "permanent"),
        (TimeoutError(), "transient"),
        (ConnectionResetError(), "transient"),
        (OSError("disk hiccup"), "transient"),
        (BrokerUnavailable("down"), "transient"),
        (TransientError("mine"), "transient"),
        (Busy("locked"), "transient"),
        (Mystery("who knows"), "transient"),
        (RuntimeError("who knows"), "transient"),
        (MemoryError(), "fatal"),
        (PermissionError("no access"), "fatal"),
        (ModuleNotFoundError("sklearn"), "fatal"),
        (Fenced("zombie"), "fatal"),
        (FatalError("mine"), "fatal"),
        (Misconfigured("bad url"), "fatal"),
        (KeyboardInterrupt(), "fatal"),
        (SystemExit(1), "fatal"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_default_classification(exc: BaseException, expected: ErrorKind) -> None:
    assert classify(exc) == expected


@pytest.mark.parametrize(
    ("exc", "kwargs", "expected"),
    [
        # the most specific listed class wins, whichever tuple lists it
        (SubValueError(), {"transient": (*DEFAULT_TRANSIENT, SubValueError)}, "transient"),
        (ValueError(), {"transient": (*DEFAULT_TRANSIENT, SubValueError)}, "permanent"),
        (Mystery(), {"fatal": (Mystery,)}, "fatal"),
        (Mystery(), {"permanent": (Mystery,)}, "permanent"),
        # replacing a default removes it: unknown is transient
        (ValueError(), {"permanent": ()}, "transient"),
        (MemoryError(), {"fatal": ()}, "transient"),
        # our marker classes count whatever the tuples say
        (PermanentError(), {"permanent": ()}, "permanent"),
        (FatalError(), {"fatal": ()}, "fatal"),
        (TransientError(), {"transient": ()}, "transient"),
    ],
)
def test_classification_can_be_tuned(
    exc: BaseException, kwargs: dict[str, Any], expected: ErrorKind
) -> None:
    assert classify(exc, **kwargs) == expected


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"initial_backoff_ms": -1}, "initial_backoff_ms"),
        ({"initial_backoff_ms": 500, "max_backoff_ms": 100}, "max_backoff_ms"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"multiplier": math.inf}, "multiplier"),
        ({"jitter": -0.1}, "jitter"),
        ({"jitter": 1.5}, "jitter"),
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        RetryPolicy(**kwargs)


def test_policy_defaults_and_frozen() -> None:
    p = RetryPolicy()
    assert (p.max_attempts, p.initial_backoff_ms, p.max_backoff_ms, p.multiplier, p.jitter) == (
        3, 100, 10_000, 2.0, 0.2)
    with pytest.raises(AttributeError):
        p.max_attempts = 5  # type: ignore[misc]
    with pytest.raises(ValueError, match="start at 1"):
        p.backoff_ms(0)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RetryPolicy(), [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]),
        (RetryPolicy(initial_backoff_ms=10, max_backoff_ms=100, multiplier=3.0),
         [10, 30, 90, 100, 100, 100, 100, 100, 100]),
        (RetryPolicy(initial_backoff_ms=50, max_backoff_ms=50, multiplier=1.0), [50] * 9),
        (RetryPolicy(initial_backoff_ms=0), [0] * 9),
    ],
)
def test_backoff_grows_exponentially_up_to_the_cap(policy: RetryPolicy, expected: list[int]) -> None:
    assert [policy.backoff_ms(n) for n in range(1, 10)] == expected
    no_jitter = RetryPolicy(policy.max_attempts, policy.initial_backoff_ms, policy.max_backoff_ms,
                            policy.multiplier, jitter=0.0)
    assert [no_jitter.delay_ms(n, random.Random(1)) for n in range(1, 10)] == expected


def test_backoff_does_not_overflow_on_huge_attempt_numbers() -> None:
    assert RetryPolicy().backoff_ms(100_000) == 10_000


def test_jitter_is_a_ratio_that_only_shortens_the_wait() -> None:
    rng = random.Random(42)
    full = RetryPolicy(initial_backoff_ms=1000, max_backoff_ms=1000, jitter=1.0)
    partial = RetryPolicy(initial_backoff_ms=1000, max_backoff_ms=1000, jitter=0.2)
    full_delays = [full.delay_ms(1, rng) for _ in range(500)]
    partial_delays = [partial.delay_ms(1, rng) for _ in range(500)]
    assert 0 <= min(full_delays) < 200 and 800 < max(full_delays) <= 1000
    assert 800 <= min(partial_delays) < 850 and 950 < max(partial_delays) <= 1000


def test_delays_are_deterministic_for_a_seed() -> None:
    p = RetryPolicy()
    first = [p.delay_ms(n, random.Random(7)) for n in range(1, 8)]
    again = [p.delay_ms(n, random.Random(7)) for n in range(1, 8)]
    other = [p.delay_ms(n, random.Random(8)) for n in range(1, 8)]
    assert first == again and first != other


policies = st.builds(
    lambda initial, extra, multiplier, jitter, attempts: RetryPolicy(
        max_attempts=attempts, initial_backoff_ms=initial, max_backoff_ms=initial + extra,
        multiplier=multiplier, jitter=jitter),
    initial=st.integers(0, 100_000),
    extra=st.integers(0, 1_000_000),
    multiplier=st.floats(1.0, 100.0),
    jitter=st.floats(0.0, 1.0),
    attempts=st.integers(1, 20),
)


@given(policy=policies, attempt=st.integers(1, 10_000), seed=st.integers(0, 2**32))
def test_delay_stays_within_its_bounds(policy: RetryPolicy, attempt: int, seed: int) -> None:
    backoff = policy.backoff_ms(attempt)
    delay = policy.delay_ms(attempt, random.Random(seed))
    assert min(policy.initial_backoff_ms, policy.max_backoff_ms) <= backoff <= policy.max_backoff_ms
    assert math.floor(backoff * (1 - policy.jitter)) <= delay <= backoff
    assert isinstance(delay, int)


@given(policy=policies, attempt=st.integers(1, 10_000))
def test_backoff_never_decreases(policy: RetryPolicy, attempt: int) -> None:
    assert policy.backoff_ms(attempt) <= policy.backoff_ms(attempt + 1)


# -- call_with_retry ----------------------------------------------------------------


class Flaky:
    """Raises the given errors in turn, then returns its argument doubled."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, x: int) -> int:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return 2 * x


def run(fn: Flaky, policy: RetryPolicy, seed: int = 3) -> tuple[Any, list[float]]:
    slept: list[float] = []
    outcome = call_with_retry(fn, 21, policy, slept.append, random.Random(seed))
    return outcome, slept


def test_success_first_time_does_not_sleep() -> None:
    fn = Flaky()
    outcome, slept = run(fn, RetryPolicy())
    assert outcome == Ok(42, 1) and slept == [] and fn.calls == 1


def test_transient_failures_are_retried_with_the_policy_delays() -> None:
    policy = RetryPolicy(max_attempts=4)
    fn = Flaky(TimeoutError(), ConnectionResetError(), TransientError())
    outcome, slept = run(fn, policy, seed=11)
    rng = random.Random(11)
    assert outcome == Ok(42, 4) and fn.calls == 4
    assert slept == [policy.delay_ms(n, rng) / 1000 for n in (1, 2, 3)]
    assert 0.08 <= slept[0] <= 0.1 and 0.32 <= slept[2] <= 0.4  # seconds, as time.sleep takes


def test_always_transient_gives_up_after_max_attempts() -> None:
    error = TimeoutError("slow")
    fn = Flaky(*([error] * 10))
    outcome, slept = run(fn, RetryPolicy(max_attempts=3))
    assert isinstance(outcome, Failed)
    assert (outcome.error, outcome.kind, outcome.attempts) == (error, "transient", 3)
    assert fn.calls == 3 and len(slept) == 2


@pytest.mark.parametrize(
    ("error", "kind"), [(ValueError("bad record"), "permanent"), (MemoryError(), "fatal")]
)
def test_permanent_and_fatal_failures_are_not_retried(error: Exception, kind: ErrorKind) -> None:
    fn = Flaky(error, error)
    outcome, slept = run(fn, RetryPolicy(max_attempts=5))
    assert outcome == Failed(error, kind, 1)
    assert fn.calls == 1 and slept == []


def test_a_single_attempt_policy_never_retries() -> None:
    fn = Flaky(TimeoutError())
    outcome, slept = run(fn, RetryPolicy(max_attempts=1))
    assert isinstance(outcome, Failed) and outcome.attempts == 1 and slept == []


def test_a_custom_classifier_decides() -> None:
    fn = Flaky(ValueError("retry me"), ValueError("again"))
    slept: list[float] = []
    outcome = call_with_retry(fn, 1, RetryPolicy(), slept.append, random.Random(0),
                              classifier=lambda e: "transient")
    assert outcome == Ok(2, 3) and len(slept) == 2


def test_interrupts_propagate() -> None:
    def interrupted(_: int) -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        call_with_retry(interrupted, 1, RetryPolicy(), lambda s: None, random.Random(0))
