"""Faults to inject into a worker in tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eventml.engine import Worker
from eventml.log import CommitFailed


def refuse_commits(worker: Worker, every: int) -> list[int]:
    """Make every ``every``-th batch commit of ``worker`` fail as a moved partition would
    (the transaction is aborted and :class:`~eventml.log.CommitFailed` raised). Returns
    ``[commits begun, commits refused]``, updated as the worker runs."""
    begin: Callable[[], Any] = worker._begin
    count = [0, 0]

    def patched() -> Any:
        txn = begin()
        count[0] += 1
        if count[0] % every == 0:
            def refuse() -> None:
                txn.abort()
                count[1] += 1
                raise CommitFailed("injected: the partition moved")

            txn.commit = refuse
        return txn

    worker._begin = patched  # type: ignore[method-assign]
    return count
