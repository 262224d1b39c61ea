"""`eventml bench log` and `eventml bench state`: throughput and restore time, as JSON or a table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, err_console, fail

bench_app = typer.Typer(help="Benchmarks that print JSON and a table.", no_args_is_help=True)
console = Console(highlight=False)


@bench_app.command("log")
def log(
    events: Annotated[
        int, typer.Option("--events", "-n", help="Events to append and read.")
    ] = 1_000_000,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Events per append call and per poll.")
    ] = 10_000,
    value_size: Annotated[int, typer.Option("--value-size", help="Payload bytes per event.")] = 200,
    partitions: Annotated[int, typer.Option("--partitions", "-p", help="Topic partitions.")] = 1,
    keys: Annotated[
        int, typer.Option("--keys", help="Distinct keys, cycled (0: unkeyed, round-robin).")
    ] = 0,
    repeat: Annotated[
        int, typer.Option("--repeat", "-r", help="Runs; each metric reports the best (or median).")
    ] = 1,
    median: Annotated[
        bool, typer.Option("--median", help="Report the median of the runs instead of the best.")
    ] = False,
    no_baseline: Annotated[
        bool, typer.Option("--no-baseline", help="Skip the raw sqlite3 / confluent-kafka run.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Only one JSON object on stdout.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the JSON object to this file.")
    ] = None,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Append throughput (batched) and fresh-group read throughput, eventml vs the raw client."""
    for name, value, least in (
        ("--events", events, 1),
        ("--batch-size", batch_size, 1),
        ("--value-size", value_size, 0),
        ("--partitions", partitions, 1),
        ("--keys", keys, 0),
        ("--repeat", repeat, 1),
    ):
        if value < least:
            fail(f"{name} must be >= {least}, got {value}")

    from eventml.bench import render_table, run_log_benchmark, to_json
    from eventml.log.registry import parse_broker_url

    parse_broker_url(broker)  # an unknown scheme is one line on stderr, before any work
    result = run_log_benchmark(
        broker,
        events=events,
        batch_size=batch_size,
        value_size=value_size,
        partitions=partitions,
        keys=keys,
        repeat=repeat,
        statistic="median" if median else "best",
        baseline=not no_baseline,
        progress=None if json else lambda msg: err_console.print(f"[dim]{msg}[/]"),
    )
    if out is not None:
        out.write_text(to_json(result, indent=True) + "\n")
    if json:
        typer.echo(to_json(result))
    else:
        render_table(result, console)


@bench_app.command("state")
def state(
    keys: Annotated[
        int, typer.Option("--keys", "-n", help="Keys to write to one partition's store.")
    ] = 1_000_000,
    value_size: Annotated[int, typer.Option("--value-size", help="Value bytes per key.")] = 50,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Keys per transaction while writing.")
    ] = 100_000,
    json: Annotated[bool, typer.Option("--json", help="Only one JSON object on stdout.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the JSON object to this file.")
    ] = None,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """State restore: write N keys to one partition's store, time opening them again."""
    for name, value, least in (
        ("--keys", keys, 1),
        ("--value-size", value_size, 0),
        ("--batch-size", batch_size, 1),
    ):
        if value < least:
            fail(f"{name} must be >= {least}, got {value}")

    from eventml.bench import to_json
    from eventml.bench.state import render_state_table, run_state_benchmark
    from eventml.log.registry import parse_broker_url

    parse_broker_url(broker)  # an unknown scheme is one line on stderr, before any work
    result = run_state_benchmark(
        broker,
        keys=keys,
        value_size=value_size,
        batch_size=batch_size,
        progress=None if json else lambda msg: err_console.print(f"[dim]{msg}[/]"),
    )
    if out is not None:
        out.write_text(to_json(result, indent=True) + "\n")
    if json:
        typer.echo(to_json(result))
    else:
        render_state_table(result, console)
