"""`eventml demo fraud`: the fraud-detection scenario, end to end on any broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, connect, err_console, fail
from eventml.log import LogError

demo_app = typer.Typer(help="Runnable scenarios.", no_args_is_help=True)


@demo_app.callback()
def _scenarios() -> None:
    """Runnable scenarios (a callback keeps `fraud` a sub-command while it is the only one)."""


@demo_app.command("fraud")
def fraud(
    events: Annotated[
        int, typer.Option("--events", "-n", min=1, help="Transactions to generate and score.")
    ] = 20_000,
    seed: Annotated[int, typer.Option(help="Generator seed: the same seed, the same data.")] = 7,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of a table.")
    ] = False,
    rate: Annotated[
        float | None,
        typer.Option(min=1, help="Offered load in events/s (default: as fast as possible)."),
    ] = None,
    at_least_once: Annotated[
        bool, typer.Option("--at-least-once", help="Commit outputs and offsets separately.")
    ] = False,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="Skip the transactions' schema check.")
    ] = False,
    features: Annotated[
        bool,
        typer.Option("--features/--no-features",
                     help="The model also reads the card_activity feature view (trained by "
                          "point-in-time retrieval; served values checked against it)."),
    ] = True,
    no_what_if: Annotated[
        bool, typer.Option("--no-what-if", help="Skip replaying a candidate model over the run.")
    ] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Card transactions -> per-card features (keyed state) -> scikit-learn model ->
    fraud-alerts, plus per-card velocity windows; on the stream engine, exactly-once.
    Then: chargebacks (delayed labels), a what-if replay of a candidate model compared
    on the run's last day, and the card_risk read model."""
    from eventml.demos.fraud import MissingDependency, run_fraud_demo

    try:
        with connect(broker) as log, _progress(events) as progress:
            result = run_fraud_demo(
                log, events=events, seed=seed, progress=progress, rate_eps=rate,
                guarantee="at_least_once" if at_least_once else "exactly_once",
                validate=not no_validate,
                features=features,
                what_if=not no_what_if,
            )
    except LogError as e:
        fail(str(e))
    except MissingDependency as e:
        fail(str(e), code=1)
    except ImportError as e:  # a backend's client library is missing
        fail(f"cannot open broker {broker!r}: {e}")
    if json_output:
        typer.echo(orjson.dumps(result.to_json_dict()).decode())
    else:
        Console(highlight=False).print(_summary(result.to_json_dict()))


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (stdout stays clean for --json); silent if not a terminal."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    task = bar.add_task("training the model on a generated history", total=total)

    def update(done: int) -> None:
        bar.update(task, completed=done, description="scoring transactions")

    with bar:
        yield update


def _summary(result: dict[str, object]) -> Table:
    latency = result["latency_ms"]
    assert isinstance(latency, dict)
    by_pattern = result["recall_by_pattern"]
    assert isinstance(by_pattern, dict)
    table = Table(title="eventml demo fraud", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows: list[tuple[str, str]] = [
        ("broker", str(result["broker"])),
        ("transactions", f"{result['events']:,} ({result['fraud_events']:,} fraudulent)"),
        ("alerts", f"{result['alerts']:,} ({result['true_positives']:,} true)"),
        ("velocity alerts", f"{result['velocity_alerts']:,} (cards used 5+ times in a minute)"),
        ("precision", f"{result['precision']:.3f}"),
        ("recall", f"{result['recall']:.3f}"),
        *((f"  recall: {name}", f"{value:.3f}") for name, value in by_pattern.items()),
        ("throughput", f"{result['throughput_eps']:,.0f} events/s ({result['guarantee']})"),
        (
            "latency p50 / p99",
            f"{_ms(latency['p50'])} / {_ms(latency['p99'])} "
            + (
                f"at {result['offered_rate_eps']:,.0f} events/s offered"
                if result.get("offered_rate_eps")
                else "(unthrottled: includes backlog; try --rate 5000)"
            ),
        ),
        ("model", f"{result['model']} on {len(result['features'])} features"  # type: ignore[arg-type]
                  + (f" ({len(result['view_features'])} from the card_activity view)"  # type: ignore[arg-type]
                     if result.get("view_features") else "")
                  + f", threshold {result['threshold']:.3f}"),
        (
            "data contract",
            f"{result['schema']}; {result['dead_letters']:,} dead letters"
            if result.get("schema")
            else "off (--no-validate)",
        ),
    ]
    skew = result.get("feature_skew")
    if isinstance(skew, dict):
        rows.append((
            "feature view",
            f"card_activity: {skew['compared']:,} served values vs point-in-time retrieval, "
            f"{skew['mismatches']:,} mismatches",
        ))
    profiles = result.get("risk_profiles")
    if isinstance(profiles, dict):
        rows.append((
            "read model",
            f"{profiles['view']}: {profiles['cards']:,} cards ({profiles['by_risk']['high']:,} high, "
            f"{profiles['by_risk']['elevated']:,} elevated risk), {profiles['events']:,} events "
            f"folded at {profiles['events_per_s']:,.0f}/s",
        ))
        rows.append(("  query it", f"eventml views query {profiles['view']} --where risk=high "
                                   "--app eventml.demos.fraud.profile:views"))
    what_if = result.get("what_if")
    if isinstance(what_if, dict):
        rows.extend(_what_if_rows(what_if))
    for name, value in rows:
        table.add_row(name, value)
    return table


def _what_if_rows(what_if: dict[str, Any]) -> list[tuple[str, str]]:
    diff = what_if["diff"]
    base, cand = diff["baseline"], diff["candidate"]
    window = f"{_iso(what_if['from_ms'])} to {_iso(what_if['to_ms'])}"
    return [
        ("what-if", f"candidate: {what_if['candidate']}; replayed {what_if['replayed']:,} "
                    f"transactions at {what_if['events_per_s']:,.0f}/s into {what_if['sandbox']}"),
        ("  last day", f"{window}: {diff['added']:,} alerts added, {diff['removed']:,} removed; "
                       f"precision {base['precision']:.3f} -> {cand['precision']:.3f}, recall "
                       f"{base['recall']:.3f} -> {cand['recall']:.3f} ({diff['positives']:,} chargebacks)"),
        ("  diff it", f"eventml diff {base['topic']} {cand['topic']} --labels {diff['labels_topic']} "
                      f"--from {_iso(what_if['from_ms'])} --to {_iso(what_if['to_ms'])}"),
    ]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(value: object) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"
