"""The log-derived figures of a :class:`~eventml.observe.pipeline.PipelineSampler` as
Prometheus gauges, for the service's ``GET /metrics``.

A scrape asks the sampler for its latest snapshot (sampling if the last one is older than
its interval; on an event loop the scrape gets the last snapshot at once and the next is
taken in a thread, so a slow log never stalls the service; the first such scrape has no
log gauges yet): events per topic (end offsets, summed over partitions), consumer lag per
group and topic, dead letters held per source topic, drift alarms per model (and whether
any was raised within ``drift_recent_s``) and the time lag per group and topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from eventml.observe.pipeline import PipelineSampler, Snapshot


class LogCollector(Collector):
    """Gauges from ``sampler`` (see the module docstring); ``clock_ms`` for drift recency."""

    def __init__(self, sampler: PipelineSampler, *, drift_recent_s: float = 3600.0,
                 clock_ms: Callable[[], float] | None = None) -> None:
        self.sampler, self.drift_recent_s = sampler, drift_recent_s
        self.clock_ms = clock_ms or (lambda: sampler.clock() * 1000)

    def describe(self) -> Iterator[Any]:
        return iter(())  # no sample at registration: families are known only at collect time

    def _snapshot(self) -> Snapshot | None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a thread of its own: sample if the last snapshot is stale
            return self.sampler.latest()
        # on the event loop (an async /metrics handler): never wait for the log there;
        # answer with the last sample (at most a scrape old) and take the next in a thread
        self.sampler.refresh_in_background()
        return self.sampler.last

    def collect(self) -> Iterator[Any]:
        snap = self._snapshot()
        if snap is None:
            return
        events = GaugeMetricFamily("eventml_topic_events", "End offset summed over partitions "
                                   "(events ever appended)", labels=["topic"])
        for t in snap["topics"]:
            events.add_metric([t["topic"]], t["end_offset"])
        lag = GaugeMetricFamily("eventml_consumer_lag", "Records not yet committed by the group",
                                labels=["group", "topic"])
        time_lag = GaugeMetricFamily("eventml_consumer_time_lag_seconds", "How long the group's "
                                     "next record has waited since its append",
                                     labels=["group", "topic"])
        for g in snap["groups"]:
            if g["lag"] is not None:
                lag.add_metric([g["group"], g["topic"]], g["lag"])
            if g["time_lag_ms"] is not None:
                time_lag.add_metric([g["group"], g["topic"]], g["time_lag_ms"] / 1000)
        dead = GaugeMetricFamily("eventml_dead_letters", "Dead letters held in TOPIC.dlq",
                                 labels=["topic"])
        for d in snap["dead_letters"]:
            dead.add_metric([d["topic"]], d["held"])
        alarms = GaugeMetricFamily("eventml_model_drift_alarms", "Drift alarms among the newest "
                                   "read from the drift topics", labels=["model"])
        drifting = GaugeMetricFamily("eventml_model_drift_detected", "1 if a drift alarm was "
                                     "raised recently", labels=["model"])
        counts: dict[str, int] = {}
        latest: dict[str, int] = {}
        for d in snap["drift"]:
            model = str(d["model"])
            counts[model] = counts.get(model, 0) + 1
            latest[model] = max(latest.get(model, 0), int(d["at_ms"]))
        for m in snap["models"]:
            counts.setdefault(str(m["name"]), 0)
        recent_from = self.clock_ms() - self.drift_recent_s * 1000
        for model, n in sorted(counts.items()):
            alarms.add_metric([model], n)
            drifting.add_metric([model], 1.0 if latest.get(model, -1) >= recent_from else 0.0)
        yield from (events, lag, time_lag, dead, alarms, drifting)
