"""The public surface of eventml.windows is deliberate (see tests/test_exported_members.py)."""

from __future__ import annotations

import doctest

import eventml.windows

PUBLIC = [
    "Aggregator",
    "ApproxDistinct",
    "Count",
    "EmitMode",
    "Emitted",
    "Hopping",
    "Last",
    "Late",
    "Max",
    "Mean",
    "Min",
    "Output",
    "Retracted",
    "Session",
    "Sliding",
    "StdDev",
    "StreamTime",
    "Sum",
    "TopK",
    "Tumbling",
    "Window",
    "WindowSpec",
    "WindowedAggregation",
    "WindowedAggregationLogic",
    "is_closed",
]


def test_public_members() -> None:
    assert sorted(eventml.windows.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert hasattr(eventml.windows, name)


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
