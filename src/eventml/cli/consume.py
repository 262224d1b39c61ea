"""`eventml consume` and `eventml tail`: events out as JSON lines."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import orjson
import typer

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, connect
from eventml.events.binding import EventDecodeError, from_record, to_structured
from eventml.log import ConsumerConfig, Record


def record_json(record: Record, with_meta: bool) -> dict[str, Any]:
    """A record as JSON: its CloudEvent in structured form, or raw fields if it is none."""
    try:
        out: dict[str, Any] = to_structured(from_record(record))
    except EventDecodeError:
        out = {
            "key": record.key.decode("utf-8", "replace") if record.key is not None else None,
            "value": record.value.decode("utf-8", "replace") if record.value is not None else None,
            "headers": {k: v.decode("utf-8", "replace") for k, v in record.headers},
        }
    if with_meta:
        out["_topic"], out["_partition"], out["_offset"] = (
            record.topic, record.partition, record.offset)
        out["_timestamp_ms"] = record.timestamp_ms
    return out


def _emit(record: Record, with_meta: bool) -> None:
    typer.echo(orjson.dumps(record_json(record, with_meta)).decode())


def consume(
    topic: str,
    group: Annotated[str, typer.Option("--group", "-g", help="Consumer group (offsets are committed).")],
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record if the group has no offset.")
    ] = False,
    max_events: Annotated[
        int | None, typer.Option("--max", "-n", min=1, help="Stop after this many events.")
    ] = None,
    idle_ms: Annotated[
        int, typer.Option(help="Stop after this long without new events (0 = follow forever).")
    ] = 3000,
    meta: Annotated[bool, typer.Option("--meta", help="Add _topic/_partition/_offset fields.")] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Read TOPIC as a member of GROUP, print one JSON line per event, commit as it goes."""
    config = ConsumerConfig(auto_offset_reset="earliest" if from_beginning else "latest")
    with connect(broker) as log:
        log.describe_topic(topic)
        consumer = log.consumer(group, [topic], config=config)
        seen = 0
        last = time.monotonic()
        try:
            while max_events is None or seen < max_events:
                want = 500 if max_events is None else min(500, max_events - seen)
                records = consumer.poll(max_records=want, timeout_s=0.2)
                for r in records:
                    _emit(r, meta)
                if records:
                    seen += len(records)
                    consumer.commit()
                    last = time.monotonic()
                elif idle_ms and (time.monotonic() - last) * 1000 >= idle_ms:
                    break
        finally:
            consumer.close()


def tail(
    topic: str,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Show this many last events per partition.")] = 10,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new events.")] = False,
    meta: Annotated[bool, typer.Option("--meta", help="Add _topic/_partition/_offset fields.")] = True,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Print the last events of TOPIC (per partition), and with -f follow new ones. Commits nothing."""
    with connect(broker) as log:
        partitions = log.describe_topic(topic).spec.partitions
        consumer = log.consumer(f"eventml-tail-{uuid.uuid4().hex[:8]}", [topic])
        try:
            buffered: list[Record] = []
            deadline = time.monotonic() + 30
            while len(consumer.assignment()) < partitions and time.monotonic() < deadline:
                buffered.extend(consumer.poll(max_records=1, timeout_s=0.1))
            starts = log.start_offsets(topic)
            ends = log.end_offsets(topic)
            for tp in consumer.assignment():
                consumer.seek(tp, max(starts[tp.partition], ends[tp.partition] - lines))
            pending = {tp: ends[tp.partition] for tp in consumer.assignment()}
            while pending:  # print what was there when we started, then maybe follow
                for r in consumer.poll(max_records=500, timeout_s=0.2):
                    _emit(r, meta)
                pending = {tp: e for tp, e in pending.items() if consumer.position(tp) < e}
            while follow:
                for r in consumer.poll(max_records=500, timeout_s=0.5):
                    _emit(r, meta)
        finally:
            consumer.close()


