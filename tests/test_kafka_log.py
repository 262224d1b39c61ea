"""Kafka-specific behaviour of the Kafka log (the shared semantics live in tests/contract)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer as RdConsumer  # noqa: E402
from confluent_kafka import Producer as RdProducer  # noqa: E402
from confluent_kafka import TopicPartition as RdTopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient  # noqa: E402

from eventml.events import Event, from_record, to_message  # noqa: E402
from eventml.log import (  # noqa: E402
    BrokerUnavailable,
    CommitFailed,
    ConsumerConfig,
    Log,
    LogError,
    Message,
    RebalanceListener,
    Record,
    TopicPartition,
    TopicSpec,
    open_log,
    partition_for,
)
from eventml.log.kafka import KafkaLog  # noqa: E402
from eventml.testing.kafka import pick_free_ports  # noqa: E402

pytestmark = pytest.mark.kafka
QUIET = {"logger": logging.getLogger("tests.rdkafka")}  # bare clients: no librdkafka stderr


@pytest.fixture
def log(kafka_bootstrap: str) -> Iterator[Log]:
    with open_log(f"kafka://{kafka_bootstrap}") as opened:
        yield opened


def _topic(log: Log, partitions: int = 1, **kwargs: object) -> str:
    name = f"kafkalog_{uuid.uuid4().hex[:10]}"
    log.create_topic(TopicSpec(name, partitions, **kwargs))  # type: ignore[arg-type]
    return name


def _drain(consumer: object, count: int, timeout_s: float = 20.0) -> list[Record]:
    out: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < count and time.monotonic() < deadline:
        out.extend(consumer.poll(max_records=count - len(out), timeout_s=0.2))  # type: ignore[attr-defined]
    return out


def _bare_consumer(bootstrap: str, topic: str, partition: int = 0) -> RdConsumer:
    c = RdConsumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bare_{uuid.uuid4().hex[:8]}"}, **QUIET
    )
    c.assign([RdTopicPartition(topic, partition, 0)])
    return c


# -- connecting -------------------------------------------------------------------


def test_unreachable_broker_fails_fast_with_one_line(capfd: pytest.CaptureFixture[str]) -> None:
    port = pick_free_ports(1)[0]  # nothing listens there
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as info:
        open_log(f"kafka://127.0.0.1:{port}")
    elapsed = time.monotonic() - started
    message = str(info.value)
    assert message == (
        f"cannot reach Kafka at 127.0.0.1:{port} within 5 s: "
        "is the broker running? (scripts/kafka start)"
    )
    assert "\n" not in message
    assert elapsed < 6.5, f"took {elapsed:.1f} s"
    time.sleep(0.5)  # librdkafka threads would log reconnect attempts by now
    assert capfd.readouterr().err == ""  # no librdkafka log lines on stderr


def test_url_options_reach_the_clients(kafka_bootstrap: str) -> None:
    client_id = f"eventml-test-{uuid.uuid4().hex[:6]}"
    with open_log(f"kafka://{kafka_bootstrap}?client.id={client_id}&linger.ms=1") as log:
        assert isinstance(log, KafkaLog)
        assert log.options == {"client.id": client_id, "linger.ms": "1"}
        name = _topic(log)
        group = f"g_{uuid.uuid4().hex[:8]}"
        consumer = log.consumer(group, [name], config=ConsumerConfig(auto_offset_reset="earliest"))
        deadline = time.monotonic() + 20
        while not consumer.assignment():
            assert time.monotonic() < deadline, "never assigned"
            consumer.poll(max_records=1, timeout_s=0.1)
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap}, **QUIET)
        described = admin.describe_consumer_groups([group])[group].result(timeout=10)
        assert [m.client_id for m in described.members] == [client_id]
        consumer.close()


def test_bad_url_option_is_a_log_error(kafka_bootstrap: str) -> None:
    with pytest.raises(LogError, match=r"no\.such\.setting"):
        open_log(f"kafka://{kafka_bootstrap}?no.such.setting=1")


def test_url_option_that_breaks_the_connection_applies(kafka_bootstrap: str) -> None:
    # TLS against a plaintext listener: the option reached the client, so it cannot connect.
    with pytest.raises(BrokerUnavailable):
        open_log(f"kafka://{kafka_bootstrap}?security.protocol=SSL")


# -- keys, partitions, interoperability --------------------------------------------


def test_same_keys_land_on_the_same_partitions_as_embedded(
    log: Log, kafka_bootstrap: str, tmp_path: Path
) -> None:
    keys = [f"card-{i}".encode() for i in range(10_000)]
    batch = [Message(b"v", key=k) for k in keys]
    name = _topic(log, partitions=6)
    on_kafka = [m.partition for m in log.append(name, batch)]
    with open_log(f"embedded://{tmp_path}/data") as embedded:
        embedded.create_topic(TopicSpec(name, 6))
        on_embedded = [m.partition for m in embedded.append(name, batch)]
    assert on_kafka == on_embedded == [partition_for(k, 6) for k in keys]

    # librdkafka's own murmur2_random partitioner (a bare producer) agrees too
    reported: dict[bytes | None, int | None] = {}
    producer = RdProducer(
        {"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"}, **QUIET
    )
    for k in keys:
        producer.produce(
            name,
            b"v",
            k,
            on_delivery=lambda err, msg: reported.update({msg.key(): msg.partition()}),
        )
    assert producer.flush(30) == 0
    assert reported == dict(zip(keys, on_kafka, strict=True))
    counts = log.end_offsets(name)
    assert counts == {p: 2 * on_kafka.count(p) for p in range(6)}


def test_cloudevents_are_readable_by_a_plain_kafka_consumer(log: Log, kafka_bootstrap: str) -> None:
    name = _topic(log)
    event = Event(
        "card.transaction",
        {"amount": 12.5, "card": "c-1"},
        source="/pos/7",
        key="c-1",
        time=datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
        subject="c-1",
    )
    log.append(name, [to_message(event)])
    bare = _bare_consumer(kafka_bootstrap, name)
    try:
        msg = None
        deadline = time.monotonic() + 20
        while msg is None and time.monotonic() < deadline:
            msg = bare.poll(0.2)
        assert msg is not None and msg.error() is None
        headers = dict(msg.headers() or [])
        assert headers["ce_specversion"] == b"1.0"
        assert headers["ce_id"] == event.id.encode()
        assert headers["ce_type"] == b"card.transaction"
        assert headers["ce_source"] == b"/pos/7"
        assert headers["ce_subject"] == b"c-1"
        assert headers["content-type"] == b"application/json"
        assert msg.key() == b"c-1"
        assert orjson.loads(msg.value() or b"") == {"amount": 12.5, "card": "c-1"}
        assert msg.timestamp()[1] == event.time_ms
    finally:
        bare.close()


def test_a_plain_kafka_producers_record_is_readable(log: Log, kafka_bootstrap: str) -> None:
    name = _topic(log, partitions=2)
    producer = RdProducer({"bootstrap.servers": kafka_bootstrap}, **QUIET)
    producer.produce(
        name,
        b'{"x": 1}',
        b"k1",
        partition=1,
        timestamp=1_700_000_000_999,
        headers=[
            ("ce_specversion", b"1.0"),
            ("ce_id", b"id-1"),
            ("ce_source", b"/ext"),
            ("ce_type", b"ext.thing"),
            ("ce_time", b"2023-11-14T22:13:20.999+00:00"),
            ("content-type", b"application/json"),
        ],
    )
    producer.produce(name, b"no headers", partition=0)
    assert producer.flush(30) == 0
    consumer = log.consumer(
        f"g_{uuid.uuid4().hex[:8]}", [name], config=ConsumerConfig(auto_offset_reset="earliest")
    )
    records = sorted(_drain(consumer, 2), key=lambda r: r.partition)
    consumer.close()
    assert [(r.partition, r.offset, r.key, r.value) for r in records] == [
        (0, 0, None, b"no headers"),
        (1, 0, b"k1", b'{"x": 1}'),
    ]
    assert records[0].headers == ()
    assert records[1].timestamp_ms == 1_700_000_000_999
    event = from_record(records[1])
    assert (event.id, event.type, event.source, event.data) == (
        "id-1",
        "ext.thing",
        "/ext",
        {"x": 1},
    )


# -- topics and groups ----------------------------------------------------------------


def test_describe_reads_the_spec_back(log: Log) -> None:
    name = _topic(
        log,
        partitions=3,
        retention_ms=3_600_000,
        retention_bytes=1_000_000,
        config={"segment.ms": "600000"},
    )
    spec = log.describe_topic(name).spec
    assert spec == TopicSpec(
        name, 3, retention_ms=3_600_000, retention_bytes=1_000_000, config={"segment.ms": "600000"}
    )
    compacted = _topic(log, cleanup_policy="compact")
    assert log.describe_topic(compacted).spec == TopicSpec(compacted, 1, cleanup_policy="compact")
    assert name in log.list_topics() and not any(t.startswith("__") for t in log.list_topics())


def test_listener_hears_assign_and_revoke_and_commits_are_checked(log: Log) -> None:
    name = _topic(log, partitions=2)
    log.append(name, [Message(b"%d" % i, partition=i % 2) for i in range(10)])
    events: list[tuple[str, frozenset[TopicPartition]]] = []
    listener = RebalanceListener(
        on_assign=lambda tps: events.append(("assign", tps)),
        on_revoke=lambda tps: events.append(("revoke", tps)),
    )
    consumer = log.consumer(
        f"g_{uuid.uuid4().hex[:8]}",
        [name],
        config=ConsumerConfig(auto_offset_reset="latest"),
        listener=listener,
    )
    both = frozenset({TopicPartition(name, 0), TopicPartition(name, 1)})
    deadline = time.monotonic() + 20
    while consumer.assignment() != both:
        assert time.monotonic() < deadline, "never assigned"
        consumer.poll(max_records=10, timeout_s=0.1)
    assert events == [("assign", both)]
    # a fresh "latest" member starts at the end, and knows it before fetching anything
    assert {tp: consumer.position(tp) for tp in both} == {tp: 5 for tp in both}
    with pytest.raises(CommitFailed):
        consumer.commit({TopicPartition(name, 7): 1})
    consumer.commit()
    assert consumer.committed() == {tp: 5 for tp in both}
    consumer.close()
    assert events[-1] == ("revoke", both)


def test_transaction_markers_leave_no_lag(log: Log, kafka_bootstrap: str) -> None:
    # a committed transaction ends with a marker (an offset no consumer ever sees as a record)
    name = _topic(log)
    producer = RdProducer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{name}"}, **QUIET
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(5):
        producer.produce(name, b"%d" % i, partition=0)
    producer.commit_transaction(30)
    deadline = time.monotonic() + 10  # the marker is written just after the commit returns
    while log.end_offsets(name) != {0: 6}:  # 5 records + the commit marker
        assert time.monotonic() < deadline, f"end offsets {log.end_offsets(name)}"
        time.sleep(0.05)
    consumer = log.consumer(
        f"g_{uuid.uuid4().hex[:8]}", [name], config=ConsumerConfig(auto_offset_reset="earliest")
    )
    assert [r.offset for r in _drain(consumer, 5)] == [0, 1, 2, 3, 4]
    tp = TopicPartition(name, 0)
    assert consumer.poll(max_records=10, timeout_s=0.5) == []  # steps over the marker
    assert consumer.position(tp) == 6
    consumer.commit()
    assert consumer.lag() == {tp: 0}
    consumer.close()


@pytest.mark.kafka
def test_an_interrupted_append_does_not_leak_reports_into_the_next(kafka_bootstrap: str) -> None:
    log = open_log(f"kafka://{kafka_bootstrap}")
    topic = f"interrupt_{uuid.uuid4().hex[:8]}"
    log.create_topic(TopicSpec(topic, 1))
    real_await = log._await  # type: ignore[attr-defined]
    calls = {"n": 0}

    def interrupted(count: int) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # Ctrl-C just as the first batch was sent
        real_await(count)

    log._await = interrupted  # type: ignore[attr-defined]
    with pytest.raises(KeyboardInterrupt):
        log.append(topic, [Message(b"first-%d" % i) for i in range(5)])
    second = log.append(topic, [Message(b"second-%d" % i) for i in range(5)])
    assert [m.offset for m in second] == [5, 6, 7, 8, 9]
    log.close()


def test_disabling_idempotence_is_refused_before_connecting() -> None:
    with pytest.raises(LogError, match=r"enable\.idempotence=false is not supported"):
        open_log("kafka://127.0.0.1:1?enable.idempotence=false")
