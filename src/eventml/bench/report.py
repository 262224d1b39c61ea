"""Benchmark results as JSON (one object) and as a rich table: eventml vs baseline, ratio, target."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table


def to_json(result: Mapping[str, Any], *, indent: bool = False) -> str:
    """The result as one JSON object (infinite rates, from zero-length timings, become null)."""
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(_finite(result), option=option).decode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


_ROWS = (  # (label, metric key, ratio key, format)
    ("append events/s", "append_eps", "append", "{:,.0f}"),
    ("append MB/s", "append_mb_s", None, "{:,.1f}"),
    ("read events/s", "read_eps", "read", "{:,.0f}"),
    ("read MB/s", "read_mb_s", None, "{:,.1f}"),
    ("read: first poll to data (s)", "read_startup_s", None, "{:.3f}"),
    ("read events/s after 1st poll", "read_steady_eps", "read_steady", "{:,.0f}"),
)
_VERDICTS = {True: "[green]ok[/]", False: "[red]MISSED[/]", None: "not judged (no baseline)"}
_TARGET_LABELS = {
    "append_eps": ("append events/s", "{:,.0f}"),
    "read_eps": ("read events/s", "{:,.0f}"),
    "append_ratio": ("append ratio", "{:.2f}"),
    "read_ratio": ("read ratio", "{:.2f}"),
}


def render_table(result: Mapping[str, Any], console: Console) -> None:
    """Print the comparison table, then each target with its verdict."""
    base = result.get("baseline")
    ratio = result.get("ratio") or {}
    settings = ", ".join(f"{k}={v}" for k, v in (result.get("settings") or {}).items())
    title = (
        f"{result['broker']}: {result['events']:,} events x {result['value_bytes']} B, "
        f"batch {result['batch_size']:,}, {result['partitions']} partition(s), "
        f"{result['statistic']} of {result['repeat']}"
    )
    table = Table(title=title, caption=settings or None)
    table.add_column("metric")
    table.add_column("eventml", justify="right")
    table.add_column(f"raw {_baseline_name(result['backend'])}", justify="right")
    table.add_column("ratio", justify="right")
    for label, key, ratio_key, fmt in _ROWS:
        ours = fmt.format(result[key])
        theirs = fmt.format(base[key]) if base else "-"
        r = f"{ratio[ratio_key]:.2f}x" if ratio_key and ratio.get(ratio_key) is not None else ""
        table.add_row(label, ours, theirs, r)
    console.print(table)
    targets = result.get("targets") or {}
    checks: Mapping[str, Any] = targets.get("checks") or {}
    if not checks:
        console.print("targets: none for this backend")
        return
    for name, c in checks.items():
        label, fmt = _TARGET_LABELS.get(name, (name, "{}"))
        value = "n/a" if c["value"] is None else fmt.format(c["value"])
        verdict = _VERDICTS[c["met"]]
        console.print(f"target {label} >= {fmt.format(c['min'])}: {value} {verdict}")
    print_overall(console, targets.get("met"))


def print_overall(console: Console, met: bool | None) -> None:
    """The one-line verdict over all targets (``None``: some could not be judged)."""
    verdict = "[green]all met[/]" if met else "not all judged" if met is None else "[red]missed[/]"
    console.print(f"targets: {verdict}")


def _baseline_name(backend: str) -> str:
    return {"embedded": "sqlite3", "kafka": "confluent-kafka"}.get(backend, "baseline")
