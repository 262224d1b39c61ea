"""The throwaway Kafka broker: pure helpers, and a real produce/consume round trip."""

from __future__ import annotations

import base64
import re
import socket
import time
from pathlib import Path

import pytest

from eventml.testing.kafka import (
    KafkaUnavailable,
    default_home,
    ensure_jars,
    new_cluster_id,
    pick_free_ports,
    render_server_properties,
)
from eventml.testing.kafka._common import find_repo_root
from eventml.testing.kafka.jars import render_pom

# ---------------------------------------------------------------- pure helpers


def test_pick_free_ports_are_distinct_and_bindable() -> None:
    ports = pick_free_ports(2)
    assert len(ports) == 2
    assert len(set(ports)) == 2
    for port in ports:
        assert 1024 <= port <= 65535
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))  # still free right after picking


def test_server_properties_use_only_loopback(tmp_path: Path) -> None:
    text = render_server_properties(19092, 19093, tmp_path / "kraft")
    props = dict(line.split("=", 1) for line in text.splitlines() if line and "=" in line)
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "kraft")
    hosts = re.findall(r"(?://|@)([^:/,\s]*):\d+", text)
    assert hosts, text
    assert set(hosts) == {"127.0.0.1"}
    assert "0.0.0.0" not in text
    assert "localhost" not in text
    # single-node internal topics must not wait for replicas that never come
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "share.coordinator.state.topic.min.isr",
    ):
        assert props[key] == "1"


def test_cluster_id_is_22_char_base64url() -> None:
    ids = {new_cluster_id() for _ in range(500)}
    assert len(ids) == 500
    for cid in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid), cid
        assert not cid.startswith("-"), cid  # the storage tool would read it as an option
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_pom_carries_kafka_and_logging_binding() -> None:
    pom = render_pom("4.1.1", "log4j-slf4j-impl")
    assert "<packaging>pom</packaging>" in pom
    assert "<artifactId>kafka_2.13</artifactId><version>4.1.1</version>" in pom
    for artifact in ("log4j-api", "log4j-core", "log4j-slf4j-impl"):
        assert f"<artifactId>{artifact}</artifactId>" in pom


def test_ensure_jars_skips_when_marker_matches(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / ".complete").write_text("9.9.9\n")
    (lib / "kafka_2.13-9.9.9.jar").write_bytes(b"")
    # No mvn call happens: the marker says this version is complete.
    assert ensure_jars(tmp_path, "9.9.9") == lib


def test_ensure_jars_reports_missing_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(KafkaUnavailable, match=r"^mvn not found on PATH: install Maven"):
        ensure_jars(tmp_path, "9.9.9")


def test_default_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTML_KAFKA_HOME", str(tmp_path / "k"))
    assert default_home() == (tmp_path / "k").resolve()
    monkeypatch.delenv("EVENTML_KAFKA_HOME")
    (tmp_path / "repo" / "a" / "b").mkdir(parents=True)
    (tmp_path / "repo" / "pyproject.toml").write_text("")
    monkeypatch.chdir(tmp_path / "repo" / "a" / "b")
    assert find_repo_root() == (tmp_path / "repo").resolve()
    assert default_home() == (tmp_path / "repo").resolve() / ".kafka"


def test_topic_name_fixture(kafka_topic_name: str) -> None:
    assert re.fullmatch(r"pytest_test_topic_name_fixture_[0-9a-f]{8}", kafka_topic_name)


# ---------------------------------------------------------------- real broker


@pytest.mark.kafka
def test_produce_consume_round_trip(kafka_bootstrap: str, kafka_topic_name: str) -> None:
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    assert re.fullmatch(r"127\.0\.0\.1:\d+", kafka_bootstrap)
    topic = kafka_topic_name
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    futures[topic].result(timeout=30)

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True})
    delivered: list[int] = []

    def on_delivery(err: object, msg: object) -> None:
        assert err is None, err
        delivered.append(1)

    for i in range(100):
        producer.produce(
            topic, key=str(i).encode(), value=f"value-{i}".encode(), on_delivery=on_delivery
        )
    assert producer.flush(30) == 0
    assert len(delivered) == 100

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"{topic}-group",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    received: list[tuple[bytes, bytes]] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(received) < 100 and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            received.append((msg.key(), msg.value()))
    finally:
        consumer.close()

    assert received == [(str(i).encode(), f"value-{i}".encode()) for i in range(100)]
