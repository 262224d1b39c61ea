"""eventml.windows: its example runs and it stays pure (its names are locked in
tests/test_exported_members.py)."""

from __future__ import annotations

import doctest

import eventml.windows


def test_module_docstring_example_runs() -> None:
    result = doctest.testmod(eventml.windows)
    assert result.attempted > 0 and result.failed == 0


def test_windows_is_pure() -> None:
    """No I/O or wall-clock imports in the package."""
    import pathlib

    banned = ("import time", "import os", "import socket", "sqlite3", "datetime", "open(")
    for path in pathlib.Path(eventml.windows.__file__).parent.glob("*.py"):
        source = path.read_text()
        assert not [b for b in banned if b in source], path.name
