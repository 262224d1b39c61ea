"""What a running pipeline is doing, as read from the log: one sample at a time.

:class:`PipelineSampler` reads, at each :meth:`~PipelineSampler.sample`, only cheap
things: every topic's end offsets (events/s per topic over the last samples), the
committed offsets of the consumer groups it watches (the app's own: its name) without
joining them (lag and commit rate per group and topic), the newest records of the alert,
drift, alias-change and prediction topics, dead-letter counts (topics ``*.dlq``) and the
model registry's versions and aliases. :meth:`~PipelineSampler.latest` samples at most
once per ``interval_s`` however many readers ask (the dashboard's streams, a Prometheus
scrape), so nothing is read while nobody looks.

Latency (``latency`` in a snapshot) is the *time lag* of each watched group: how long
its next record to process has been waiting, i.e. the wall time between that record's
append (interpolated between the samples of its partition's end offset around it) and
the sample. 0 while the group is caught up. With exactly-once processing, outputs
(alerts) commit with the input offsets, so while records wait this is the delay from a
record's append to the visibility of its results; a sample's figure is over partitions,
the percentiles are over the last ``latency_window`` samples. Resolution is bounded by
the sampling interval when the append rate is uneven between two samples.

With ``worker_metrics`` (the URLs ``eventml run --metrics-port`` prints), each sample also
scrapes the workers' Prometheus endpoints (:class:`~eventml.observe.scrape.WorkerScraper`,
in the sampling thread, ``scrape_timeout_s`` each): ``workers`` in a snapshot, and per
series point the *processing latency* percentiles (``processing_p50_ms`` ...): each batch's
time from the poll's return to the commit's end, over the batches committed since the
previous sample, estimated from histogram bucket deltas. A worker that does not answer is
listed as down, not an error.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import orjson

from eventml.deadletter.record import dead_letter_topic
from eventml.engine.graph import To
from eventml.log import Log, LogError, Record, TopicPartition, UnknownTopic
from eventml.ml.records import ALIAS_TYPE, CONTROL_TOPIC, DRIFT_TYPE, PREDICTION_TYPE
from eventml.observe.scrape import WorkerScraper
from eventml.observe.series import AppendTimes, Rate, percentile, time_lag_s
from eventml.observe.tail import read_tail
from eventml.observe.topology import PipelineGraph, edge_rates, pipeline_graph

if TYPE_CHECKING:
    from eventml.engine import App
    from eventml.ml.registry import ModelRegistry

DLQ_SUFFIX = ".dlq"
DEFAULT_DRIFT_TOPIC = "model.drift"
Snapshot = dict[str, Any]
PROCESSING_MEASURES = (
    "each committed batch's time from the poll's return to the commit's end "
    "(eventml_worker_batch_seconds of all workers); percentiles of the batches since the "
    "previous sample, estimated from histogram bucket deltas with linear interpolation "
    "within a bucket, as Prometheus' histogram_quantile does")


@dataclass(frozen=True, slots=True)
class SamplerConfig:
    """``interval_s`` between samples; ``rate_window`` samples per rate; ``history``
    samples of charts kept; ``alerts_kept`` newest alerts; ``latency_window`` samples
    per latency percentile (and model latency); ``predictions_read`` newest predictions
    compared per version; ``scrape_timeout_s`` per worker metrics endpoint."""

    interval_s: float = 1.0
    rate_window: int = 5
    history: int = 300
    alerts_kept: int = 50
    latency_window: int = 30
    predictions_read: int = 1000
    drift_kept: int = 20
    scrape_timeout_s: float = 0.5

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.rate_window < 2 or self.history < 2:
            raise ValueError("need interval_s > 0, rate_window >= 2 and history >= 2")
        if self.scrape_timeout_s <= 0:
            raise ValueError("need scrape_timeout_s > 0")


def _topics_of_type(app: App | None, event_type: str) -> list[str]:
    if app is None:
        return []
    return sorted({n.topic.name for n in app.topology().nodes
                   if isinstance(n, To) and n.topic.event_type == event_type})


class PipelineSampler:
    """Samples ``log`` (see the module docstring). ``app``: its topology and consumer
    group; ``groups``: more groups to watch; ``alert_topics`` default to the app's output
    topics named like ``*alert*``; ``drift_topics`` and ``prediction_topics`` to the app's
    topics of those event types (plus ``model.drift`` and ``predictions`` when they exist);
    ``worker_metrics``: the workers' metrics endpoints to scrape (see the module docstring)."""

    def __init__(
        self,
        log: Log,
        *,
        app: App | None = None,
        models: ModelRegistry | None = None,
        groups: Iterable[str] = (),
        alert_topics: Sequence[str] | None = None,
        drift_topics: Sequence[str] | None = None,
        prediction_topics: Sequence[str] | None = None,
        worker_metrics: Sequence[str] = (),
        config: SamplerConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log, self.models, self.clock = log, models, clock
        self.config = config or SamplerConfig()
        self.graph: PipelineGraph | None = None if app is None else pipeline_graph(app.topology())
        self.groups = list(dict.fromkeys([*([] if app is None else [app.name]), *groups]))
        written = [] if self.graph is None else self.graph.topics_written
        self.alert_topics = list(alert_topics if alert_topics is not None
                                 else [t for t in written if "alert" in t.lower()])
        self.drift_topics = list(drift_topics if drift_topics is not None
                                 else [*_topics_of_type(app, DRIFT_TYPE), DEFAULT_DRIFT_TOPIC])
        self.prediction_topics = list(prediction_topics if prediction_topics is not None
                                      else [*_topics_of_type(app, PREDICTION_TYPE), "predictions"])
        self.workers = None if not worker_metrics else WorkerScraper(
            worker_metrics, timeout_s=self.config.scrape_timeout_s,
            window=self.config.latency_window)
        self._ends: dict[str, Rate] = {}
        self._commits: dict[tuple[str, str], Rate] = {}
        self._appends: dict[TopicPartition, AppendTimes] = {}
        self._latency: dict[str, deque[float]] = {}
        self._series: deque[dict[str, Any]] = deque(maxlen=self.config.history)
        self._alerts: deque[dict[str, Any]] = deque(maxlen=self.config.alerts_kept)
        self._alert_seen: dict[TopicPartition, int] = {}
        self._alerts_total = 0
        self._last: Snapshot | None = None
        self._last_at = float("-inf")
        self._lock = threading.Lock()

    # -- sampling ------------------------------------------------------------------------

    def latest(self, max_age_s: float | None = None) -> Snapshot:
        """The last snapshot, sampling first if it is older than ``max_age_s`` (default:
        the interval); one sample at a time however many callers ask."""
        age = self.config.interval_s if max_age_s is None else max_age_s
        with self._lock:
            if self._last is None or self.clock() - self._last_at >= age:
                self._last = self._sample()
                self._last_at = self.clock()
            return self._last

    @property
    def last(self) -> Snapshot | None:
        """The last snapshot taken (``None`` before the first), without sampling."""
        return self._last

    def refresh_in_background(self) -> None:
        """Sample in a thread of its own if the last snapshot is older than the interval and
        no sample is running: for callers on an event loop, which must not wait for the log."""
        if self.clock() - self._last_at < self.config.interval_s or self._lock.locked():
            return
        threading.Thread(target=self.latest, name="eventml-pipeline-sampler", daemon=True).start()

    def sample(self) -> Snapshot:
        """Sample now, whatever the age of the last snapshot."""
        with self._lock:
            self._last = self._sample()
            self._last_at = self.clock()
            return self._last

    def _sample(self) -> Snapshot:
        now = self.clock()
        errors: list[str] = []
        topic_names = self._guard(errors, "listing topics", self.log.list_topics) or []
        ends: dict[str, dict[int, int]] = {}
        for name in topic_names:
            found = self._guard(errors, f"offsets of {name}", partial(self.log.end_offsets, name))
            if found is not None:
                ends[name] = found
        topics = self._topics(now, ends)
        groups = self._groups(now, ends, errors)
        latency = self._latency_point(now, groups)
        workers = None if self.workers is None else self.workers.scrape()
        processing = {} if workers is None else workers["processing"]
        rates = {t["topic"]: t["rate_eps"] for t in topics}
        self._series.append({"at_ms": int(now * 1000), "rates": rates, **latency,
                             **{f"processing_{p}_ms": processing.get(f"{p}_ms")
                                for p in ("p50", "p95", "p99")}})
        return {
            "at_ms": int(now * 1000),
            "interval_s": self.config.interval_s,
            "topics": topics,
            "groups": groups,
            "graph": self._graph(rates, groups),
            "series": list(self._series),
            "latency_measures": "time lag: wall time since the group's next record to "
                                "process was appended (0 when caught up), max over partitions "
                                f"per sample; percentiles over the last {self.config.latency_window} "
                                "samples",
            "workers": None if workers is None else {
                **workers,
                "processing_measures": PROCESSING_MEASURES,
                "models_measure": f"model call time over the last {self.config.latency_window} "
                                  "samples, per model version (eventml_model_latency_seconds)"},
            "alerts": self._read_alerts(ends, errors),
            "dead_letters": self._dead_letters(topics),
            "models": self._models(errors),
            "drift": self._drift(ends, errors),
            "alias_changes": self._alias_changes(ends, errors),
            "predictions": self._predictions(ends, errors),
            "errors": errors,
        }

    @staticmethod
    def _guard(errors: list[str], what: str, read: Callable[[], Any]) -> Any:
        try:
            return read()
        except UnknownTopic:
            return None
        except (LogError, OSError, ValueError) as e:
            errors.append(f"{what}: {type(e).__name__}: {e}"[:300])
            return None

    def _topics(self, now: float, ends: dict[str, dict[int, int]]) -> list[dict[str, Any]]:
        out = []
        for name, parts in sorted(ends.items()):
            total = sum(parts.values())
            rate = self._ends.setdefault(name, Rate(self.config.rate_window))
            rate.add(now, total)
            for p, end in parts.items():
                self._appends.setdefault(TopicPartition(name, p),
                                         AppendTimes(self.config.history)).add(now, end)
            out.append({"topic": name, "partitions": len(parts), "end_offset": total,
                        "rate_eps": rate.per_s()})
        return out

    def _groups(self, now: float, ends: dict[str, dict[int, int]],
                errors: list[str]) -> list[dict[str, Any]]:
        read = [] if self.graph is None else self.graph.topics_read
        out = []
        for group in self.groups:
            for topic in read:
                parts = ends.get(topic)
                if parts is None:
                    continue
                tps = [TopicPartition(topic, p) for p in sorted(parts)]
                committed = self._guard(errors, f"offsets of group {group}",
                                        partial(self.log.committed_offsets, group, tps))
                if committed is None:
                    continue
                known = {tp: c for tp, c in committed.items() if c is not None}
                lag = sum(max(0, parts[tp.partition] - c) for tp, c in known.items())
                rate = self._commits.setdefault((group, topic), Rate(self.config.rate_window))
                if known:
                    rate.add(now, sum(known.values()))
                lags = [time_lag_s(self._appends[tp], committed[tp], parts[tp.partition], now)
                        for tp in tps if tp in self._appends]
                waits = [w for w in lags if w is not None]
                out.append({"group": group, "topic": topic, "lag": lag if known else None,
                            "committed": sum(known.values()) if known else None,
                            "end_offset": sum(parts.values()), "rate_eps": rate.per_s(),
                            "time_lag_ms": round(max(waits) * 1000, 1) if waits else None})
        return out

    def _latency_point(self, now: float, groups: list[dict[str, Any]]) -> dict[str, Any]:
        worst = [g["time_lag_ms"] for g in groups if g["time_lag_ms"] is not None]
        window = self._latency.setdefault("all", deque(maxlen=self.config.latency_window))
        if worst:
            window.append(max(worst))
        values = list(window)
        return {"time_lag_ms": max(worst) if worst else None,
                "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
                "p99_ms": percentile(values, 99)}

    def _graph(self, rates: dict[str, float | None],
               groups: list[dict[str, Any]]) -> dict[str, Any] | None:
        if self.graph is None:
            return None
        consumed = {g["topic"]: g["rate_eps"] for g in groups if g["group"] == self.graph.group}
        per_edge = edge_rates(self.graph, rates, consumed)
        return {"app": self.graph.app, "group": self.graph.group,
                "nodes": [{"id": n.id, "kind": n.kind, "label": n.label, "detail": n.detail,
                           "layer": n.layer} for n in self.graph.nodes],
                "edges": [{"source": e.source, "target": e.target, "topic": e.topic,
                           "direction": e.direction, "rate_eps": r}
                          for e, r in zip(self.graph.edges, per_edge, strict=True)]}

    # -- the tails -----------------------------------------------------------------------

    def _tail(self, topic: str, ends: dict[str, dict[int, int]], count: int,
              errors: list[str], *, spread: bool = False) -> list[Record]:
        if topic not in ends:
            return []
        found: list[Record] | None = self._guard(
            errors, f"reading {topic}", partial(read_tail, self.log, topic, count, spread=spread))
        return found or []

    def _read_alerts(self, ends: dict[str, dict[int, int]], errors: list[str]) -> dict[str, Any]:
        for topic in self.alert_topics:
            new: list[Record] = []
            for r in self._tail(topic, ends, self.config.alerts_kept, errors):
                tp = TopicPartition(topic, r.partition)
                if r.offset >= self._alert_seen.get(tp, -1) + 1:
                    new.append(r)
            for r in new:
                tp = TopicPartition(topic, r.partition)
                self._alert_seen[tp] = max(self._alert_seen.get(tp, -1), r.offset)
                self._alerts.append(_alert(r))
        self._alerts_total = sum(sum(ends.get(t, {}).values()) for t in self.alert_topics)
        return {"topics": self.alert_topics, "total": self._alerts_total,
                "recent": list(self._alerts)[::-1]}

    def _dead_letters(self, topics: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"topic": t["topic"][: -len(DLQ_SUFFIX)], "dead_letter_topic": t["topic"],
                 "held": t["end_offset"], "rate_eps": t["rate_eps"]}
                for t in topics if t["topic"].endswith(DLQ_SUFFIX)
                and dead_letter_topic(t["topic"][: -len(DLQ_SUFFIX)]) == t["topic"]]

    def _models(self, errors: list[str]) -> list[dict[str, Any]]:
        registry = self.models
        if registry is None or not registry.exists:
            return []
        try:
            return [m.to_dict() for m in registry.list_models()]
        except Exception as e:  # a registry being written: try at the next sample
            errors.append(f"model registry: {type(e).__name__}")
            return []

    def _drift(self, ends: dict[str, dict[int, int]], errors: list[str]) -> list[dict[str, Any]]:
        out = []
        for topic in dict.fromkeys(self.drift_topics):
            for r in self._tail(topic, ends, self.config.drift_kept, errors):
                body = _json(r.value)
                if isinstance(body, dict) and "model" in body:
                    out.append({"topic": topic, "at_ms": r.timestamp_ms,
                                **{k: body.get(k) for k in ("model", "kind", "statistic", "value",
                                                            "threshold", "feature",
                                                            "window_events")}})
        return sorted(out, key=lambda d: int(d["at_ms"] or 0), reverse=True)[: self.config.drift_kept]

    def _alias_changes(self, ends: dict[str, dict[int, int]],
                       errors: list[str]) -> list[dict[str, Any]]:
        out = []
        for r in self._tail(CONTROL_TOPIC, ends, self.config.drift_kept, errors):
            body = _json(r.value)
            if isinstance(body, dict) and _header(r, "ce_type") in (ALIAS_TYPE, None):
                out.append({k: body.get(k) for k in ("model", "alias", "version", "previous",
                                                     "reason", "at_ms")})
        return out[::-1]

    def _predictions(self, ends: dict[str, dict[int, int]],
                     errors: list[str]) -> list[dict[str, Any]]:
        """Per model, version and role over the newest predictions: how many, mean score,
        share of positive decisions (shadow vs champion on the same events)."""
        stats: dict[tuple[str, Any, str], list[float]] = {}
        for topic in dict.fromkeys(self.prediction_topics):
            for r in self._tail(topic, ends, self.config.predictions_read, errors, spread=True):
                p = _json(r.value)
                if not isinstance(p, dict) or "score" not in p:
                    continue
                s = stats.setdefault((str(p.get("model")), p.get("version"),
                                      str(p.get("role", "primary"))), [0.0, 0.0, 0.0])
                s[0] += 1
                s[1] += float(p["score"])
                s[2] += 1.0 if p.get("decision") else 0.0
        return [{"model": m, "version": v, "role": role, "predictions": int(n),
                 "mean_score": total / n, "decision_rate": yes / n}
                for (m, v, role), (n, total, yes) in sorted(stats.items(), key=str)]


def _json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _header(record: Record, name: str) -> str | None:
    for n, v in record.headers:
        if n == name:
            return v.decode(errors="replace")
    return None


def _alert(r: Record) -> dict[str, Any]:
    body = _json(r.value)
    return {"topic": r.topic, "partition": r.partition, "offset": r.offset,
            "timestamp_ms": r.timestamp_ms, "id": _header(r, "ce_id"),
            "key": None if r.key is None else r.key.decode(errors="replace"),
            "value": body if body is not None else (
                None if r.value is None else r.value[:500].decode(errors="replace"))}
