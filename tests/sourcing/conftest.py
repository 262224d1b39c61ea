"""Fixtures for event sourcing: a log per backend, and a bank account aggregate."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventml.log import Log, open_log

from .bank import Account


@pytest.fixture(params=["memory", "embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def log_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory://"
    elif request.param == "embedded":
        yield f"embedded://{tmp_path / 'data'}"
    else:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        yield f"kafka://{bootstrap}"


@pytest.fixture
def log(log_url: str) -> Iterator[Log]:
    opened = open_log(log_url)
    yield opened
    opened.close()


@pytest.fixture
def name() -> str:
    return f"acct-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def account() -> Account:
    return Account()
