"""Headless Chromium (Debian's package, ``scripts/chromium ensure``) driven by Playwright.

Without Chromium the browser tests skip, except under ``CI=true`` where they fail.
Screenshots go to ``test-artifacts/browser/`` at the repository's root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventml.testing import serve_app

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


def chromium_path() -> str:
    path = os.environ.get("EVENTML_CHROMIUM", "/usr/bin/chromium")
    if not os.access(path, os.X_OK):
        why = f"no Chromium at {path}: run scripts/chromium ensure (or set EVENTML_CHROMIUM)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    return path


@pytest.fixture
def browser_context(tmp_path: Path) -> Iterator[Any]:
    """A Chromium context with a fresh profile (its own user data directory)."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - a dev dependency
        pytest.skip("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=executable, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1300})
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


ServerThread = serve_app  # uvicorn for the app on a free loopback port, in a thread

