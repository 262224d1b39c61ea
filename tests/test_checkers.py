"""The delivery checker must catch a broken log: loss, duplication, reordering."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from eventml.log import ConsumerConfig, Message, RecordMetadata
from eventml.log.memory import MemoryLog
from eventml.testing import DeliveryViolation, check_delivery
from tests.contract.conftest import Backend
from tests.contract.test_log_contract import send_keyed_sequences


class LossyLog(MemoryLog):
    """Acknowledges every message but silently drops one in 97."""

    def append(self, topic: str, messages: Sequence[Message]) -> list[RecordMetadata]:
        kept = [m for i, m in enumerate(messages) if i % 97 != 13]
        meta = super().append(topic, kept)
        return meta + meta[: len(messages) - len(kept)]


class DuplicatingLog(MemoryLog):
    """Appends the last message of each batch twice."""

    def append(self, topic: str, messages: Sequence[Message]) -> list[RecordMetadata]:
        return super().append(topic, [*messages, messages[-1]])[: len(messages)]


class ReorderingLog(MemoryLog):
    """Stores each batch backwards."""

    def append(self, topic: str, messages: Sequence[Message]) -> list[RecordMetadata]:
        return super().append(topic, list(reversed(messages)))[::-1]


def _backend(log: MemoryLog) -> Backend:
    return Backend("broken", log, ConsumerConfig(), 1.0)


@pytest.mark.parametrize(
    ("log", "finding"),
    [(LossyLog(), "missing"), (DuplicatingLog(), "duplicated"), (ReorderingLog(), "out of order")],
)
def test_checker_catches_a_broken_log(log: MemoryLog, finding: str) -> None:
    report = send_keyed_sequences(_backend(log), timeout_s=1.0)
    assert not report.ok
    with pytest.raises(DeliveryViolation, match=finding):
        report.assert_ok()


def test_checker_passes_a_correct_log() -> None:
    send_keyed_sequences(_backend(MemoryLog())).assert_ok()


def test_checker_counts_every_item() -> None:
    sent = [("a", 0), ("a", 1), ("b", 0)]
    report = check_delivery(sent, [("a", 1), ("a", 0), ("a", 0), ("c", 0)])
    assert report.missing == (("b", 0),)
    assert report.duplicated == (("a", 0),)
    assert report.unexpected == (("c", 0),)
    assert report.out_of_order_keys == ("a",)
    assert check_delivery(sent, [("a", 0), ("a", 0), ("a", 1), ("b", 0)],
                          allow_duplicates=True).ok
