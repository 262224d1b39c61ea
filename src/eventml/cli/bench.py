"""`eventml bench ...` (filled in by the benchmark module)."""

from __future__ import annotations

import typer

bench_app = typer.Typer(no_args_is_help=True)
