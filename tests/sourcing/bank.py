"""A bank account aggregate (test double) and the checker for lost updates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventml.sourcing import Aggregate, CommandRejected, DomainEvent, EventLike, EventStore


@dataclass(frozen=True)
class Open:
    owner: str


@dataclass(frozen=True)
class Deposit:
    amount: int
    gate: Callable[[], None] | None = None  # called in the handler: lets tests line writers up


@dataclass(frozen=True)
class Withdraw:
    amount: int


Command = Open | Deposit | Withdraw
State = dict[str, Any]


class Account(Aggregate[State, Command]):
    """Open, deposit, withdraw; the balance may never go below zero. Counts ``apply`` calls."""

    def __init__(self) -> None:
        self.applied = 0

    def initial(self) -> State:
        return {"owner": None, "balance": 0}

    def apply(self, state: State, event: EventLike) -> State:
        self.applied += 1
        if event.type == "Opened":
            return {**state, "owner": event.data["owner"]}
        if event.type == "Deposited":
            return {**state, "balance": state["balance"] + event.data["amount"]}
        if event.type == "Withdrawn":
            return {**state, "balance": state["balance"] - event.data["amount"]}
        raise ValueError(f"unknown event type {event.type!r}")

    def handle(self, state: State, command: Command) -> list[DomainEvent]:
        if isinstance(command, Open):
            if state["owner"] is not None:
                raise CommandRejected(f"the account is already open (owner {state['owner']!r})")
            return [DomainEvent("Opened", {"owner": command.owner})]
        if state["owner"] is None:
            raise CommandRejected("the account is not open: open it first")
        if command.amount <= 0:
            raise CommandRejected(f"amounts must be positive, got {command.amount}")
        if isinstance(command, Deposit):
            if command.gate is not None:
                command.gate()
            return [DomainEvent("Deposited", {"amount": command.amount})]
        if command.amount > state["balance"]:
            raise CommandRejected(
                f"no overdraft: withdrawing {command.amount} would take the balance "
                f"{state['balance']} below zero"
            )
        return [DomainEvent("Withdrawn", {"amount": command.amount})]


def check_no_lost_updates(
    store: EventStore, aggregate_id: str, *, deposits: int, amount: int
) -> list[str]:
    """Problems with an account opened once and then given ``deposits`` deposits of ``amount``.

    ``store`` should be a fresh handle, so it rebuilds everything from the log.
    """
    problems = []
    events = store.read(aggregate_id)
    versions = [e.version for e in events]
    if versions != list(range(1, deposits + 2)):
        problems.append(f"versions are not 1..{deposits + 1}: {versions}")
    loaded = store.load(Account(), aggregate_id)
    if loaded.state["balance"] != deposits * amount:
        problems.append(
            f"balance {loaded.state['balance']} != {deposits} deposits x {amount} "
            f"({deposits * amount}): updates were lost"
        )
    return problems
