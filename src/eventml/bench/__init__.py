"""Benchmarks that print numbers a reader can compare: eventml against a raw baseline.

``run_log_benchmark(url, events=N)`` times batched appends and a fresh consumer
group's read of the log at ``url``, then the same work done by the bare client
underneath (sqlite3 for ``embedded://``, confluent-kafka for ``kafka://``), in
the same run, so the ratio shows what eventml costs on top of its storage.
"""

from eventml.bench._timing import BenchmarkError
from eventml.bench.log import TARGETS, run_log_benchmark
from eventml.bench.report import render_table, to_json

__all__ = ["TARGETS", "BenchmarkError", "render_table", "run_log_benchmark", "to_json"]
