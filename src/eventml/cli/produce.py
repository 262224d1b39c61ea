"""`eventml produce TOPIC`: JSON lines in, events appended; bad lines dead-lettered."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, BinaryIO

import typer

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, connect, fail
from eventml.clock import system_clock_ms
from eventml.deadletter import dead_letter_message, dead_letter_topic
from eventml.events.binding import to_message
from eventml.events.jsonlines import BadLine, LineOptions, parse_lines
from eventml.log import Log, Message, TopicSpec

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
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Append JSON lines to TOPIC: one CloudEvent (structured JSON) or plain object per line.

    Malformed lines are reported with their line numbers and kept, byte for byte,
    in the dead-letter topic TOPIC.dlq; every good line is appended.
    """
    options = LineOptions(type=event_type, source=source, key_field=key_field, time_field=time_field)
    origin = str(file) if file else "<stdin>"
    with connect(broker) as log:
        log.describe_topic(topic)  # fail early, with the log's message, if it does not exist
        stream: BinaryIO = file.open("rb") if file else sys.stdin.buffer
        try:
            good, bad = _append_all(log, topic, stream, options, origin)
        finally:
            if file:
                stream.close()
    typer.echo(f"appended {good} event{'s' if good != 1 else ''} to {topic}", err=True)
    if bad:
        numbers = ", ".join(str(b.number) for b in bad[:20]) + (" ..." if len(bad) > 20 else "")
        fail(f"{len(bad)} malformed line(s) ({numbers}) kept in {dead_letter_topic(topic)}", 1)


def _append_all(
    log: Log, topic: str, lines: Iterable[bytes], options: LineOptions, origin: str
) -> tuple[int, list[BadLine]]:
    good = 0
    bad: list[BadLine] = []
    batch: list[Message] = []
    for _, item in parse_lines(lines, options):
        if isinstance(item, BadLine):
            typer.echo(f"{origin}:{item.number}: {item.error}", err=True)
            bad.append(item)
            continue
        batch.append(to_message(item))
        if len(batch) >= BATCH:
            good += len(log.append(topic, batch))
            batch = []
    if batch:
        good += len(log.append(topic, batch))
    if bad:
        _dead_letter(log, topic, bad, origin)
    return good, bad


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
