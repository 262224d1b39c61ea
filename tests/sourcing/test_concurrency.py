"""Concurrent command handlers on one aggregate never lose an update; a store without
the version check does, and the checker catches it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from eventml.log import Log, open_log
from eventml.sourcing import EventStore, Repository

from .bank import Account, Deposit, Open, check_no_lost_updates

AMOUNT = 10


@dataclass
class Outcome:
    conflicts: int = 0
    succeeded: int = 0
    errors: list[BaseException] = field(default_factory=list)


def deposit_concurrently(
    log_url: str, shared: Log, name: str, writers: int, each: int, *, check_versions: bool = True
) -> Outcome:
    """``writers`` threads, each with its own log handle (memory: the shared log) and store,
    make ``each`` deposits on one account. All first deposits are lined up on a barrier
    after loading, so every run meets conflicts."""
    Repository(EventStore(shared, name), Account()).execute("acc", Open("Ann"))
    barrier = threading.Barrier(writers)
    outcome = Outcome()
    lock = threading.Lock()

    def writer() -> None:
        log = shared if log_url == "memory://" else open_log(log_url)
        store = EventStore(log, name)
        store._check_versions = check_versions
        repo = Repository(store, Account())
        first = [True]

        def gate() -> None:
            if first[0]:
                first[0] = False
                barrier.wait(timeout=30)

        try:
            for _ in range(each):
                repo.execute("acc", Deposit(AMOUNT, gate), retries=100)
                with lock:
                    outcome.succeeded += 1
        except BaseException as e:
            outcome.errors.append(e)
        finally:
            with lock:
                outcome.conflicts += repo.conflicts
            store.close()
            if log is not shared:
                log.close()

    threads = [threading.Thread(target=writer) for _ in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcome


def sizes(log_url: str) -> tuple[int, int]:
    return (3, 3) if log_url.startswith("kafka") else (4, 8)


def test_concurrent_commands_never_lose_an_update(log_url: str, log: Log, name: str) -> None:
    writers, each = sizes(log_url)
    outcome = deposit_concurrently(log_url, log, name, writers, each)
    assert outcome.errors == []
    assert outcome.succeeded == writers * each
    assert outcome.conflicts >= writers - 1  # the lined-up first deposits conflicted, then retried
    with EventStore(log, name) as fresh:
        assert check_no_lost_updates(fresh, "acc", deposits=writers * each, amount=AMOUNT) == []


@pytest.mark.parametrize("log_url", ["memory://"])
def test_the_checker_catches_a_store_without_the_version_check(
    log_url: str, log: Log, name: str
) -> None:
    writers, each = sizes(log_url)
    outcome = deposit_concurrently(log_url, log, name, writers, each, check_versions=False)
    assert outcome.errors == [] and outcome.conflicts == 0
    with EventStore(log, name) as fresh:
        problems = check_no_lost_updates(fresh, "acc", deposits=writers * each, amount=AMOUNT)
    assert any("updates were lost" in p for p in problems), problems
