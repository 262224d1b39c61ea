"""`eventml replay` and `eventml diff`: what-if runs over history, and their decisions."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, connect, fail
from eventml.clock import system_clock_ms
from eventml.engine import WorkerFailed, load_app
from eventml.replay import (
    DecisionDiff,
    ReplayError,
    ReplayResult,
    diff_decisions,
    parse_time,
    replay,
)

console = Console(highlight=False)

TimeHelp = "ISO-8601 with a timezone (2026-11-25T00:00:00Z), epoch ms, or relative (-24h, -30m)."
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def replay_command(
    app_spec: Annotated[
        str, typer.Option("--app", "-a", help="The app (or candidate) as module:attribute.")
    ],
    start: Annotated[str, typer.Option("--from", help=f"Window start (inclusive): {TimeHelp}")],
    end: Annotated[str, typer.Option("--to", help=f"Window end (exclusive): {TimeHelp}")],
    sandbox: Annotated[
        str, typer.Option("--into", help="Sandbox name: outputs go to <SANDBOX>.<topic>.")
    ],
    reset: Annotated[
        bool, typer.Option("--reset", help="Delete the sandbox's topics and state first.")
    ] = False,
    broker: Annotated[
        str | None, typer.Option("--broker", "-b", help="Log URL (default: the app's, or $EVENTML_BROKER).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Re-run an app over [--from, --to) of its input topics into sandbox topics, with empty
    state, its own consumer group and no sinks; live topics and offsets are not touched."""
    try:
        now = system_clock_ms()
        start_ms, end_ms = parse_time(start, now), parse_time(end, now)
        if start_ms >= end_ms:
            fail(f"--from ({start}) must be before --to ({end})")
        app = load_app(app_spec)
    except ValueError as e:
        fail(str(e))
    with connect(broker or app.broker) as log:
        try:
            result = replay(app, log, start_ms=start_ms, end_ms=end_ms, sandbox=sandbox, reset=reset)
        except ReplayError as e:
            fail(str(e))
        except WorkerFailed as e:
            fail(f"the replay stopped: {e}", 1)
    if as_json:
        typer.echo(orjson.dumps(result.to_json()).decode())
    else:
        _print_replay(result)


def diff_command(
    baseline: Annotated[str, typer.Argument(help="Topic of what happened (e.g. the live alerts).")],
    candidate: Annotated[str, typer.Argument(help="Topic of the what-if (e.g. SANDBOX.alerts).")],
    id_field: Annotated[
        str, typer.Option("--id-field", help="Field of a decision naming the decided-on event.")
    ] = "transaction_id",
    labels: Annotated[
        str | None, typer.Option("--labels", help="Topic of positive labels (e.g. chargebacks).")
    ] = None,
    label_id_field: Annotated[
        str, typer.Option("--label-id-field", help="Field of a label naming the labelled event.")
    ] = "transaction_id",
    start: Annotated[str | None, typer.Option("--from", help=f"Window start: {TimeHelp}")] = None,
    end: Annotated[str | None, typer.Option("--to", help=f"Window end: {TimeHelp}")] = None,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
) -> None:
    """Compare two topics of decisions (alerts): added, removed, duplicates, and precision
    and recall of each against --labels; both restricted to [--from, --to) by event time."""
    try:
        now = system_clock_ms()
        start_ms = None if start is None else parse_time(start, now)
        end_ms = None if end is None else parse_time(end, now)
    except ReplayError as e:
        fail(str(e))
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        fail(f"--from ({start}) must be before --to ({end})")
    with connect(broker) as log:
        try:
            diff = diff_decisions(
                log, baseline, candidate, id_field=id_field, start_ms=start_ms, end_ms=end_ms,
                labels_topic=labels, label_id_field=label_id_field,
            )
        except ReplayError as e:
            fail(str(e))
    if as_json:
        typer.echo(orjson.dumps(diff.to_json()).decode())
    else:
        _print_diff(diff)


def _print_replay(r: ReplayResult) -> None:
    table = Table(title=f"replay of {r.app} into {r.sandbox} (group {r.sandbox_app})")
    table.add_column("topic")
    table.add_column("read", justify="right")
    table.add_column("skipped", justify="right")
    table.add_column("written", justify="right")
    for topic, n in r.read.items():
        table.add_row(topic, str(n), str(r.skipped.get(topic, 0)), "")
    for topic, n in r.written.items():
        table.add_row(topic, "", "", str(n))
    console.print(table)
    sinks = f", {r.sinks_disabled} sink(s) not called" if r.sinks_disabled else ""
    console.print(f"{r.events} events in {r.seconds:.2f} s ({r.events_per_s:,.0f} events/s), "
                  f"{r.dead_letters} dead letters{sinks}")


def _print_diff(d: DecisionDiff) -> None:
    table = Table(title=f"decisions by {d.id_field}")
    table.add_column("")
    table.add_column(f"baseline {d.baseline.topic}", justify="right")
    table.add_column(f"candidate {d.candidate.topic}", justify="right")
    rows: list[tuple[str, object, object]] = [
        ("events in window", d.baseline.events, d.candidate.events),
        ("decisions", d.baseline.decisions, d.candidate.decisions),
        ("duplicates", d.baseline.duplicates, d.candidate.duplicates),
        ("no id", d.baseline.unreadable, d.candidate.unreadable),
        ("outside window", d.baseline.outside, d.candidate.outside),
    ]
    if d.positives is not None:
        rows += [
            ("true positives", d.baseline.true_positives, d.candidate.true_positives),
            ("precision", _ratio(d.baseline.precision), _ratio(d.candidate.precision)),
            ("recall", _ratio(d.baseline.recall), _ratio(d.candidate.recall)),
            ("F1", _ratio(d.baseline.f1), _ratio(d.candidate.f1)),
        ]
    for name, b, c in rows:
        table.add_row(name, str(b), str(c))
    console.print(table)
    console.print(f"common {d.common}, added {d.added}, removed {d.removed}"
                  + (f", labelled positives {d.positives}" if d.positives is not None else ""))
    if d.added_examples:
        console.print("added e.g. " + ", ".join(d.added_examples))
    if d.removed_examples:
        console.print("removed e.g. " + ", ".join(d.removed_examples))


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"
