"""The stream engine: declarative pipelines run as micro-batches with keyed state,
event-time windows, exactly-once commits, scale-out and dead letters.

>>> from eventml.engine import App
>>> app = App("hello", broker="memory://")
>>> words = app.topic("words", value="str")
>>> app.stream(words).map(str.upper).to(app.topic("shouts", value="str"))
Stream(app='hello', node='to-3')
"""

from eventml.engine.app import App, Guarantee, Settings, Stream, WindowedStream
from eventml.engine.errors import WorkerFailed
from eventml.engine.graph import StoreRef, TopicRef, Topology
from eventml.engine.items import Item
from eventml.engine.state import KeyState
from eventml.engine.supervisor import load_app, run_app
from eventml.engine.worker import Worker, WorkerStats

__all__ = [
    "App",
    "Guarantee",
    "Item",
    "KeyState",
    "Settings",
    "StoreRef",
    "Stream",
    "TopicRef",
    "Topology",
    "WindowedStream",
    "Worker",
    "WorkerFailed",
    "WorkerStats",
    "load_app",
    "run_app",
]
