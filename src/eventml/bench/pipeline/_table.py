"""The pipeline benchmark's result as rich tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from eventml.bench.report import print_overall

# -- the table -----------------------------------------------------------------------------------

_SIDE_LABELS = {
    "pipeline": "fraud pipeline",
    "validated": "validated pipeline",
    "log": "log pass-through",
    "confluent_kafka": "raw confluent-kafka",
}
_VERDICTS = {True: "[green]ok[/]", False: "[red]MISSED[/]", None: "not judged"}


def render_pipeline_table(result: Mapping[str, Any], console: Console) -> None:
    """Throughput per side with ratios, the latency percentiles, then the targets."""
    workers = result["workers"]
    title = (
        f"{result['broker']}: fraud pipeline ({result['guarantee']}), {result['events']:,} events, "
        f"{result['partitions']} partitions, {workers} worker{'s' if workers > 1 else ''}, "
        f"{result['statistic']} of {result['repeat']}"
    )
    caption = (
        f"steady: after the first commit; ratio: pipeline ÷ side. Velocity window "
        f"{'on' if result['velocity'] else 'off'}, batches of up to {result['max_batch']:,}."
    )
    table = Table(title=title, caption=caption)
    table.add_column("side")
    for column in ("events/s", "steady/s", "seconds", "startup s", "ratio"):
        table.add_column(column, justify="right")
    ratio = result.get("ratio") or {}
    validation = result.get("validation")
    sides = [("pipeline", result["pipeline"]), *(result.get("baselines") or {}).items()]
    if validation:
        sides.insert(1, ("validated", validation["validated"]))
    for name, side in sides:
        r = ratio.get(name)
        table.add_row(
            _SIDE_LABELS.get(name, name),
            f"{side['eps']:,.0f}",
            "-" if side["steady_eps"] is None else f"{side['steady_eps']:,.0f}",
            f"{side['seconds']:.3f}",
            f"{side['startup_s']:.3f}",
            "" if r is None else f"{r:.2f}",
        )
    console.print(table)
    p = result["pipeline"]
    velocity = "" if p.get("velocity_alerts") is None else f", {p['velocity_alerts']:,} velocity"
    console.print(f"pipeline outputs: {p['alerts']:,} alerts{velocity}")
    if validation:
        _print_validation(validation, console)
    latency = result.get("latency")
    if latency:
        lt = Table(
            title=(
                f"end-to-end latency at {latency['offered_eps']:,.0f} events/s offered "
                f"({latency['achieved_eps'] or 0:,.0f} achieved), {latency['duration_s']:g} s "
                f"after {latency['warmup_s']:g} s warm-up, worker in a {latency['worker']}"
            ),
            caption="appended (acknowledged) → visible to a read_committed reader",
        )
        lt.add_column("events")
        for col in ("count", "p50 ms", "p95 ms", "p99 ms", "max ms"):
            lt.add_column(col, justify="right")
        for name in ("tap", "alerts"):
            e = latency[name]
            if e is None:
                continue
            lt.add_row(
                name,
                f"{e['count']:,}",
                *(_ms(e[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
            )
        a = latency["append"]
        lt.add_row(
            f"append call ({a['calls']:,} calls)",
            "",
            *(_ms(a[k]) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        )
        console.print(lt)
    checks: Mapping[str, Any] = (result.get("targets") or {}).get("checks") or {}
    if not checks:
        console.print("targets: none judged for this backend and guarantee")
        return
    for name, c in checks.items():
        bound = f">= {c['min']:,}" if "min" in c else f"<= {c['max']:g}"
        value = "n/a" if c["value"] is None else f"{c['value']:,}"
        console.print(f"target {name} {bound}: {value} {_VERDICTS[c['met']]}")
    print_overall(console, result["targets"]["met"])


def _print_validation(v: Mapping[str, Any], console: Console) -> None:
    steady = "" if v["steady_ratio"] is None else f" (steady {v['steady_ratio']:.2f})"
    runs = ", ".join(f"{r:.2f}" for r in v["run_ratios"])
    console.print(
        f"validation ({v['contract']}): validated {v['validated_eps']:,.0f} vs plain "
        f"{v['plain_eps']:,.0f} events/s, ratio {v['ratio']:.2f}{steady} (runs: {runs}), target >= "
        f"{v['target']:g} {_VERDICTS[v['met']]}; dead letters {v['dead_letters']:,}"
        + ("" if v["dead_letters"] == 0 else " [red](expected 0)[/]")
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"
