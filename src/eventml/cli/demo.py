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
LIFECYCLE_EVENTS = 85_000  # 17 simulated days at 2,000 cards: the drift, its labels, the recovery


@demo_app.callback()
def _scenarios() -> None:
    """Runnable scenarios (a callback keeps `fraud` a sub-command while it is the only one)."""


@demo_app.command("fraud")
def fraud(
    events: Annotated[
        int | None,
        typer.Option("--events", "-n", min=1,
                     help="Transactions to generate and score (default: 85,000, 17 simulated "
                          "days, with the lifecycle; 20,000 without)."),
    ] = None,
    lifecycle: Annotated[
        bool,
        typer.Option("--lifecycle/--no-lifecycle",
                     help="The model lifecycle: fraudsters change tactics mid-stream, chargebacks "
                          "arrive days later, drift is detected, a challenger retrained, "
                          "shadow-scored and promoted."),
    ] = True,
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
    fraud-alerts; on the stream engine, exactly-once. With the lifecycle (the default):
    the model is fraud@champion in the registry, shadowed by fraud@challenger, every
    prediction logged; fraudsters change tactics on day 5, chargebacks arrive during
    the stream, the champion's miss rate raises a drift alarm, a challenger is retrained
    from the log and promoted on evidence. Without it: per-card velocity windows,
    chargebacks after the run, a what-if replay of a candidate model. Both: the
    card_risk read model."""
    from eventml.demos.fraud import MissingDependency, run_fraud_demo

    if events is None:
        events = LIFECYCLE_EVENTS if lifecycle else 20_000
    if lifecycle and rate is not None:
        fail("--rate paces the plain pipeline: the lifecycle appends its scenario step by "
             "step; use --no-lifecycle --rate N")
    try:
        with connect(broker) as log, _progress(events) as progress:
            result = run_fraud_demo(
                log, events=events, seed=seed, progress=progress, rate_eps=rate,
                guarantee="at_least_once" if at_least_once else "exactly_once",
                validate=not no_validate,
                features=features,
                what_if=not no_what_if and not lifecycle,
                lifecycle=lifecycle,
                velocity_topic=None if lifecycle else "card-velocity",
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
        ("precision", f"{result['precision']:.3f}"),
        ("recall", f"{result['recall']:.3f}"),
        *((f"  recall: {name}", f"{value:.3f}") for name, value in by_pattern.items()),
        ("throughput", f"{result['throughput_eps']:,.0f} events/s ({result['guarantee']})"
                       + (", scoring and the lifecycle's pipelines, step by step"
                          if result.get("lifecycle") else "")),
    ]
    if not result.get("lifecycle"):
        rows[3:3] = [("velocity alerts",
                      f"{result['velocity_alerts']:,} (cards used 5+ times in a minute)")]
        rows.append((
            "latency p50 / p99",
            f"{_ms(latency['p50'])} / {_ms(latency['p99'])} "
            + (
                f"at {result['offered_rate_eps']:,.0f} events/s offered"
                if result.get("offered_rate_eps")
                else "(unthrottled: includes backlog; try --rate 5000)"
            ),
        ))
    rows += [
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
    life = result.get("lifecycle")
    if isinstance(life, dict):
        rows.extend(_lifecycle_rows(life))
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


def _lifecycle_rows(life: dict[str, Any]) -> list[tuple[str, str]]:
    sc, drift, promo, periods = life["scenario"], life["drift"], life["promotion"], life["periods"]
    delay = sc["chargeback_delay_days"]
    rows = [
        ("lifecycle", f"{sc['events']:,} transactions over {sc['days']:.1f} days, {sc['cards']:,} cards; "
                      f"on {sc['onset']['time']} (transaction {sc['onset']['event_index']:,}) "
                      f"fraudsters switch to {sc['new_tactic']}"),
        ("  tactics", f"before: {sc['mix_before']}; after: {sc['mix_after']}"),
        ("  chargebacks", f"{life['labels']['chargebacks_in_run']:,} during the stream, "
                          f"{delay['min']:g}-{delay['max']:g} days after the fraud (median "
                          f"{delay['median']:g}); no report in {life['labels']['label_horizon_days']:g} "
                          f"days = genuine ({life['labels']['labelled_predictions']:,} labelled predictions)"),
    ]
    if drift["fired"]:
        rows.append(("  drift", f"{drift['time']}: {drift['events_after_onset']:,} transactions "
                                f"({drift['days_after_onset']:g} days) after the change; miss rate "
                                f"{drift['value']:.2f} vs {drift['reference_rate']:.2f} before "
                                f"(alarm at >= {drift['threshold']:.2f}, p={drift['p_value']:.2g}); "
                                f"{drift['alarms_before_onset']} alarms before it; stated: within "
                                f"{drift['within_events']:,} transactions"))
    else:
        rows.append(("  drift", f"no alarm after the change ({drift['alarms_before_onset']} before it)"))
    rows.append(("  detector", drift["detector"]))
    for r in life["retraining"]:
        if "error" in r:
            rows.append(("  retraining", f"at {r['cutoff']}: failed: {r['error']}"))
            continue
        h, c = r["holdout"], r.get("champion_on_holdout") or {}
        rows.append(("  retraining", f"v{r['version']}, asked for by the alarm, trained at {r['cutoff']} "
                                     f"on the log as it was: {r['training']['rows']:,} transactions at "
                                     f"least {life['labels']['label_horizon_days']:g} days old "
                                     f"({r['training']['positives']:,} reported fraud); holdout recall "
                                     f"{h['recall_at_threshold']:.3f} vs champion "
                                     f"{c.get('recall_at_threshold') or 0:.3f}, in {r['seconds']:.1f} s"))
    if promo["promoted"]:
        rows.append(("  promotion", f"v{promo['version']} replaced v{promo['replaced']} at {promo['time']} "
                                    f"(from transaction {promo['event_index']:,}): log loss "
                                    f"{promo['log_loss']['challenger']:.4f} vs {promo['log_loss']['champion']:.4f}, "
                                    f"p={promo['p_value']:.2g} on {promo['events']:,} labelled events "
                                    f"({_looks(promo['looks'])})"))
    else:
        rows.append(("  promotion", f"none ({_looks(promo['looks'])})"))
    names = {"pre_drift": "before the change", "post_drift_champion": "after it, champion",
             "challenger_shadow": "  challenger (shadow)", "after_promotion": "after promotion"}
    for key, label in names.items():
        p = periods.get(key)
        if p is None or not p["fraud"]:
            continue
        rows.append((f"  {label}", f"recall {p['recall']:.3f}, precision "
                                   f"{_num(p['precision'])} ({p['fraud']:,} fraud, "
                                   f"{p['transactions']:,} transactions)"))
    rows.append(("  recovered", life["recovery"]["statement"]))
    return rows


def _looks(looks: list[Any]) -> str:
    return f"{len(looks)} look{'' if len(looks) == 1 else 's'} at the evidence"


def _num(value: object) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(value: object) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"
