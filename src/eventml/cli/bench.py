"""`eventml bench log`, `bench state`, `bench pipeline`, `bench schema`, `bench http`, `bench views`
and `bench hotswap`: throughput, restore time, the fraud pipeline's throughput and latency, schema
validation cost, lookups over HTTP, view rebuilds (SQLite or PostgreSQL), model hot swap under
load (checked) and drift detection (false alarms, delays; `bench drift`), as JSON or a table."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, err_console, fail

bench_app = typer.Typer(help="Benchmarks that print JSON and a table.", no_args_is_help=True)
console = Console(highlight=False)

# every benchmark prints a table, or one JSON object, and can keep the JSON in a file
JsonOption = Annotated[bool, typer.Option("--json", help="Only one JSON object on stdout.")]
TempBrokerOption = Annotated[
    str | None, typer.Option("--broker", "-b", help="Log URL (default: a temporary embedded log).")
]
OutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="Also write the JSON object to this file.")
]


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
    json: JsonOption = False,
    out: OutOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Append throughput (batched) and fresh-group read throughput, eventml vs the raw client."""
    _at_least(
        ("--events", events, 1),
        ("--batch-size", batch_size, 1),
        ("--value-size", value_size, 0),
        ("--partitions", partitions, 1),
        ("--keys", keys, 0),
        ("--repeat", repeat, 1),
    )

    from eventml.bench import render_table, run_log_benchmark
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
    _emit(result, json=json, out=out, render=render_table)


@bench_app.command("state")
def state(
    keys: Annotated[
        int, typer.Option("--keys", "-n", help="Keys to write to one partition's store.")
    ] = 1_000_000,
    value_size: Annotated[int, typer.Option("--value-size", help="Value bytes per key.")] = 50,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Keys per transaction while writing.")
    ] = 100_000,
    json: JsonOption = False,
    out: OutOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """State restore: write N keys to one partition's store, time opening them again."""
    _at_least(
        ("--keys", keys, 1),
        ("--value-size", value_size, 0),
        ("--batch-size", batch_size, 1),
    )

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
    _emit(result, json=json, out=out, render=render_state_table)


@bench_app.command("pipeline")
def pipeline(
    events: Annotated[
        int, typer.Option("--events", "-n", help="Transactions timed through the pipeline.")
    ] = 200_000,
    workers: Annotated[
        int, typer.Option("--workers", "-w", help="Workers (more than 1: forked processes).")
    ] = 1,
    rate: Annotated[
        float, typer.Option("--rate", help="Offered events/s in the latency phase.")
    ] = 10_000,
    duration: Annotated[
        float, typer.Option("--duration", help="Seconds of the latency phase, after warm-up.")
    ] = 5.0,
    warmup: Annotated[
        float, typer.Option("--warmup", help="Seconds of latency-phase warm-up (not counted).")
    ] = 1.0,
    append_every_ms: Annotated[
        float,
        typer.Option("--append-every-ms", help="Latency phase: one append per this many ms."),
    ] = 10.0,
    guarantee: Annotated[
        str, typer.Option("--guarantee", help="exactly_once or at_least_once.")
    ] = "exactly_once",
    partitions: Annotated[
        int, typer.Option("--partitions", "-p", help="Input topic partitions.")
    ] = 4,
    velocity: Annotated[
        bool,
        typer.Option("--velocity/--no-velocity", help="Keep the one-minute velocity window."),
    ] = True,
    max_batch: Annotated[
        int | None,
        typer.Option("--max-batch", help="Records per batch at most (default: the engine's)."),
    ] = None,
    tap_every: Annotated[
        int,
        typer.Option(
            "--tap-every",
            help="Latency phase: also pass 1 event in N through to a tap topic (0: alerts only).",
        ),
    ] = 10,
    latency_worker: Annotated[
        str,
        typer.Option(
            "--latency-worker", help="process or thread (default: process; memory: thread)."
        ),
    ] = "",
    repeat: Annotated[
        int,
        typer.Option("--repeat", "-r", help="Throughput runs; rates report the best (or median)."),
    ] = 1,
    median: Annotated[
        bool, typer.Option("--median", help="Report the median of the runs instead of the best.")
    ] = False,
    no_baseline: Annotated[
        bool, typer.Option("--no-baseline", help="Skip the raw pass-through runs.")
    ] = False,
    no_latency: Annotated[bool, typer.Option("--no-latency", help="Skip the latency phase.")] = False,
    validate: Annotated[
        bool,
        typer.Option(
            "--validate",
            help="Also time the pipeline validating its input against the transactions' "
            "JSON Schema, in each run (target: >= 80 % of the plain pipeline's events/s).",
        ),
    ] = False,
    history_events: Annotated[
        int, typer.Option("--history-events", help="Transactions the model is trained on.")
    ] = 100_000,
    keep_topics: Annotated[
        bool, typer.Option("--keep-topics", help="Leave the benchmark's topics in the log.")
    ] = False,
    json: JsonOption = False,
    out: OutOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """The fraud pipeline's throughput and end-to-end latency, next to a raw pass-through."""
    _at_least(
        ("--events", events, 1),
        ("--workers", workers, 1),
        ("--partitions", partitions, 1),
        ("--repeat", repeat, 1),
        ("--history-events", history_events, 1),
        ("--max-batch", max_batch or 1, 1),
        ("--tap-every", tap_every, 0),
    )
    for name, number, positive in (
        ("--rate", rate, True),
        ("--duration", duration, True),
        ("--warmup", warmup, False),
        ("--append-every-ms", append_every_ms, False),
    ):
        if number < 0 or (positive and number == 0):
            fail(f"{name} must be {'> 0' if positive else '>= 0'}, got {number:g}")
    if guarantee not in ("exactly_once", "at_least_once"):
        fail(f"--guarantee must be exactly_once or at_least_once, got {guarantee!r}")
    if latency_worker not in ("", "process", "thread"):
        fail(f"--latency-worker must be process or thread, got {latency_worker!r}")

    from eventml.bench.pipeline import render_pipeline_table, run_pipeline_benchmark
    from eventml.log.registry import parse_broker_url

    parse_broker_url(broker)  # an unknown scheme is one line on stderr, before any work
    result = run_pipeline_benchmark(
        broker,
        events=events,
        workers=workers,
        guarantee="at_least_once" if guarantee == "at_least_once" else "exactly_once",
        partitions=partitions,
        velocity=velocity,
        max_batch=max_batch,
        rate=rate,
        duration_s=duration,
        warmup_s=warmup,
        append_every_ms=append_every_ms,
        tap_every=tap_every,
        latency=not no_latency,
        latency_worker=(
            "thread" if latency_worker == "thread" else "process" if latency_worker else None
        ),
        baseline=not no_baseline,
        validate=validate,
        repeat=repeat,
        statistic="median" if median else "best",
        history_events=history_events,
        keep_topics=keep_topics,
        progress=None if json else lambda msg: err_console.print(f"[dim]{msg}[/]"),
    )
    _emit(result, json=json, out=out, render=render_pipeline_table)


@bench_app.command("schema")
def schema(
    events: Annotated[
        int, typer.Option("--events", "-n", help="Events decoded and validated per measurement.")
    ] = 200_000,
    json: JsonOption = False,
    out: OutOption = None,
) -> None:
    """JSON Schema validation cost per event: orjson alone, compiled validator, jsonschema, Avro."""
    _at_least(("--events", events, 1))

    from eventml.bench.schema import render_schema_table, run

    _emit(run(events=events), json=json, out=out, render=render_schema_table)


@bench_app.command("features")
def features(
    events: Annotated[int, typer.Option("--events", "-n", help="Transactions in the log.")] = 1_000_000,
    rows: Annotated[int, typer.Option("--rows", help="Entity rows asked of historical retrieval.")] = 100_000,
    keys: Annotated[int, typer.Option("--keys", help="Entities in the online store.")] = 10_000,
    broker: TempBrokerOption = None,
    json: JsonOption = False,
    out: OutOption = None,
) -> None:
    """Feature store: point-in-time retrieval (time, peak RSS) and online lookup latency."""
    _at_least(("--events", events, 1), ("--rows", rows, 1), ("--keys", keys, 1))

    from eventml.bench.features import render_features_table, run

    _emit(run(broker, events=events, rows=rows, keys=keys), json=json, out=out,
          render=render_features_table)


@bench_app.command("http")
def http(
    events: Annotated[int, typer.Option("--events", "-n", help="Transactions the feature view folds.")] = 200_000,
    rate: Annotated[float, typer.Option("--rate", help="Requests per second, open loop.")] = 1000.0,
    duration: Annotated[float, typer.Option("--duration", help="Seconds counted, after warm-up.")] = 10.0,
    warmup: Annotated[float, typer.Option("--warmup", help="Seconds of warm-up (not counted).")] = 1.0,
    connections: Annotated[
        int, typer.Option("--connections", "-c", help="Keep-alive connections of the load generator.")
    ] = 16,
    views: Annotated[
        bool, typer.Option("--views/--no-views", help="Also time view row lookups over HTTP.")
    ] = True,
    json: JsonOption = False,
    out: OutOption = None,
) -> None:
    """Online feature lookups through `eventml serve` at a fixed rate: p50/p99 vs in-process."""
    _at_least(("--events", events, 1), ("--connections", connections, 1), ("--warmup", warmup, 0))
    for name, number in (("--rate", rate), ("--duration", duration)):
        if number <= 0:
            fail(f"{name} must be > 0, got {number:g}")

    from eventml.bench.http import render_http_table, run

    result = run(events=events, rate=rate, duration_s=duration, warmup_s=warmup,
                 connections=connections, views=views,
                 progress=None if json else lambda msg: err_console.print(f"[dim]{msg}[/]"))
    _emit(result, json=json, out=out, render=render_http_table)


@bench_app.command("ingest")
def ingest(
    events: Annotated[int, typer.Option("--events", "-n", help="Events sent in batches.")] = 200_000,
    rate: Annotated[
        float, typer.Option("--rate", help="Single-event requests per second, open loop.")
    ] = 1000.0,
    duration: Annotated[float, typer.Option("--duration", help="Seconds counted, after warm-up.")] = 10.0,
    warmup: Annotated[float, typer.Option("--warmup", help="Seconds of warm-up (not counted).")] = 1.0,
    batch: Annotated[int, typer.Option("--batch", help="Events per batched request (server limit 1000).")] = 500,
    connections: Annotated[
        int, typer.Option("--connections", "-c", help="Keep-alive connections, single events.")
    ] = 16,
    batch_connections: Annotated[
        int, typer.Option("--batch-connections", help="Keep-alive connections, batches (closed loop).")
    ] = 4,
    durability: Annotated[
        str, typer.Option("--durability", help="The temporary embedded log's: fsync (acknowledged = "
                                               "on disk, the default) or fast (no fsync per commit).")
    ] = "fsync",
    broker: TempBrokerOption = None,
    json: JsonOption = False,
    out: OutOption = None,
) -> None:
    """HTTP ingest through `eventml serve --auth`: single-event p99 at a fixed rate, batched
    events/s, every event counted in the log, against the log's own append in process."""
    _at_least(("--events", events, 1), ("--batch", batch, 1), ("--connections", connections, 1),
              ("--batch-connections", batch_connections, 1), ("--warmup", warmup, 0))
    if batch > 1000:
        fail(f"--batch must be <= 1000 (the server's events per request), got {batch}")
    if durability not in ("fsync", "fast"):
        fail(f"--durability must be fsync or fast, got {durability!r}")
    if broker is not None and durability != "fsync":
        fail("--durability is the temporary embedded log's: with --broker, put ?durability=fast in its URL")
    for name, number in (("--rate", rate), ("--duration", duration)):
        if number <= 0:
            fail(f"{name} must be > 0, got {number:g}")
    if broker is not None:
        from eventml.log.registry import parse_broker_url

        parse_broker_url(broker)  # an unknown scheme is one line on stderr, before any work
        if broker.startswith("memory:"):
            fail("--broker: the server is another process: give embedded://PATH or kafka://HOST:PORT")

    from eventml.bench.ingest import render_ingest_table, run

    result = run(events=events, rate=rate, duration_s=duration, warmup_s=warmup, batch=batch,
                 connections=connections, batch_connections=batch_connections, broker=broker,
                 durability=durability, progress=None if json else lambda msg: err_console.print(f"[dim]{msg}[/]"))
    _emit(result, json=json, out=out, render=render_ingest_table)
    if not result["single"]["counts"]["ok"] or not result["batched"]["counts"]["ok"]:
        raise typer.Exit(1)


@bench_app.command("views")
def views(
    events: Annotated[int, typer.Option("--events", "-n", help="Events replayed.")] = 1_000_000,
    keys: Annotated[int, typer.Option("--keys", help="Distinct customers (view rows).")] = 10_000,
    partitions: Annotated[int, typer.Option("--partitions", "-p", help="Topic partitions.")] = 4,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Events per micro-batch.")] = 10_000,
    db: Annotated[
        str | None,
        typer.Option("--db", help="A postgresql:// URL to rebuild into (default: a SQLite file)."),
    ] = None,
    broker: TempBrokerOption = None,
    json: JsonOption = False,
    out: OutOption = None,
) -> None:
    """Rebuild throughput of a view (read model) over a topic, into SQLite or PostgreSQL."""
    _at_least(("--events", events, 1), ("--keys", keys, 1), ("--partitions", partitions, 1),
              ("--max-batch", max_batch, 1))

    from eventml.bench.views import render_views_table, run

    result = run(events, url=broker, keys=keys, partitions=partitions, max_batch=max_batch, db=db,
                 progress=None if json else lambda msg: err_console.print(f"[dim]{msg}[/]"))
    _emit(result, json=json, out=out, render=render_views_table)


@bench_app.command("inference")
def inference(
    events: Annotated[int, typer.Option("--events", "-n", help="Events scored in the pipeline.")] = 400_000,
    features: Annotated[int, typer.Option("--features", help="Numeric features per event.")] = 10,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Events per micro-batch at most.")] = 5_000,
    per_event_calls: Annotated[
        int, typer.Option("--per-event-calls", help="1-row predict_proba calls timed per model.")
    ] = 2_000,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="logreg and/or hgb (default: both).")
    ] = None,
    hgb_trees: Annotated[int, typer.Option("--hgb-trees", help="Gradient-boosted trees.")] = 100,
    hgb_leaves: Annotated[int, typer.Option("--hgb-leaves", help="Leaves per tree at most.")] = 31,
    repeat: Annotated[int, typer.Option("--repeat", help="Rounds; figures are medians.")] = 1,
    workers: Annotated[
        int, typer.Option("--workers", help="Also run N worker processes on N partitions.")
    ] = 1,
    live_rate: Annotated[
        int, typer.Option("--live-rate", help="Events/s for the caught-up run (0: skip it).")
    ] = 20_000,
    profile: Annotated[
        bool, typer.Option("--profile", help="cProfile the pipelines: where their time goes.")
    ] = False,
    broker: TempBrokerOption = None,
    json: JsonOption = False,
    out: OutOption = None,
) -> None:
    """Batched model scoring in the pipeline vs the raw batched call vs per-event calls."""
    _at_least(("--events", events, 1), ("--features", features, 1), ("--max-batch", max_batch, 1),
              ("--per-event-calls", per_event_calls, 1), ("--hgb-trees", hgb_trees, 1),
              ("--hgb-leaves", hgb_leaves, 2), ("--repeat", repeat, 1), ("--workers", workers, 1),
              ("--live-rate", live_rate, 0))
    models = tuple(model or ("logreg", "hgb"))
    for m in models:
        if m not in ("logreg", "hgb"):
            fail(f"--model must be logreg or hgb, got {m!r}")
    if workers > 1 and broker is not None and broker.startswith("memory:"):
        fail("--workers > 1 needs a log shared by processes: embedded:// or kafka://, not memory://")

    from eventml.bench.inference import render_inference_table, run

    result = run(broker, events=events, features=features, max_batch=max_batch,
                 per_event_calls=per_event_calls, models=models, hgb_trees=hgb_trees,
                 hgb_leaves=hgb_leaves, repeat=repeat, workers=workers, live_rate=live_rate,
                 profile=profile,
                 progress=None if json else lambda msg: err_console.print(f"[dim]{msg}[/]"))
    _emit(result, json=json, out=out, render=render_inference_table)


@bench_app.command("hotswap")
def hotswap(
    events: Annotated[int, typer.Option("--events", "-n", help="Events scored.")] = 1_000_000,
    flips: Annotated[int, typer.Option("--flips", help="Alias moves, spread over the run.")] = 10,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Worker processes.")] = 4,
    partitions: Annotated[int, typer.Option("--partitions", "-p", help="Input partitions.")] = 4,
    max_batch: Annotated[int, typer.Option("--max-batch", help="Events per micro-batch at most.")] = 5_000,
    shadow: Annotated[bool, typer.Option("--shadow", help="Also score with a shadow model.")] = False,
    watch_every_ms: Annotated[
        float, typer.Option("--watch-every-ms", help="How often workers look for alias changes.")
    ] = 100,
    guarantee: Annotated[
        str, typer.Option("--guarantee", help="exactly_once or at_least_once.")
    ] = "exactly_once",
    broker: TempBrokerOption = None,
    json: JsonOption = False,
    out: OutOption = None,
) -> None:
    """Flip a model alias mid-stream across worker processes; check every event was scored
    once, by a version the alias named, in order (the prediction log against the flips)."""
    _at_least(("--events", events, 1), ("--flips", flips, 0), ("--workers", workers, 1),
              ("--partitions", partitions, 1), ("--max-batch", max_batch, 1),
              ("--watch-every-ms", watch_every_ms, 0))
    if guarantee not in ("exactly_once", "at_least_once"):
        fail(f"--guarantee must be exactly_once or at_least_once, got {guarantee!r}")

    from eventml.bench.hotswap import render_hotswap_table, run
    from eventml.log.registry import parse_broker_url

    if broker is not None:
        parse_broker_url(broker)  # an unknown scheme is one line on stderr, before any work
    result = run(broker, events=events, flips=flips, workers=workers, partitions=partitions,
                 max_batch=max_batch, shadow=shadow, watch_every_ms=watch_every_ms,
                 guarantee=guarantee,
                 progress=None if json else lambda msg: err_console.print(f"[dim]{msg}[/]"))
    _emit(result, json=json, out=out, render=render_hotswap_table)
    if not result["ok"]:
        raise typer.Exit(1)


@bench_app.command("drift")
def drift(
    events: Annotated[
        int, typer.Option("--events", "-n", help="Stationary events (and outcomes) counted for false alarms.")
    ] = 1_000_000,
    seeds: Annotated[int, typer.Option("--seeds", help="Streams per injected drift.")] = 10,
    stream_events: Annotated[
        int, typer.Option("--stream-events", help="Events through the engine (pipeline run).")
    ] = 40_000,
    broker: TempBrokerOption = None,
    json: JsonOption = False,
    out: OutOption = None,
) -> None:
    """Drift detectors: false alarms on stationary data against the configured rate, delay
    after injected drifts, error-rate drift (Fisher, ADWIN), and the stream operator against
    the pure core. Exits 1 if a check is missed."""
    _at_least(("--events", events, 50_000), ("--seeds", seeds, 1),
              ("--stream-events", stream_events, 10_000))

    from eventml.bench.drift import render_drift_table, run
    from eventml.log.registry import parse_broker_url

    if broker is not None:
        parse_broker_url(broker)  # an unknown scheme is one line on stderr, before any work
    result = run(events=events, seeds=seeds, stream_events=stream_events, broker=broker,
                 progress=None if json else lambda msg: err_console.print(f"[dim]{msg}[/]"))
    _emit(result, json=json, out=out, render=render_drift_table)
    if not result["targets"]["met"]:
        raise typer.Exit(1)


def _at_least(*checks: tuple[str, float, float]) -> None:
    """One line and exit 2 for the first option below its minimum."""
    for name, value, least in checks:
        if value < least:
            fail(f"{name} must be >= {least}, got {value}")


def _emit(
    result: Mapping[str, Any],
    *,
    json: bool,
    out: Path | None,
    render: Callable[[Mapping[str, Any], Console], None],
) -> None:
    """The result as JSON (stdout and/or ``out``) or as a table."""
    from eventml.bench import to_json

    if out is not None:
        out.write_text(to_json(result, indent=True) + "\n")
    if json:
        typer.echo(to_json(result))
    else:
        render(result, console)
