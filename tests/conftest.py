"""Suite-wide guard: tests keep their data in tmp_path, never in the repo's ./.eventml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / ".eventml"


def _snapshot(root: Path) -> dict[str, int]:
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="session", autouse=True)
def _no_writes_to_the_default_data_dir() -> Iterator[None]:
    """A test that opens the default log or view files (``embedded://./.eventml``) would mix
    its data into a developer's demo data and into later runs: fail the session if one did."""
    before = _snapshot(DEFAULT_DATA_DIR)
    yield
    after = _snapshot(DEFAULT_DATA_DIR)
    changed = sorted(k for k in after if before.get(k) != after[k])
    if changed:
        pytest.fail(f"tests wrote to {DEFAULT_DATA_DIR}: {changed[:5]} (use tmp_path)", pytrace=False)
