"""Prometheus metrics of a pipeline's worker: throughput, batches, latency, lag, models, drift.

One :class:`WorkerMetrics` per worker, on its own ``CollectorRegistry`` (never the global
one: workers in threads of one process, as in tests, never share counters). The worker
records once per batch, never per event: per-event figures (end-to-end latency, model
scores) are added to their histograms as whole numpy arrays (:class:`BulkHistograms`).

What is measured (names and labels: docs/architecture.md, "Pipeline metrics"):

- events in per input topic and partition, events out per output topic, dead letters per
  input topic: counted when the batch commits (a refused batch is counted when it is
  processed again and commits);
- batch size, and batch time from the poll's return to the commit's end;
- end-to-end latency per event: the worker's clock (``Worker.clock_ms``) when its batch
  committed (the outputs became visible) minus the source record's timestamp (the event's
  ``time``, which eventml's producers set; otherwise the log's append time); by default
  read for at most 64 evenly spaced records per partition and batch, each counted for its
  share (so counts stay exact);
- consumer lag per assigned partition: end offset minus the worker's position, read at
  most every ``lag_every_s``, and sooner on an idle poll while the last reading was behind
  (a log round trip: never per batch), so it reaches 0 once caught up;
- model calls per model and version (latency, score distribution on 0..1) and drift
  status per model and detector, reported by the operators through
  :mod:`eventml.observe._current` (bound by the worker before each batch).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from eventml.log.base import Consumer, Log, Message, Record, TopicPartition
from eventml.observe import _current

__all__ = ["BulkHistograms", "WorkerMetrics", "consumer_lag"]

BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000)
BATCH_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                         1.0, 2.5, 5.0, 10.0)
E2E_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                       10.0, 30.0, 60.0, 300.0, 3600.0)
MODEL_SECONDS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                         0.1, 0.25, 1.0)
SCORE_BUCKETS = tuple(round(i / 20, 2) for i in range(1, 21))  # 0.05 .. 1.0

_TIMESTAMP = itemgetter(3)  # Record.timestamp_ms


class BulkHistograms(Collector):
    """Prometheus histograms (one per label values) fed whole arrays at once.

    ``observe_many`` costs a few numpy calls per array, whatever its length, where a
    ``Histogram.observe`` per value would cost a Python call per event. NaN goes to the
    ``+Inf`` bucket and is left out of the sum.
    """

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 buckets: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = np.asarray(buckets, dtype=np.float64)
        if self.bounds.ndim != 1 or not len(self.bounds) or np.any(np.diff(self.bounds) <= 0):
            raise ValueError(f"{name}: buckets must be increasing, got {list(buckets)}")
        self._le = [repr(float(b)) for b in self.bounds] + ["+Inf"]
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], tuple[NDArray[np.int64], list[float]]] = {}

    def observe_many(self, labels: tuple[str, ...], values: ArrayLike,
                     weights: ArrayLike | None = None) -> None:
        """Observe each of ``values`` (``weights``: each value that many times)."""
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if not v.size:
            return
        where = np.searchsorted(self.bounds, v, side="left")
        if weights is None:
            counts = np.bincount(where, minlength=len(self.bounds) + 1)
            total = float(v.sum())
        else:
            w = np.asarray(weights, dtype=np.int64).reshape(-1)
            counts = np.bincount(where, weights=w, minlength=len(self.bounds) + 1).astype(np.int64)
            total = float(v @ w)
        if total != total:  # a NaN among them (rare): left out of the sum
            total = float(np.nansum(v if weights is None else v * w))
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                if len(labels) != len(self.labelnames):
                    raise ValueError(f"{self.name}: labels {labels} for {self.labelnames}")
                series = self._series[labels] = (np.zeros(len(self.bounds) + 1, np.int64), [0.0])
            series[0][:] += counts
            series[1][0] += total

    def count(self, labels: tuple[str, ...]) -> int:
        """Values observed under ``labels`` so far."""
        with self._lock:
            series = self._series.get(labels)
            return 0 if series is None else int(series[0].sum())

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            snapshot = [(k, np.cumsum(c).tolist(), s[0]) for k, (c, s) in self._series.items()]
        for labels, cumulative, total in snapshot:
            family.add_metric(list(labels), list(zip(self._le, map(float, cumulative), strict=True)),
                              total)
        yield family


class WorkerMetrics:
    """The metrics one worker records (pass it as ``Worker(app, metrics=...)``).

    ``lag_every_s``: how often consumer lag may be read from the log (see the module doc).
    ``latency_sample``: at most this many records per partition and batch have their
    end-to-end latency computed, evenly spaced, each counted for its share of the batch
    (``None``: every record; reading every record's timestamp costs ~5 % of a light
    pipeline's time, as it touches every record again).
    """

    def __init__(self, *, registry: CollectorRegistry | None = None, lag_every_s: float = 1.0,
                 latency_sample: int | None = 64,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if latency_sample is not None and latency_sample < 1:
            raise ValueError(f"latency_sample must be >= 1 or None, got {latency_sample}")
        r = self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.lag_every_s = lag_every_s
        self.latency_sample = latency_sample
        self._monotonic = monotonic
        self.info = Gauge("eventml_worker_info", "This worker: its app, index and instance (1)",
                          ["app", "worker", "instance"], registry=r)
        self.events_in = Counter("eventml_worker_events_in", "Input records processed (committed)",
                                 ["topic", "partition"], registry=r)
        self.events_out = Counter("eventml_worker_events_out",
                                  "Records appended to output topics (dead letters excluded)",
                                  ["topic"], registry=r)
        self.dead_letters = Counter("eventml_worker_dead_letters",
                                    "Input records sent to their topic's dead-letter topic",
                                    ["topic"], registry=r)
        self.commits_refused = Counter("eventml_worker_commits_refused",
                                       "Batch commits refused (the batch is processed again)",
                                       registry=r)
        self.batch_size = Histogram("eventml_worker_batch_size", "Records per committed batch",
                                    buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.batch_seconds = Histogram("eventml_worker_batch_seconds",
                                       "Batch time: from the poll's return to the commit's end",
                                       buckets=BATCH_SECONDS_BUCKETS, registry=r)
        self.e2e_seconds = BulkHistograms(
            "eventml_worker_end_to_end_seconds",
            "Per input record: its batch's commit time minus the record's timestamp (event time)",
            ["topic"], E2E_SECONDS_BUCKETS)
        r.register(self.e2e_seconds)
        self.lag = Gauge("eventml_worker_consumer_lag",
                         "Records behind: end offset minus position, per assigned partition",
                         ["topic", "partition"], registry=r)
        self.model_seconds = Histogram("eventml_model_latency_seconds",
                                       "Model call time per batch, by model and version",
                                       ["model", "version"], buckets=MODEL_SECONDS_BUCKETS,
                                       registry=r)
        self.model_scores = BulkHistograms("eventml_model_score",
                                           "Scores returned, by model and version",
                                           ["model", "version"], SCORE_BUCKETS)
        r.register(self.model_scores)
        self.drift_status = Gauge("eventml_drift_status",
                                  "1 if the detector's last tested window raised an alarm, else 0",
                                  ["model", "detector"], registry=r)
        self.drift_alarms = Counter("eventml_drift_alarms", "Drift alarms raised",
                                    ["model", "detector"], registry=r)
        self.drift_statistic = Gauge("eventml_drift_statistic",
                                     "The statistic of the detector's last alarm, per test",
                                     ["model", "detector", "feature", "statistic"], registry=r)
        self.drift_threshold = Gauge("eventml_drift_threshold",
                                     "The threshold the last alarm's statistic crossed",
                                     ["model", "detector", "feature", "statistic"], registry=r)
        self._dead_letter_of: dict[str, str] = {}  # dead-letter topic -> its input topic
        self._in: dict[TopicPartition, Any] = {}
        self._out: dict[str, Any] = {}
        self._dead: dict[str, Any] = {}
        self._model: dict[tuple[str, str], Any] = {}
        self._lag_at = -float("inf")
        self._behind = False
        self._lagged: set[TopicPartition] = set()

    # -- set up by the worker ------------------------------------------------------------
    def attach(self, *, app: str, worker: int, instance: str,
               dead_letter_topics: Mapping[str, str]) -> None:
        """Called by the worker that records here: who it is, and ``{input topic: its
        dead-letter topic}`` (so dead letters are told apart from outputs)."""
        self.info.labels(app, str(worker), instance).set(1)
        self._dead_letter_of = {dlq: topic for topic, dlq in dead_letter_topics.items()}

    def bind(self) -> None:
        """Make this the current thread's recipient of model and drift reports."""
        _current.bind(self)

    def unbind(self) -> None:
        if _current.current() is self:
            _current.bind(None)

    def render(self) -> bytes:
        """The text exposition format."""
        return bytes(generate_latest(self.registry))

    # -- per batch -----------------------------------------------------------------------
    def batch_committed(self, by_tp: Mapping[TopicPartition, Sequence[Record]],
                        outputs: Mapping[str, Sequence[Message]], started: float,
                        now_ms: int) -> None:
        """A batch committed: ``by_tp`` its input records, ``outputs`` what it appended,
        ``started`` the ``time.perf_counter()`` when its poll returned, ``now_ms`` the
        worker's clock after the commit."""
        n = 0
        sample = self.latency_sample
        topics: dict[str, tuple[list[int], list[int]]] = {}  # topic -> (timestamps, weights)
        for tp, recs in by_tp.items():
            counter = self._in.get(tp)
            if counter is None:
                counter = self._in[tp] = self.events_in.labels(tp.topic, str(tp.partition))
            k = len(recs)
            counter.inc(k)
            n += k
            stamps, weights = topics.get(tp.topic) or topics.setdefault(tp.topic, ([], []))
            if sample is None or k <= sample:
                stamps.extend(map(_TIMESTAMP, recs))
                weights.extend(repeat(1, k))
            else:  # every stride-th record, standing for itself and the stride - 1 after it
                stride = -(-k // sample)
                picked = recs[::stride]
                stamps.extend(map(_TIMESTAMP, picked))
                weights.extend(repeat(stride, len(picked) - 1))
                weights.append(k - stride * (len(picked) - 1))
        for topic, (stamps, weights) in topics.items():
            self.e2e_seconds.observe_many(
                (topic,), (now_ms - np.asarray(stamps, dtype=np.int64)) * 0.001, weights)
        for topic, messages in outputs.items():
            if not messages:
                continue
            source = self._dead_letter_of.get(topic)
            if source is None:
                out = self._out.get(topic)
                if out is None:
                    out = self._out[topic] = self.events_out.labels(topic)
            else:
                out = self._dead.get(source)
                if out is None:
                    out = self._dead[source] = self.dead_letters.labels(source)
            out.inc(len(messages))
        self.batch_size.observe(n)
        self.batch_seconds.observe(time.perf_counter() - started)

    def commit_refused(self) -> None:
        self.commits_refused.inc()

    def sample_lag(self, consumer: Consumer, log: Log, *, idle: bool) -> None:
        """Read the lag if it is due: every ``lag_every_s``, or (at most ten times as
        often) on an idle poll (``idle``) while the last reading was behind."""
        now = self._monotonic()
        elapsed = now - self._lag_at
        if elapsed < self.lag_every_s and not (idle and self._behind and elapsed >= self.lag_every_s / 10):
            return
        self._lag_at = now
        lag = consumer_lag(consumer, log)
        for tp, behind in lag.items():
            self.lag.labels(tp.topic, str(tp.partition)).set(behind)
        for tp in self._lagged - lag.keys():  # moved to another worker: not ours to report
            self.lag.remove(tp.topic, str(tp.partition))
        self._lagged = set(lag)
        self._behind = any(lag.values())

    # -- reported by operators (eventml.observe._current) ---------------------------------
    def model_scored(self, model: str, version: str, seconds: float,
                     scores: NDArray[np.float64]) -> None:
        key = (model, version)
        hist = self._model.get(key)
        if hist is None:
            hist = self._model[key] = self.model_seconds.labels(model, version)
        hist.observe(seconds)
        self.model_scores.observe_many(key, scores)

    def drift_window(self, model: str, detector: str, alarms: Sequence[Any]) -> None:
        self.drift_status.labels(model, detector).set(1 if alarms else 0)
        if not alarms:
            return
        self.drift_alarms.labels(model, detector).inc(len(alarms))
        for a in alarms:
            labels = (model, detector, a.feature or "", a.statistic)
            self.drift_statistic.labels(*labels).set(a.value)
            self.drift_threshold.labels(*labels).set(a.threshold)


def consumer_lag(consumer: Consumer, log: Log) -> dict[TopicPartition, int]:
    """Per partition assigned to ``consumer``: the log's end offset minus its position
    (one end-offsets read per topic)."""
    owned = consumer.assignment()
    ends: dict[str, dict[int, int]] = {}
    out: dict[TopicPartition, int] = {}
    for tp in sorted(owned):
        if tp.topic not in ends:
            ends[tp.topic] = log.end_offsets(tp.topic)
        end = ends[tp.topic].get(tp.partition, 0)
        out[tp] = max(0, end - consumer.position(tp))
    return out

