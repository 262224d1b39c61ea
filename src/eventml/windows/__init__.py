"""Event-time windows: pure assigners, stream time, aggregators and windowed aggregation.

Bounds follow Kafka Streams; all times are integer milliseconds since the
epoch and come from the records, never from the wall clock. Nothing here does
I/O: state is a plain dict, and late records are returned, not dropped.

>>> agg = WindowedAggregation(Tumbling(size_ms=60_000), Count(), emit="final").build()
>>> agg.process("k", 1_000, "a")
[]
>>> agg.process("k", 61_000, "b")
[Emitted(key='k', window=Window(start_ms=0, end_ms=60000, end_inclusive=False), value=1)]
"""

from ._aggregation import EmitMode, WindowedAggregation, WindowedAggregationLogic
from ._aggregators import Aggregator, Count, Last, Max, Mean, Min, StdDev, Sum
from ._results import Emitted, Late, Output, Retracted
from ._sketches import ApproxDistinct, TopK
from ._specs import Hopping, Session, Sliding, Tumbling, WindowSpec
from ._time import StreamTime, is_closed
from ._window import Window

__all__ = [
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
