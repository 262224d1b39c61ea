"""`eventml run` and `eventml describe`: run an app's workers, print its topology."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

import typer

from eventml.cli._common import fail
from eventml.engine import WorkerFailed, load_app, run_app
from eventml.engine.app import App

if TYPE_CHECKING:
    from eventml.observe.endpoint import MetricsEndpoint

AppArg = Annotated[str, typer.Argument(help="The app as module:attribute, e.g. pipelines.fraud:app")]


def _load(spec: str) -> App:
    try:
        return load_app(spec)
    except ValueError as e:
        fail(str(e))


def run(
    app_spec: AppArg,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Worker processes.")] = 1,
    broker: Annotated[
        str | None, typer.Option("--broker", "-b", help="Log URL (default: the app's, or $EVENTML_BROKER).")
    ] = None,
    guarantee: Annotated[
        str | None,
        typer.Option(help="exactly_once or at_least_once (default: the app's setting)."),
    ] = None,
    instance: Annotated[
        str | None,
        typer.Option(help="Names this run's workers (default: the host name); give each "
                          "`eventml run` of one app on one host its own."),
    ] = None,
    idle_exit: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without input (single worker).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve each worker's Prometheus metrics on http://HOST:PORT/metrics "
                          "(worker i on PORT+i; 0: any free port). Needs prometheus-client."),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="The address --metrics-port listens on.")] = "127.0.0.1",
    log_format: Annotated[
        str, typer.Option(help="text (warnings and errors, plain) or json (info and up, one "
                               "object per line on stderr).")
    ] = "text",
) -> None:
    """Run the app's workers in one consumer group until interrupted (Ctrl-C / SIGTERM)."""
    _logs_and_traces(log_format)
    app = _load(app_spec)
    if guarantee is not None:
        if guarantee not in ("exactly_once", "at_least_once"):
            fail(f"--guarantee must be exactly_once or at_least_once, got {guarantee!r}")
        g: Literal["exactly_once", "at_least_once"] = (
            "exactly_once" if guarantee == "exactly_once" else "at_least_once")
        app.configure(guarantee=g)
    if broker is not None:
        app.configure(broker=broker)
    if instance is not None:
        app.configure(instance=instance)
    if idle_exit is not None and workers > 1:
        fail("--idle-exit works with one worker only")
    endpoints = None if metrics_port is None else _metrics(workers, metrics_port, metrics_host)
    try:
        if idle_exit is None:
            run_app(app, workers=workers, metrics=endpoints)
        else:
            run_app(app, workers=workers, metrics=endpoints, idle_timeout_s=idle_exit)
    except WorkerFailed as e:
        fail(f"the worker stopped: {e}", 1)
    finally:
        for endpoint in endpoints or ():
            endpoint.close()


def _metrics(workers: int, port: int, host: str) -> list[MetricsEndpoint]:
    """The workers' metrics endpoints, bound (their URLs printed), or a one-line failure."""
    try:
        from eventml.observe.endpoint import metrics_endpoints
    except ImportError:
        fail("--metrics-port needs prometheus-client: pip install 'eventml[serve]'")
    try:
        endpoints = metrics_endpoints(workers, port, host)
    except ValueError as e:
        fail(str(e))
    except OSError as e:
        fail(f"cannot serve metrics on {host}:{port}: {e.strerror or e}")
    for i, endpoint in enumerate(endpoints):
        typer.echo(f"metrics of worker {i}: {endpoint.url}")
    return endpoints


def _logs_and_traces(log_format: str) -> None:
    """JSON logs if asked; spans exported as ``$OTEL_TRACES_EXPORTER`` says, if set."""
    if log_format not in ("json", "text"):
        fail(f"--log-format must be json or text, got {log_format!r}")
    if log_format == "json":
        from eventml.observe.logging import setup

        setup("json")
    from eventml.observe.tracing import configure_from_env

    try:
        configure_from_env()
    except (ImportError, ValueError) as e:
        fail(f"tracing: {e}")


def describe(app_spec: AppArg) -> None:
    """Print the app's topology: its sources, operators, state stores and outputs."""
    app = _load(app_spec)
    typer.echo(app.topology().describe())
    s = app.settings
    typer.echo(f"broker {app.broker}  guarantee {s.guarantee}  batch {s.min_batch}..{s.max_batch}"
               f"  max_wait {s.max_wait_ms} ms")
