"""Dead letters read back and replayed: the pure parts, `eventml dlq`, exactly-once replay."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from eventml.cli.dlq import dlq_app
from eventml.deadletter import (
    REPLAY_OF,
    InvalidDeadLetter,
    dead_letter_message,
    parse_dead_letter,
    replay,
)
from eventml.deadletter.replay import replay_message
from eventml.log import (
    Consumer,
    ConsumerConfig,
    Log,
    Message,
    Record,
    TopicPartition,
    TopicSpec,
    Transaction,
    TransactionalProducer,
    open_log,
)
from eventml.testing import MemoryLog

AT_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z

# (message as originally read, error, source, attempts, kind) per dead letter in tx.dlq
ORIGINALS: list[Message] = [
    Message(b'{"card": "c1"}', key=b"c1",
            headers=(("traceparent", b"00-abc"), ("bin", b"\x00\x01"))),
    Message(b"\x00\xff\xfe\x1b[31mred", key=None),  # not UTF-8, and a terminal escape
    Message(None, key=b"k3", headers=((REPLAY_OF, b"tx.dlq:0:99"), ("h", b"v"))),
]


def _dead_letters() -> list[Message]:
    return [
        dead_letter_message(
            ORIGINALS[0].value, key=ORIGINALS[0].key, headers=ORIGINALS[0].headers,
            error=ValueError("bad amount, password=hunter2"),
            source={"topic": "tx", "partition": 1, "offset": 42, "group": "g", "operator": "score"},
            attempts=3, now_ms=AT_MS, kind="permanent"),
        dead_letter_message(
            ORIGINALS[1].value, error=TimeoutError("model server slow"),
            source={"topic": "tx", "partition": 0, "offset": 7}, attempts=5, now_ms=AT_MS + 1,
            kind="transient"),
        dead_letter_message(
            ORIGINALS[2].value, key=ORIGINALS[2].key, headers=ORIGINALS[2].headers,
            error="invalid JSON", source={"topic": "tx", "input": "<stdin>", "line": 3},
            now_ms=AT_MS + 2),
    ]


def _record(m: Message, topic: str = "tx.dlq", offset: int = 0) -> Record:
    return Record(topic, 0, offset, AT_MS, m.key, m.value, m.headers)


# -- pure: provenance headers and parsing -------------------------------------------


def test_provenance_header_names_are_stable() -> None:
    names = [name for name, _ in _dead_letters()[0].headers]
    assert names == [
        "traceparent", "bin",
        "eventml.dlq.source.topic", "eventml.dlq.source.partition", "eventml.dlq.source.offset",
        "eventml.dlq.source.group", "eventml.dlq.source.operator",
        "eventml.dlq.error.class", "eventml.dlq.error.message", "eventml.dlq.error.kind",
        "eventml.dlq.attempts", "eventml.dlq.at_ms",
    ]


def test_parse_splits_the_original_from_its_provenance() -> None:
    dead = parse_dead_letter(_record(_dead_letters()[0], offset=5))
    assert (dead.topic, dead.partition, dead.offset) == ("tx.dlq", 0, 5)
    assert dead.original() == ORIGINALS[0]
    assert dict(dead.source) == {"topic": "tx", "partition": "1", "offset": "42", "group": "g",
                                 "operator": "score"}
    assert (dead.source_topic, dead.source_partition, dead.source_offset) == ("tx", 1, 42)
    assert dead.error_class == "builtins.ValueError"
    assert dead.error_message == "bad amount, password=***"
    assert (dead.error_kind, dead.attempts, dead.at_ms) == ("permanent", 3, AT_MS)
    cli_line = parse_dead_letter(_record(_dead_letters()[2]))
    assert cli_line.error_class == "eventml.InvalidInput" and cli_line.error_kind is None
    assert cli_line.source_partition is None and cli_line.source["line"] == "3"


def test_dead_lettering_a_dead_letter_keeps_one_provenance() -> None:
    first = _dead_letters()[0]
    again = dead_letter_message(first.value, key=first.key, headers=first.headers,
                                error=KeyError("x"), source={"topic": "other"}, now_ms=1)
    dead = parse_dead_letter(_record(again))
    assert dict(dead.source) == {"topic": "other"} and dead.error_class == "builtins.KeyError"
    assert dead.headers == ORIGINALS[0].headers


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ((), "no eventml.dlq.error.class header"),
        ((("eventml.dlq.error.class", b"E"), ("eventml.dlq.at_ms", b"1")), "eventml.dlq.attempts"),
        ((("eventml.dlq.error.class", b"E"), ("eventml.dlq.attempts", b"x"),
          ("eventml.dlq.at_ms", b"1")), "must be an integer, got 'x'"),
    ],
)
def test_records_without_provenance_are_refused(
    headers: tuple[tuple[str, bytes], ...], needle: str
) -> None:
    with pytest.raises(InvalidDeadLetter, match=needle):
        parse_dead_letter(_record(Message(b"v", headers=headers)))


def test_replay_message_marks_where_it_came_from_once() -> None:
    dead = parse_dead_letter(_record(_dead_letters()[2], offset=4))
    m = replay_message(dead)
    assert (m.key, m.value, m.partition) == (b"k3", None, None)
    assert m.headers == (("h", b"v"), (REPLAY_OF, b"tx.dlq:0:4"))


# -- the CLI on an embedded log -----------------------------------------------------


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    url = f"embedded://{tmp_path}/data"
    with open_log(url) as log:
        log.create_topic(TopicSpec("tx", partitions=2))
        log.create_topic(TopicSpec("tx.dlq"))
        log.create_topic(TopicSpec("plain"))
        log.append("tx.dlq", _dead_letters())
    yield url


def cli(*args: str, broker: str) -> tuple[str, str]:
    result = CliRunner().invoke(dlq_app, [*args, "--broker", broker])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout, result.stderr


def main_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the real entry point; return its single stderr line (and check there is one)."""
    from eventml.cli.app import main

    code = main(list(args))
    out, err = capsys.readouterr()
    assert code != 0
    assert "Traceback" not in err and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def read_all(broker: str, topic: str) -> list[Record]:
    """Every record of ``topic``, read independently of the code under test."""
    with open_log(broker) as log:
        starts, ends = log.start_offsets(topic), log.end_offsets(topic)
        want = sum(ends[p] - starts[p] for p in ends)
        consumer = log.consumer(f"check-{uuid.uuid4().hex}", [topic],
                                config=ConsumerConfig(auto_offset_reset="earliest"))
        out: list[Record] = []
        deadline = time.monotonic() + 20
        while len(out) < want and time.monotonic() < deadline:
            out += consumer.poll(max_records=500, timeout_s=0.1)
        consumer.close()
    assert len(out) == want
    return sorted(out, key=lambda r: (r.partition, r.offset))


def replayed(records: Sequence[Record]) -> list[tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]]:
    return sorted(((r.key, r.value, r.headers) for r in records), key=repr)


def expected_replays(offsets: Mapping[int, int]) -> list[tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]]:
    """What replaying ``ORIGINALS[i]`` from tx.dlq offset ``offsets[i]`` must append."""
    out = []
    for i, offset in offsets.items():
        m = ORIGINALS[i]
        kept = tuple(h for h in m.headers if h[0] != REPLAY_OF)
        out.append((m.key, m.value, (*kept, (REPLAY_OF, f"tx.dlq:0:{offset}".encode()))))
    return sorted(out, key=repr)


LIST_LINES = [
    "0:0  source=tx[1]@42 (group=g, operator=score)  error=builtins.ValueError (permanent)  "
    "attempts=3  at=2023-11-14T22:13:20.000+00:00  message=bad amount, password=***",
    "0:1  source=tx[0]@7  error=builtins.TimeoutError (transient)  attempts=5  "
    "at=2023-11-14T22:13:20.001+00:00  message=model server slow",
    "0:2  source=tx (input=<stdin>, line=3)  error=eventml.InvalidInput  attempts=1  "
    "at=2023-11-14T22:13:20.002+00:00  message=invalid JSON",
]


@pytest.mark.parametrize("topic", ["tx", "tx.dlq"])
def test_list_prints_one_line_per_dead_letter(broker: str, topic: str) -> None:
    out, _ = cli("list", topic, broker=broker)
    assert out.splitlines() == LIST_LINES


def test_list_json(broker: str) -> None:
    out, _ = cli("list", "tx", "--json", broker=broker)
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert [(r["partition"], r["offset"]) for r in rows] == [(0, 0), (0, 1), (0, 2)]
    assert rows[0]["source"] == {"topic": "tx", "partition": "1", "offset": "42", "group": "g",
                                 "operator": "score"}
    assert [r["error_class"] for r in rows] == [
        "builtins.ValueError", "builtins.TimeoutError", "eventml.InvalidInput"]
    assert [r["error_kind"] for r in rows] == ["permanent", "transient", None]
    assert [r["attempts"] for r in rows] == [3, 5, 1]
    assert [r["at_ms"] for r in rows] == [AT_MS, AT_MS + 1, AT_MS + 2]
    assert [r["value_bytes"] for r in rows] == [14, 11, None]


def test_list_warns_about_records_that_are_not_dead_letters(broker: str) -> None:
    with open_log(broker) as log:
        log.append("tx.dlq", [Message(b"junk")])
    out, err = cli("list", "tx", broker=broker)
    assert out.splitlines() == LIST_LINES
    assert "tx.dlq[0]@3 is not a dead letter" in err


def test_show_prints_provenance_and_utf8_text(broker: str) -> None:
    out, _ = cli("show", "tx", "0", broker=broker)
    assert out.splitlines() == [
        "dead letter: tx.dlq[0]@0",
        "source:      tx[1]@42 (group=g, operator=score)",
        "error:       builtins.ValueError (permanent)",
        "message:     bad amount, password=***",
        "attempts:    3",
        "at:          2023-11-14T22:13:20.000+00:00",
        "key:         'c1'",
        "header traceparent: '00-abc'",
        "header bin:  hex 0001",
        "value:       14 bytes, UTF-8 text",
        '{"card": "c1"}',
    ]


def test_show_prints_other_bytes_as_hex(broker: str) -> None:
    out, _ = cli("show", "tx.dlq", "1", broker=broker)
    assert "\x1b" not in out  # the terminal escape is never printed raw
    assert out.splitlines()[-2:] == [
        "value:       11 bytes, not printable UTF-8: hex",
        "00000000  00 ff fe 1b 5b 33 31 6d 72 65 64" + " " * 15 + "  |....[31mred|",
    ]


def test_show_json_round_trips_the_bytes(broker: str) -> None:
    out, _ = cli("show", "tx", "1", "--json", broker=broker)
    shown = orjson.loads(out)
    assert bytes.fromhex(shown["value"]["hex"]) == ORIGINALS[1].value
    assert shown["key"] is None and shown["error_message"] == "model server slow"
    first = orjson.loads(cli("show", "tx", "0", "--json", broker=broker)[0])
    assert first["value"] == {"text": '{"card": "c1"}'}
    assert first["headers"] == [["traceparent", {"text": "00-abc"}], ["bin", {"hex": "0001"}]]


def test_replay_twice_has_one_effect_byte_exact(broker: str) -> None:
    out, _ = cli("replay", "tx", broker=broker)
    assert out.strip() == "replayed 3 dead letters from tx.dlq to tx (3)"
    again, _ = cli("replay", "tx.dlq", broker=broker)
    assert again.startswith("replayed 0 dead letters from tx.dlq")
    records = read_all(broker, "tx")
    assert replayed(records) == expected_replays({0: 0, 1: 1, 2: 2})
    assert not any(name.startswith("eventml.dlq.") for r in records for name, _ in r.headers)
    # what is dead-lettered later is replayed by the next run, alone
    with open_log(broker) as log:
        log.append("tx.dlq", _dead_letters()[:1])
    assert cli("replay", "tx", broker=broker)[0].startswith("replayed 1 dead letter from")
    assert replayed(read_all(broker, "tx")) == sorted(
        expected_replays({0: 0, 1: 1, 2: 2}) + expected_replays({0: 3}), key=repr)
    assert len(read_all(broker, "tx.dlq")) == 4  # replay removes nothing from the DLQ


def test_replay_to_another_topic(broker: str) -> None:
    out, _ = cli("replay", "tx", "--to", "plain", broker=broker)
    assert out.strip() == "replayed 3 dead letters from tx.dlq to plain (3)"
    assert replayed(read_all(broker, "plain")) == expected_replays({0: 0, 1: 1, 2: 2})
    assert read_all(broker, "tx") == []


def test_replay_skips_and_reports_records_without_provenance(broker: str) -> None:
    with open_log(broker) as log:
        log.append("tx.dlq", [Message(b"junk")])
    out, err = cli("replay", "tx", broker=broker)
    assert out.startswith("replayed 3 dead letters")
    assert "skipped 1 record(s) of tx.dlq without provenance" in err
    assert len(read_all(broker, "tx")) == 3


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("dlq", "list", "nope"), "unknown topic 'nope'"),
        (("dlq", "list", "nope.dlq"), "unknown topic 'nope.dlq'"),
        (("dlq", "replay", "plain"), "topic 'plain' has no dead letters"),
        (("dlq", "show", "tx", "9"), "no offset 9 in tx.dlq[0] (it holds offsets 0-2)"),
        (("dlq", "show", "tx", "0", "--partition", "3"), "tx.dlq has no partition 3"),
        (("dlq", "show", "tx", "zero"), "Invalid value"),
        (("dlq", "replay", "tx", "--to", "nope"), "unknown topic 'nope'"),
        (("dlq", "replay", "tx", "--to", "tx.dlq"), "cannot replay 'tx.dlq' into itself"),
    ],
)
def test_bad_arguments_get_one_line(
    broker: str, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], needle: str
) -> None:
    assert needle in main_error(capsys, *args, "--broker", broker)


def test_a_refused_replay_marks_nothing(broker: str, capsys: pytest.CaptureFixture[str]) -> None:
    main_error(capsys, "dlq", "replay", "tx", "--to", "nope", "--broker", broker)
    assert cli("replay", "tx", broker=broker)[0].startswith("replayed 3 dead letters")


# -- exactly once across a crash ------------------------------------------------------


class Crash(Exception):
    pass


class CrashingTransaction(Transaction):
    """Dies at commit: ``"before"`` it reaches the log, or just ``"after"`` it returned."""

    def __init__(self, inner: Transaction, crash: str | None) -> None:
        self.inner, self.crash = inner, crash

    def append(self, topic: str, messages: Sequence[Message]) -> None:
        self.inner.append(topic, messages)

    def commit_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.inner.commit_offsets(offsets)

    def commit(self) -> None:
        if self.crash == "before":
            self.inner.abort()
            raise Crash("killed")
        self.inner.commit()
        if self.crash == "after":  # whatever the caller does next never happens
            raise Crash("killed")

    def abort(self) -> None:
        self.inner.abort()


class CrashingProducer(TransactionalProducer):
    """Crashes (``when``) at the ``crash_on``-th transaction's commit."""

    def __init__(self, inner: TransactionalProducer, crash_on: int, when: str) -> None:
        self.inner, self.crash_on, self.when, self.begun = inner, crash_on, when, 0
        self.transactional_id = inner.transactional_id

    def begin(self, consumer: Consumer | None = None) -> Transaction:
        self.begun += 1
        crash = self.when if self.begun == self.crash_on else None
        return CrashingTransaction(self.inner.begin(consumer), crash)


def _memory_log_with_dead_letters(n: int) -> MemoryLog:
    log = MemoryLog()
    log.create_topic(TopicSpec("src", partitions=3))
    log.create_topic(TopicSpec("src.dlq", partitions=2))
    log.append("src.dlq", [
        dead_letter_message(b"v%d" % i, key=b"k%d" % i, error=ValueError("bad"),
                            source={"topic": "src", "partition": 0, "offset": i}, now_ms=i)
        for i in range(n)
    ])
    return log


def _values(log: Log, topic: str) -> list[bytes | None]:
    consumer = log.consumer(f"check-{uuid.uuid4().hex}", [topic],
                            config=ConsumerConfig(auto_offset_reset="earliest"))
    out: list[bytes | None] = []
    for _ in range(5):
        out += [r.value for r in consumer.poll(max_records=1000, timeout_s=0.05)]
    consumer.close()
    return sorted(out, key=repr)


@pytest.mark.parametrize(("when", "batches_done"), [("before", 1), ("after", 2)])
def test_a_crash_mid_replay_neither_loses_nor_duplicates(
    monkeypatch: pytest.MonkeyPatch, when: str, batches_done: int
) -> None:
    log = _memory_log_with_dead_letters(10)
    real = log.transactional_producer
    monkeypatch.setattr(log, "transactional_producer",
                        lambda tid: CrashingProducer(real(tid), 2, when))
    with pytest.raises(Crash):
        replay(log, "src.dlq", batch_size=2)
    assert len(_values(log, "src")) == 2 * batches_done
    monkeypatch.undo()
    result = replay(log, "src.dlq", batch_size=2)
    assert result.total == 10 - 2 * batches_done and dict(result.replayed) == {"src": result.total}
    assert _values(log, "src") == sorted((b"v%d" % i for i in range(10)), key=repr)
    assert replay(log, "src.dlq").total == 0
    assert len(_values(log, "src")) == 10
