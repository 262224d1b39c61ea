"""`eventml produce TOPIC`: JSON lines in, events appended; bad lines dead-lettered."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, connect, fail
from eventml.clock import system_clock_ms
from eventml.deadletter import dead_letter_message, dead_letter_topic
from eventml.events.binding import to_message
from eventml.events.jsonlines import BadLine, LineOptions, parse_lines
from eventml.log import Log, Message, TopicSpec
from eventml.schema.contract import BoundContract, ContractViolation

BATCH = 1000


def produce(
    topic: Annotated[str, typer.Argument(help="Topic to append to (must exist).")],
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Read JSON lines from this file instead of stdin.",
                     exists=True, dir_okay=False, readable=True),
    ] = None,
    key_field: Annotated[
        str | None, typer.Option(help="Field of each object whose value is the event key.")
    ] = None,
    time_field: Annotated[
        str | None, typer.Option(help="Field holding event time (epoch s/ms or RFC 3339).")
    ] = None,
    event_type: Annotated[
        str, typer.Option("--type", help="CloudEvents type for plain JSON objects.")
    ] = "eventml.record",
    source: Annotated[str, typer.Option(help="CloudEvents source for plain objects.")] = "eventml-cli",
    validate: Annotated[
        bool,
        typer.Option("--validate", help="Check each event's data against the latest schema of "
                     "TOPIC-value in the log's schema registry, and write it framed."),
    ] = False,
    subject: Annotated[
        str | None, typer.Option(help="With --validate: the subject to use instead of TOPIC-value.")
    ] = None,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Append JSON lines to TOPIC: one CloudEvent (structured JSON) or plain object per line.

    Malformed lines (and, with --validate, lines whose data breaks the topic's schema)
    are reported with their line numbers and kept, byte for byte, in the dead-letter
    topic TOPIC.dlq; every good line is appended.
    """
    options = LineOptions(type=event_type, source=source, key_field=key_field, time_field=time_field)
    origin = str(file) if file else "<stdin>"
    with connect(broker) as log:
        log.describe_topic(topic)  # fail early, with the log's message, if it does not exist
        contract = _contract(log, topic, subject) if validate or subject else None
        stream: BinaryIO = file.open("rb") if file else sys.stdin.buffer
        try:
            good, bad = _append_all(log, topic, stream, options, origin, contract)
        finally:
            if file:
                stream.close()
    typer.echo(f"appended {good} event{'s' if good != 1 else ''} to {topic}", err=True)
    if bad:
        numbers = ", ".join(str(b.number) for b in bad[:20]) + (" ..." if len(bad) > 20 else "")
        fail(f"{len(bad)} malformed line(s) ({numbers}) kept in {dead_letter_topic(topic)}", 1)


def _contract(log: Log, topic: str, subject: str | None) -> BoundContract:
    """The latest schema of ``subject`` (default ``TOPIC-value``), ready to validate and frame."""
    from eventml.schema import Contract, SchemaError, SchemaRegistry

    name = subject or f"{topic}-value"
    try:
        registry = SchemaRegistry(log)
        latest = registry.version(name)
        contract = Contract(latest.schema.schema_type, latest.schema.schema, name, auto_register=False)
        return contract.bind(registry, topic)
    except SchemaError as e:
        fail(f"--validate: no usable schema for {name} ({e}); register one with "
             f"'eventml schemas register {name} FILE'")


def _append_all(
    log: Log, topic: str, lines: Iterable[bytes], options: LineOptions, origin: str,
    contract: BoundContract | None = None,
) -> tuple[int, list[BadLine]]:
    good = 0
    bad: list[BadLine] = []
    batch: list[Message] = []
    seen = _LastLine(lines)
    for number, item in parse_lines(seen, options):
        if not isinstance(item, BadLine) and contract is not None:
            try:
                framed = contract.encode(item.data)
            except ContractViolation as e:  # kept as it came, like a malformed line
                item = BadLine(number, seen.last.rstrip(b"\r\n"), str(e))
        if isinstance(item, BadLine):
            typer.echo(f"{origin}:{item.number}: {item.error}", err=True)
            bad.append(item)
            continue
        message = to_message(item)
        if contract is not None:
            message = message._replace(value=framed, headers=_framed_headers(message, contract))
        batch.append(message)
        if len(batch) >= BATCH:
            good += len(log.append(topic, batch))
            batch = []
    if batch:
        good += len(log.append(topic, batch))
    if bad:
        _dead_letter(log, topic, bad, origin)
    return good, bad


class _LastLine:
    """The lines, remembering the one handed out last (parse_lines yields as it reads)."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = lines
        self.last = b""

    def __iter__(self) -> Iterator[bytes]:
        for line in self._lines:
            self.last = line
            yield line


def _framed_headers(message: Message, contract: BoundContract) -> tuple[tuple[str, bytes], ...]:
    kind = "avro" if contract.contract.schema_type == "AVRO" else "json"
    content = f"application/vnd.schemaregistry.v1+{kind}".encode()
    return (*[h for h in message.headers if h[0] != "content-type"], ("content-type", content))


def _dead_letter(log: Log, topic: str, bad: list[BadLine], origin: str) -> None:
    dlq = dead_letter_topic(topic)
    log.create_topic(TopicSpec(dlq), exist_ok=True)
    now = system_clock_ms()
    messages = [
        dead_letter_message(
            b.raw,
            error=b.error,
            source={"topic": topic, "input": origin, "line": b.number, "stage": "cli.produce"},
            now_ms=now,
        )
        for b in bad
    ]
    try:
        log.append(dlq, messages)
    except Exception as e:  # the good lines are in; say what is not
        fail(f"could not write {len(bad)} malformed line(s) to {dlq}: {e}", 1)
