"""Shared CLI pieces: the --broker option, opening the log, one-line errors."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from rich.console import Console

from eventml.log import Log, open_log
from eventml.log.registry import DEFAULT_URL, ENV_VAR

err_console = Console(stderr=True, highlight=False)

BrokerOption = Annotated[
    str,
    typer.Option(
        "--broker",
        "-b",
        envvar=ENV_VAR,
        help="Log URL: embedded://PATH, kafka://HOST:PORT or memory://",
        show_default=True,
    ),
]
DEFAULT_BROKER = DEFAULT_URL


def fail(message: str, code: int = 2) -> NoReturn:
    """Print one line on stderr and exit non-zero (no traceback)."""
    typer.echo(f"eventml: error: {message}", err=True)
    raise typer.Exit(code)


def connect(broker: str) -> Log:
    """Open the log or fail with one line (errors from the backend propagate to main)."""
    return open_log(broker)
