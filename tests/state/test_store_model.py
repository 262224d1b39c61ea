"""The shared partition store against a plain-dict model, under random operation sequences.

Checks the pure core (``Table``'s lazily sorted keys and expiry heap, the write
buffer's stage/commit/rollback bookkeeping) far beyond the contract suite's cases.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from eventml.log import TopicPartition, Transaction
from eventml.state import StoreSpec
from eventml.state._store import BufferedStore
from eventml.state._table import Entry, Table, Writes

TTL = 100
KEYS = st.sampled_from([f"k{i}" for i in range(12)])
TIMES = st.one_of(st.none(), st.integers(0, 400))
BOUNDS = st.one_of(st.none(), KEYS)


class _Store(BufferedStore):
    """Writes through to ``durable`` when the fake transaction commits."""

    def __init__(self, table: Table, durable: dict[str, Entry]) -> None:
        super().__init__(StoreSpec("app", "s", ttl_ms=TTL), TopicPartition("t", 0), table)
        self.durable = durable
        self.in_txn: Writes | None = None

    def _write_through(self, txn: Transaction, writes: Writes, source_offset: int) -> None:
        self.in_txn = writes


def _open(durable: dict[str, Entry]) -> _Store:
    values = {k: v for k, (v, _) in durable.items()}
    times = {k: t for k, (_, t) in durable.items() if t is not None}
    return _Store(Table(values, times), durable)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.durable: dict[str, Entry] = {}
        self.store = _open(self.durable)
        self.committed: dict[str, Entry] = {}  # the model
        self.current: dict[str, Entry] = {}
        self.staged: dict[str, Entry] | None = None

    @rule(key=KEYS, value=st.integers(), time_ms=TIMES)
    def put(self, key: str, value: int, time_ms: int | None) -> None:
        self.store.put(key, value, time_ms=time_ms)
        self.current[key] = (value, time_ms)

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        self.store.delete(key)
        self.current.pop(key, None)

    @rule(stream_time=st.integers(0, 600))
    def expire(self, stream_time: int) -> None:
        gone = [k for k, (_, t) in self.current.items() if t is not None and t + TTL <= stream_time]
        for k in gone:
            del self.current[k]
        assert self.store.expire(stream_time) == len(gone)

    @rule()
    def stage(self) -> None:
        self.store.stage(None, 1)  # type: ignore[arg-type]  # the double ignores txn
        self.staged = dict(self.current)

    @precondition(lambda self: self.staged is not None)
    @rule()
    def commit(self) -> None:
        writes = self.store.in_txn or {}
        for k, e in writes.items():  # the transaction commits: durable storage changes
            if e is None:
                self.durable.pop(k, None)
            else:
                self.durable[k] = e
        self.store.in_txn = None
        self.store.commit()
        assert self.staged is not None
        self.committed = self.staged
        self.staged = None

    @rule()
    def rollback(self) -> None:
        self.store.in_txn = None
        self.store.rollback()
        self.current = dict(self.committed)
        self.staged = None
        assert not self.store.dirty

    @precondition(lambda self: self.staged is None and not self.store.dirty)
    @rule()
    def reopen(self) -> None:
        self.store = _open(self.durable)

    @rule(start=BOUNDS, end=BOUNDS)
    def range_matches(self, start: str | None, end: str | None) -> None:
        expected = sorted(
            (k, v)
            for k, (v, _) in self.current.items()
            if (start is None or k >= start) and (end is None or k < end)
        )
        assert list(self.store.range(start, end)) == expected

    @invariant()
    def reads_match(self) -> None:
        got: dict[str, Any] = {k: self.store.get(k, "MISSING") for k in self.current}
        assert got == {k: v for k, (v, _) in self.current.items()}
        assert len(self.store) == len(self.current)
        if self.current != self.committed:
            assert self.store.dirty

    @invariant()
    def durable_is_committed(self) -> None:
        assert self.durable == self.committed


StoreMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_store_matches_model = StoreMachine.TestCase


def test_a_key_rewritten_after_stage_still_expires_if_the_rewrite_rolls_back() -> None:
    durable: dict[str, Entry] = {}
    store = _open(durable)
    store.put("k", 1, time_ms=0)
    store.stage(None, 1)  # type: ignore[arg-type]
    store.commit()
    store.put("other", 2)
    store.stage(None, 2)  # type: ignore[arg-type]
    store.put("k", 3)  # after stage: the next batch's write
    assert store.expire(500) == 0  # k is being rewritten: not expired
    store.commit()
    store.rollback()  # the next batch fails: k is back to its committed write (time 0)
    assert store.get("k") == 1
    assert store.expire(500) == 1 and "k" not in store
