"""`eventml run` and `eventml describe`: run an app's workers, print its topology."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from eventml.cli._common import fail
from eventml.engine import WorkerFailed, load_app, run_app
from eventml.engine.app import App

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
) -> None:
    """Run the app's workers in one consumer group until interrupted (Ctrl-C / SIGTERM)."""
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
    try:
        if idle_exit is None:
            run_app(app, workers=workers)
        else:
            run_app(app, workers=workers, idle_timeout_s=idle_exit)
    except WorkerFailed as e:
        fail(f"the worker stopped: {e}", 1)


def describe(app_spec: AppArg) -> None:
    """Print the app's topology: its sources, operators, state stores and outputs."""
    app = _load(app_spec)
    typer.echo(app.topology().describe())
    s = app.settings
    typer.echo(f"broker {app.broker}  guarantee {s.guarantee}  batch {s.min_batch}..{s.max_batch}"
               f"  max_wait {s.max_wait_ms} ms")
