from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventml.engine import App, Worker
from eventml.log import Log, open_log
from eventml.views import ProjectionRunner

from .sample import SOURCE, build_app, cards, events


@dataclass
class Served:
    """A log holding the sample's events, the app folded over them, the view's table."""

    url: str
    log: Log
    app: App
    db: Path

    def add(self, n: int, *, seed: int, start: int) -> None:
        """Append events, then fold them into the features and the view."""
        self.log.append(SOURCE, events(n, seed=seed, start=start))
        self.catch_up()

    def catch_up(self) -> None:
        worker = Worker(self.app)
        try:
            worker.run(idle_timeout_s=0.3)
        finally:
            worker.close()
        with ProjectionRunner(self.log, cards, self.db) as runner:
            runner.catch_up()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    url = f"embedded://{tmp_path}/data"
    app = build_app("apitest", broker=url)  # the name of sample.app: `eventml serve --app` finds its topics
    Worker(app).close()  # creates the topics
    log = open_log(url)
    s = Served(url, log, app, tmp_path / "views" / "cards.sqlite")
    try:
        s.log.append(SOURCE, events(400))
        s.catch_up()
        yield s
    finally:
        log.close()
