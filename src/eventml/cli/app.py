"""The `eventml` command: its sub-commands and the one-line error policy."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.metadata import version
from typing import Annotated

import typer
from typer._click.exceptions import ClickException, UsageError

from eventml.cli.consume import consume, tail
from eventml.cli.dlq import dlq_app
from eventml.cli.produce import produce
from eventml.cli.topics import topics_app
from eventml.log import LogError
from eventml.log.registry import ENV_VAR

app = typer.Typer(
    name="eventml",
    help="Event-driven machine learning on a durable log (embedded SQLite or Apache Kafka).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(topics_app, name="topics")
app.add_typer(dlq_app, name="dlq")
app.command("produce")(produce)
app.command("consume")(consume)
app.command("tail")(tail)


def _add_optional_groups() -> None:
    """Sub-command groups that live in their own modules."""
    from eventml.cli.bench import bench_app
    from eventml.cli.demo import demo_app
    from eventml.cli.run import describe, run
    from eventml.cli.serve import serve

    app.command("run")(run)
    app.command("describe")(describe)
    app.command("serve")(serve)

    app.add_typer(demo_app, name="demo", help="Runnable scenarios (fraud detection).")
    app.add_typer(bench_app, name="bench", help="Benchmarks that print JSON and a table.")

    from eventml.cli.schemas import schemas_app

    app.add_typer(schemas_app, name="schemas")

    from eventml.cli.views import views_app

    app.add_typer(views_app, name="views")

    from eventml.cli.features import features_app

    app.add_typer(features_app, name="features")

    from eventml.cli.replay import diff_command, replay_command

    app.command("replay")(replay_command)
    app.command("diff")(diff_command)

    from eventml.cli.models import models_app

    app.add_typer(models_app, name="models")

    from eventml.cli.keys import keys_app

    app.add_typer(keys_app, name="keys")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"eventml {version('eventml')}")
        raise typer.Exit()


@app.callback()
def _root(
    broker: Annotated[
        str | None,
        typer.Option("--broker", "-b", help="Log URL for every sub-command (or $EVENTML_BROKER)."),
    ] = None,
    _: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Event-driven machine learning on a durable log (embedded SQLite or Apache Kafka)."""
    if broker is not None:  # sub-commands read it through their --broker envvar
        os.environ[ENV_VAR] = broker


_add_optional_groups()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; every failure is one line on stderr and a non-zero exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = typer.main.get_command(app)
    try:
        # without standalone mode, typer returns the code of a typer.Exit instead of raising it
        result = command.main(args=args, prog_name="eventml", standalone_mode=False)
        if isinstance(result, int):
            return result
    except typer.Exit as e:
        return e.exit_code
    except UsageError as e:
        where = e.ctx.command_path if e.ctx else "eventml"
        if not e.format_message():  # a group called without a command: its help was shown
            return 2
        typer.echo(f"{where}: error: {e.format_message()} (see '{where} --help')", err=True)
        return 2
    except ClickException as e:
        typer.echo(f"eventml: error: {e.format_message()}", err=True)
        return e.exit_code
    except typer.Abort:
        typer.echo("eventml: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        return 130
    except LogError as e:
        typer.echo(f"eventml: error: {e}", err=True)
        return 2
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug or an unexpected environment: one line, traceback on demand
        if os.environ.get("EVENTML_DEBUG"):
            raise
        typer.echo(
            f"eventml: internal error: {type(e).__name__}: {e} "
            "(set EVENTML_DEBUG=1 to see the traceback)",
            err=True,
        )
        return 1
    return 0
