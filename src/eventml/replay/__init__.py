"""Replay and what-if: re-run a pipeline (or a candidate) over a window of history into
sandbox topics, and compare its decisions with what happened.

>>> from eventml.engine import App
>>> app = App("rules", broker="memory://")
>>> app.stream(app.topic("payments")).filter(lambda v: v["amount"] > 100).to(app.topic("alerts"))
Stream(app='rules', node='to-3')
>>> box = sandbox_app(app, "whatif")
>>> box.app.name, dict(box.renamed), box.sources
('whatif.rules', {'alerts': 'whatif.alerts'}, ('payments',))

:func:`replay` runs the sandboxed app over ``[start_ms, end_ms)`` of its inputs;
:func:`diff_decisions` compares two topics of decisions (added, removed, duplicates,
precision and recall against labels).
"""

from eventml.replay._diff import DecisionDiff, Side, diff_decisions
from eventml.replay._errors import ReplayError
from eventml.replay._run import ReplayResult, replay
from eventml.replay._sandbox import Sandbox, sandbox_app
from eventml.replay._time import TimeWindow, parse_time

__all__ = [
    "DecisionDiff",
    "ReplayError",
    "ReplayResult",
    "Sandbox",
    "Side",
    "TimeWindow",
    "diff_decisions",
    "parse_time",
    "replay",
    "sandbox_app",
]
