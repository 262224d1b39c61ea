"""`eventml dlq list|show|replay`: look into dead-letter topics and replay them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, connect, fail
from eventml.deadletter.parse import DeadLetter, InvalidDeadLetter, parse_dead_letter
from eventml.deadletter.replay import REPLAY_GROUP, read_records, replay, resolve_topics

dlq_app = typer.Typer(
    help="Inspect and replay dead letters (kept in TOPIC.dlq).", no_args_is_help=True
)

TopicArgument = Annotated[
    str,
    typer.Argument(
        help="The source topic (its dead letters are in TOPIC.dlq) or the dead-letter topic itself."
    ),
]
_KNOWN_SOURCE = ("topic", "partition", "offset")


@dlq_app.command("list")
def list_(
    topic: TopicArgument,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """One line per dead letter: its partition:offset, where it came from, error, attempts, time."""
    with connect(broker) as log:
        dlq, _ = resolve_topics(log, topic)
        for record in read_records(log, dlq):
            try:
                dead = parse_dead_letter(record)
            except InvalidDeadLetter as e:
                typer.echo(f"eventml: warning: {e}", err=True)
                continue
            typer.echo(orjson.dumps(_summary_json(dead)).decode() if json else _summary_line(dead))


@dlq_app.command("show")
def show(
    topic: TopicArgument,
    offset: Annotated[int, typer.Argument(help="Offset of the dead letter in the dead-letter topic.")],
    partition: Annotated[
        int, typer.Option("--partition", "-p", help="Partition of the dead-letter topic.")
    ] = 0,
    json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Show one dead letter: its provenance and the original key, headers and value.

    Bytes are shown as text when they are printable UTF-8, otherwise as hex.
    """
    with connect(broker) as log:
        dlq, _ = resolve_topics(log, topic)
        starts, ends = log.start_offsets(dlq), log.end_offsets(dlq)
        if partition not in ends:
            fail(f"{dlq} has no partition {partition} (it has {len(ends)})")
        start, end = starts[partition], ends[partition]
        if not start <= offset < end:
            held = f"holds offsets {start}-{end - 1}" if end > start else "is empty"
            fail(f"no offset {offset} in {dlq}[{partition}] (it {held})")
        records = list(read_records(log, dlq, {partition: (offset, offset + 1)}))
    if not records:  # removed by retention meanwhile
        fail(f"no offset {offset} in {dlq}[{partition}] any more")
    try:
        dead = parse_dead_letter(records[0])
    except InvalidDeadLetter as e:
        fail(str(e), code=1)
    if json:
        out = _summary_json(dead) | {
            "error_message": dead.error_message,
            "key": _bytes_json(dead.key),
            "headers": [[name, _bytes_json(raw)] for name, raw in dead.headers],
            "value": _bytes_json(dead.value),
        }
        typer.echo(orjson.dumps(out).decode())
    else:
        _print_details(dead)


@dlq_app.command("replay")
def replay_(
    topic: TopicArgument,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Append here instead of each dead letter's source topic."),
    ] = None,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Append the dead letters' original key, value and headers back to their source topic.

    Each gets the header eventml.replay.of=DLQ:PARTITION:OFFSET. Replays are
    exactly-once: the consumer group eventml-dlq-replay marks what was replayed,
    in the same transaction as the appends, so running it again replays only
    what was dead-lettered since.
    """
    with connect(broker) as log:
        dlq, source = resolve_topics(log, topic)
        result = replay(log, dlq, to=to, default_source=source)
    if result.skipped:
        typer.echo(
            f"eventml: warning: skipped {result.skipped} record(s) of {dlq} without provenance",
            err=True,
        )
    targets = ", ".join(f"{t} ({n})" for t, n in sorted(result.replayed.items()))
    typer.echo(
        f"replayed {result.total} dead letter{'s' if result.total != 1 else ''} from {dlq}"
        + (f" to {targets}" if targets else f" (group {REPLAY_GROUP} had replayed the rest)")
        + (f"; {result.already_replayed} had been replayed by id before and were not again"
           if result.already_replayed else "")
    )


# -- presentation (pure) ------------------------------------------------------------


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def _source_text(dead: DeadLetter) -> str:
    s = dead.source
    text = s.get("topic", "?")
    if "partition" in s and "offset" in s:
        text += f"[{s['partition']}]@{s['offset']}"
    extra = [f"{k}={v}" for k, v in s.items() if k not in _KNOWN_SOURCE]
    return _printable(text + (" (" + ", ".join(extra) + ")" if extra else ""))


def _summary_line(dead: DeadLetter) -> str:
    kind = f" ({dead.error_kind})" if dead.error_kind else ""
    return (
        f"{dead.partition}:{dead.offset}  source={_source_text(dead)}  "
        f"error={_printable(dead.error_class)}{_printable(kind)}  attempts={dead.attempts}  "
        f"at={_iso(dead.at_ms)}  message={_printable(_short(dead.error_message))}"
    )


def _short(message: str | None, limit: int = 160) -> str:
    text = " ".join((message or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _summary_json(dead: DeadLetter) -> dict[str, Any]:
    return {
        "topic": dead.topic,
        "partition": dead.partition,
        "offset": dead.offset,
        "source": dict(dead.source),
        "error_class": dead.error_class,
        "error_kind": dead.error_kind,
        "error_message": dead.error_message,
        "attempts": dead.attempts,
        "at_ms": dead.at_ms,
        "at": _iso(dead.at_ms),
        "value_bytes": None if dead.value is None else len(dead.value),
    }


def _print_details(dead: DeadLetter) -> None:
    rows = [
        ("dead letter", f"{dead.topic}[{dead.partition}]@{dead.offset}"),
        ("source", _source_text(dead)),
        ("error", _printable(dead.error_class + (f" ({dead.error_kind})" if dead.error_kind else ""))),
        ("message", _printable(dead.error_message)),
        ("attempts", str(dead.attempts)),
        ("at", _iso(dead.at_ms)),
        ("key", _bytes_text(dead.key)),
    ]
    rows += [(f"header {_printable(name)}", _bytes_text(raw)) for name, raw in dead.headers]
    for label, shown in rows:
        typer.echo(f"{label + ':':<12} {shown}")
    value = dead.value
    if value is None:
        typer.echo(f"{'value:':<12} (none)")
    elif (text := _as_text(value)) is not None:
        typer.echo(f"{'value:':<12} {len(value)} bytes, UTF-8 text")
        typer.echo(text)
    else:
        typer.echo(f"{'value:':<12} {len(value)} bytes, not printable UTF-8: hex")
        for i in range(0, len(value), 16):
            chunk = value[i : i + 16]
            typer.echo(f"{i:08x}  {chunk.hex(' '):<47}  |{_ascii(chunk)}|")


def _as_text(raw: bytes) -> str | None:
    """``raw`` as text if it is UTF-8 without control characters (but newline and tab)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if all(c.isprintable() or c in "\n\t" for c in text) else None


def _bytes_text(raw: bytes | None) -> str:
    if raw is None:
        return "(none)"
    text = _as_text(raw)
    return repr(text) if text is not None else f"hex {raw.hex()}"


def _bytes_json(raw: bytes | None) -> dict[str, str] | None:
    if raw is None:
        return None
    text = _as_text(raw)
    return {"text": text} if text is not None else {"hex": raw.hex()}


def _printable(text: str) -> str:
    """``text`` with control characters escaped, safe to print on a terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _ascii(chunk: bytes) -> str:
    return "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
