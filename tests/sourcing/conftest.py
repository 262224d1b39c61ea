"""Fixtures for event sourcing: a log per backend, and a bank account aggregate."""

from __future__ import annotations

import uuid

import pytest

from .bank import Account


@pytest.fixture
def name() -> str:
    return f"acct-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def account() -> Account:
    return Account()
