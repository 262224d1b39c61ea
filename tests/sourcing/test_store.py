"""The event store and repository over every log: invariants, versions, conflicts, snapshots."""

from __future__ import annotations

import doctest
import time

import pytest

import eventml.sourcing.aggregate
from eventml.log import Log, TopicPartition
from eventml.schema import ContractViolation
from eventml.sourcing import (
    CommandRejected,
    ConcurrencyConflict,
    DomainEvent,
    EventStore,
    Repository,
    replay,
)
from eventml.state._readers import read_partition

from .bank import Account, Deposit, Open, Withdraw


def ends(log: Log, store: EventStore) -> tuple[int, int]:
    """The records (not offsets: Kafka's transaction markers take offsets too, and land
    asynchronously) in the store's events and snapshots topics."""
    counts = []
    for topic in (store.events_topic, store.snapshots_topic):
        n = 0
        for p in range(store.partitions):
            for batch in read_partition(log, TopicPartition(topic, p), 10.0):
                n += len(batch)
        counts.append(n)
    return counts[0], counts[1]


def test_aggregate_doctest() -> None:
    result = doctest.testmod(eventml.sourcing.aggregate)
    assert result.attempted > 0 and result.failed == 0


def test_a_rejected_command_appends_nothing_and_says_why(
    log: Log, name: str, account: Account
) -> None:
    with EventStore(log, name, partitions=2) as store:
        repo = Repository(store, account)
        repo.execute("alice", Open("Alice"))
        repo.execute("alice", Deposit(30))
        before = ends(log, store)
        with pytest.raises(CommandRejected, match=r"no overdraft: withdrawing 50 .* balance 30"):
            repo.execute("alice", Withdraw(50))
        with pytest.raises(CommandRejected, match="already open"):
            repo.execute("alice", Open("Mallory"))
        with pytest.raises(CommandRejected, match="not open"):
            repo.execute("bob", Deposit(1))
        assert ends(log, store) == before
        assert store.version("alice") == 2 and store.version("bob") == 0
        assert repo.execute("alice", Withdraw(30)).state["balance"] == 0


def test_versions_read_and_load(log: Log, name: str, account: Account) -> None:
    with EventStore(log, name, partitions=3, clock=lambda: 1_700_000_000_000) as store:
        repo = Repository(store, account)
        first = repo.execute("a1", Open("Ann"))
        assert [e.version for e in first.events] == [1] and first.version == 1
        stored = store.append(
            "a1", [DomainEvent("Deposited", {"amount": 5})] * 3, expected_version=1
        )
        assert [e.version for e in stored] == [2, 3, 4]
        repo.execute("a2", Open("Ben"))
        events = store.read("a1")
        assert [(e.version, e.type) for e in events] == [
            (1, "Opened"),
            (2, "Deposited"),
            (3, "Deposited"),
            (4, "Deposited"),
        ]
        assert all(e.aggregate_id == "a1" and e.time_ms == 1_700_000_000_000 for e in events)
        assert len({e.event_id for e in events}) == 4
        assert [e.version for e in store.read("a1", after_version=2)] == [3, 4]
        assert store.read("nobody") == []
    with EventStore(log, name) as fresh:  # a new handle rebuilds from the log
        assert fresh.partitions == 3
        loaded = fresh.load(Account(), "a1")
        assert (loaded.version, loaded.state) == (4, {"owner": "Ann", "balance": 15})
        assert loaded.state == replay(account, account.initial(), fresh.read("a1"))
        assert fresh.load(Account(), "a2").state == {"owner": "Ben", "balance": 0}
        assert fresh.load(Account(), "nobody").version == 0


def test_a_stale_expected_version_conflicts_and_appends_nothing(
    log: Log, name: str, account: Account
) -> None:
    with EventStore(log, name) as store:
        Repository(store, account).execute("acc", Open("Ann"))
        store.append("acc", [DomainEvent("Deposited", {"amount": 1})], expected_version=1)
        before = ends(log, store)
        for expected in (0, 1, 5):
            with pytest.raises(ConcurrencyConflict, match="at version 2, not the expected") as info:
                store.append("acc", [DomainEvent("Deposited", {"amount": 1})], expected)
            assert (info.value.expected, info.value.actual) == (expected, 2)
        assert ends(log, store) == before and store.version("acc") == 2


def test_a_fenced_writer_with_a_stale_index_gets_a_conflict(
    log: Log, name: str, account: Account
) -> None:
    """B holds an open producer and a (now stale) index; A fences it and appends.
    B's append passes its local check, is fenced at commit, reopens, catches up: conflict."""
    with EventStore(log, name, partitions=1) as a, EventStore(log, name, partitions=1) as b:
        b.append("acc", [DomainEvent("Opened", {"owner": "Ann"})], expected_version=0)
        a.append("acc", [DomainEvent("Deposited", {"amount": 1})], expected_version=1)
        with pytest.raises(ConcurrencyConflict) as info:
            b.append("acc", [DomainEvent("Deposited", {"amount": 2})], expected_version=1)
        assert (info.value.expected, info.value.actual) == (1, 2)
        assert b.stats.fenced == 1
        assert [e.data for e in b.read("acc")] == [{"owner": "Ann"}, {"amount": 1}]
        b.append("acc", [DomainEvent("Deposited", {"amount": 2})], expected_version=2)
        assert a.load(Account(), "acc").state["balance"] == 3


def test_snapshots_every_n_events(log: Log, name: str, account: Account) -> None:
    n = 4
    with EventStore(log, name, partitions=2, snapshot_every=n) as store:
        repo = Repository(store, account)
        repo.execute("acc", Open("Ann"))
        for i in range(9):  # 10 events = 2.5 x n: snapshots at 4 and 8
            repo.execute("acc", Deposit(i + 1))
        assert store.stats.snapshots_written == 2
    with EventStore(log, name, snapshot_every=n) as fresh:
        spy = Account()
        loaded = fresh.load(spy, "acc")
        assert (loaded.version, loaded.snapshot_version, loaded.replayed) == (10, 8, 2)
        assert spy.applied == 2  # only the events after the snapshot
        full = replay(account, account.initial(), fresh.read("acc"))  # read scans from version 1
        assert loaded.state == full == {"owner": "Ann", "balance": 45}
        assert [e.version for e in fresh.read("acc", after_version=8)] == [9, 10]
        # appending through the repository goes on from the snapshot
        Repository(fresh, spy).execute("acc", Deposit(5))
        assert fresh.load(Account(), "acc").state["balance"] == 50


DEPOSITED_V1 = {
    "type": "object",
    "properties": {"amount": {"type": "integer"}},
    "required": ["amount"],
    "additionalProperties": False,
}
DEPOSITED_V2 = {
    "type": "object",
    "properties": {"amount": {"type": "integer"}, "currency": {"type": "string", "default": "EUR"}},
    "required": ["amount"],
    "additionalProperties": False,
}


def test_old_event_versions_are_upcast_through_the_registry(log: Log, name: str) -> None:
    with EventStore(log, name, schemas={"Deposited": DEPOSITED_V1}) as v1:
        v1.append("acc", [DomainEvent("Opened", {"owner": "Ann"})], 0)
        v1.append("acc", [DomainEvent("Deposited", {"amount": 5})], 1)
        with pytest.raises(ContractViolation, match="amount"):
            v1.append("acc", [DomainEvent("Deposited", {"amount": "five"})], 2)
        assert v1.version("acc") == 2
    with EventStore(log, name, schemas={"Deposited": DEPOSITED_V2}) as v2:
        v2.append("acc", [DomainEvent("Deposited", {"amount": 7, "currency": "USD"})], 2)
        assert [e.data for e in v2.read("acc")] == [
            {"owner": "Ann"},
            {"amount": 5, "currency": "EUR"},  # written under v1, read with v2's default
            {"amount": 7, "currency": "USD"},
        ]
    with EventStore(log, name) as plain:  # no schemas: frames are read as they were written
        assert [e.data for e in plain.read("acc")][1:] == [
            {"amount": 5},
            {"amount": 7, "currency": "USD"},
        ]


def test_a_read_during_an_open_transaction_does_not_skip_its_events(log: Log, name: str) -> None:
    """Kafka's end offset counts records of a transaction still open; reading past them
    would lose them for good once they commit."""
    from eventml.log.base import Message
    from eventml.log.partitioner import partition_for
    from eventml.sourcing._index import RawEvent, event_headers

    with EventStore(log, name, partitions=1) as store:
        store.append("acc", [DomainEvent("Opened", {"owner": "Ann"})], 0)
        txn = log.transactional_producer(f"other-{name}").begin()
        raw = RawEvent(2, "Deposited", "id-2", 0, b'{"amount": 3}')
        p = partition_for(b"acc", 1)
        txn.append(
            store.events_topic, [Message(raw.value, b"acc", tuple(event_headers(raw)), 0, p)]
        )
        time.sleep(0.3)  # let Kafka's producer send it (the transaction stays open)
        assert store.version("acc") == 1
        txn.commit()
        with EventStore(log, name) as other:
            assert other.version("acc") == 2
        assert store.version("acc") == 2
