"""`eventml topics create|list|describe|delete`."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, connect, fail
from eventml.log import TopicSpec

topics_app = typer.Typer(help="Create, list, describe and delete topics.", no_args_is_help=True)
console = Console(highlight=False)


def _parse_config(items: list[str]) -> dict[str, str]:
    config = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            fail(f"--config takes NAME=VALUE, got {item!r}")
        config[name] = value
    return config


@topics_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Topic name ([a-zA-Z0-9._-], up to 249 chars).")],
    partitions: Annotated[int, typer.Option("--partitions", "-p", min=1, help="Partitions.")] = 1,
    retention_ms: Annotated[
        int | None, typer.Option(min=1, help="Delete records older than this (ms).")
    ] = None,
    retention_bytes: Annotated[
        int | None, typer.Option(min=1, help="Keep at most this many bytes per partition.")
    ] = None,
    cleanup_policy: Annotated[
        str, typer.Option(help="delete (retention) or compact (latest value per key).")
    ] = "delete",
    config: Annotated[
        list[str] | None, typer.Option("--config", "-c", help="Backend topic setting NAME=VALUE.")
    ] = None,
    exist_ok: Annotated[bool, typer.Option("--exist-ok", help="Succeed if it exists.")] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Create a topic."""
    if cleanup_policy not in ("delete", "compact"):
        fail(f"--cleanup-policy must be 'delete' or 'compact', got {cleanup_policy!r}")
    spec = TopicSpec(
        name,
        partitions,
        retention_ms=retention_ms,
        retention_bytes=retention_bytes,
        cleanup_policy=cleanup_policy,  # type: ignore[arg-type]
        config=_parse_config(config or []),
    )
    with connect(broker) as log:
        log.create_topic(spec, exist_ok=exist_ok)
    typer.echo(f"created topic {name} ({partitions} partition{'s' if partitions > 1 else ''})")


@topics_app.command("list")
def list_(
    json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """List topics."""
    with connect(broker) as log:
        names = log.list_topics()
    if json:
        typer.echo(orjson.dumps(names).decode())
    else:
        for name in names:
            typer.echo(name)


@topics_app.command("describe")
def describe(
    name: str,
    json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Show a topic's settings and per-partition offsets."""
    with connect(broker) as log:
        d = log.describe_topic(name)
    if json:
        out = {
            "name": d.spec.name,
            "partitions": d.spec.partitions,
            "retention_ms": d.spec.retention_ms,
            "retention_bytes": d.spec.retention_bytes,
            "cleanup_policy": d.spec.cleanup_policy,
            "start_offsets": {str(p): o for p, o in d.start_offsets.items()},
            "end_offsets": {str(p): o for p, o in d.end_offsets.items()},
            "records": d.records,
        }
        typer.echo(orjson.dumps(out).decode())
        return
    s = d.spec
    console.print(
        f"[bold]{s.name}[/]  partitions={s.partitions} cleanup={s.cleanup_policy} "
        f"retention_ms={s.retention_ms} retention_bytes={s.retention_bytes} records={d.records}"
    )
    table = Table("partition", "start offset", "end offset", "records")
    for p in sorted(d.end_offsets):
        start, end = d.start_offsets[p], d.end_offsets[p]
        table.add_row(str(p), str(start), str(end), str(end - start))
    console.print(table)


@topics_app.command("delete")
def delete(name: str, broker: BrokerOption = DEFAULT_BROKER) -> None:
    """Delete a topic and its records."""
    with connect(broker) as log:
        log.delete_topic(name)
    typer.echo(f"deleted topic {name}")
