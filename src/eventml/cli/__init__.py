"""The ``eventml`` command line."""

from __future__ import annotations

import sys


def main() -> None:
    from eventml.cli.app import main as run

    sys.exit(run())


__all__ = ["main"]
