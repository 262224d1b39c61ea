"""The fraud demo's model lifecycle, end to end on the log: champion and challenger,
delayed chargebacks, a tactics change mid-stream, retraining and promotion.

The scenario (:mod:`~eventml.demos.fraud.scenario`): a stream of ``events`` card
transactions over simulated days; ``onset_days`` in, fraudsters switch to a tactic the
champion never saw. Chargebacks arrive days after each fraud, during the stream.

What runs, all on one log (any backend):

* the scoring pipeline (:func:`~eventml.demos.fraud.app.fraud_app` with
  :class:`~eventml.demos.fraud.app.LiveModels`): per-card features, ``fraud@champion``
  acts, ``fraud@challenger`` shadow-scores, every prediction goes to the prediction log,
  alerts to ``fraud-alerts``; both aliases follow control events (hot swap);
* the labels pipeline: :func:`eventml.ml.online.label_join` joins the chargebacks to the
  prediction log (no report within the label horizon: a negative), and
  :func:`eventml.ml.detect_error_drift` watches the champion's miss rate on labelled
  fraud (Fisher's exact test per window, calibrated false-alarm rate), writing
  ``model.drift`` alarms;
* the :class:`~eventml.demos.fraud.controller.Controller`: retraining on an alarm, the
  promotion policy on the shadow's evidence.

The producer appends the scenario one ``step_ms`` of event time at a time; after each
step every pipeline catches up and the controller decides. So a decision takes effect at
the event time it was taken (a job takes no event time), a run is reproducible for a seed
(up to how the drift detector's one partition interleaves the labelled partitions), and
17 simulated days take about 80 s on two cores.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from eventml.demos.fraud.app import LiveModels, fraud_app
from eventml.demos.fraud.controller import Controller, retrain_job
from eventml.demos.fraud.evaluation import recovery, score_period
from eventml.demos.fraud.generator import DAY_MS, generate_transactions
from eventml.demos.fraud.model import FraudModel
from eventml.demos.fraud.scenario import (
    HOUR_MS,
    NEW_TACTIC,
    DriftScenario,
    Timeline,
    build_timeline,
)
from eventml.demos.fraud.transaction import ms_to_datetime
from eventml.engine import App, Guarantee, Item, Stream, Worker
from eventml.engine.graph import To
from eventml.events import Event, to_message
from eventml.log import BrokerUnavailable, Log, TopicPartition, TopicSpec
from eventml.ml.control import move_alias
from eventml.ml.drift import detect_error_drift
from eventml.ml.online import label_join
from eventml.ml.promotion import PromotionPolicy
from eventml.ml.registry import ModelRegistry
from eventml.ml.triggers import RetrainTrigger

LIVE, CHARGEBACKS = 0, 2  # seed streams, as in run.py
RECOVERY_POINTS = 5.0  # the bar: recall back within 5 points of pre-drift
_TEMPORARY = "eventml-demo-models-"


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    """The lifecycle's settings (the scenario's are in ``scenario``)."""

    scenario: DriftScenario = field(default_factory=DriftScenario)
    model: str = "fraud"
    step_ms: int = HOUR_MS
    drift_window: int = 50  # labelled frauds per test window (the champion's miss rate)
    drift_reference: int = 150  # labelled frauds in the reference period
    drift_alpha: float = 1e-3  # false-alarm probability per window
    # the stated bound: the alarm comes within this many transactions of the change (at
    # ~5,000 a day, 3 days: the chargebacks' delay, ~1.25 days, plus a window of them)
    drift_within_events: int = 15_000
    retrain_cooldown_ms: int = 3 * DAY_MS
    retrain_delay_ms: int | None = None  # after the alarm; default: the label wait (maturity)
    holdout: float = 0.2
    promotion: PromotionPolicy = field(default_factory=lambda: PromotionPolicy(
        window=1000, min_events=500, min_per_class=20, alpha=0.01, margin=0.05))


@dataclass(frozen=True, slots=True)
class LifecycleTopics:
    transactions: str = "transactions"
    chargebacks: str = "chargebacks"
    predictions: str = "predictions"
    alerts: str = "fraud-alerts"
    drift: str = "model.drift"


@dataclass
class LifecycleRun:
    """What :func:`run_lifecycle` hands back to the demo runner."""

    timeline: Timeline
    alerted: np.ndarray  # per transaction
    summary: dict[str, Any]
    pipeline_seconds: float
    scoring: App
    worker_stats: Any
    contract: str | None
    run_starts: dict[int, int]


def run_lifecycle(
    log: Log,
    *,
    events: int,
    seed: int,
    champion: FraudModel,
    start: datetime,
    config: LifecycleConfig | None = None,
    topics: LifecycleTopics | None = None,
    registry: ModelRegistry | None = None,
    partitions: int = 4,
    guarantee: Guarantee = "exactly_once",
    batch_size: int = 5000,
    validate: bool = True,
    features: bool = False,
    velocity_topic: str | None = None,
    progress: Callable[[int], None] | None = None,
    idle_timeout_s: float = 60.0,
) -> LifecycleRun:
    """Run the lifecycle scenario (see the module) and evaluate it against the truth.

    ``registry`` defaults to ``models`` in the log's data directory (a temporary one for
    a ``memory://`` log). The champion is registered as the next version of
    ``config.model`` and becomes ``champion`` (and ``challenger``: until a retrained
    version exists, the champion shadows itself). ``features`` materializes the
    ``card_activity`` view even if the champion does not read it (as ``fraud_app``).
    """
    config = config or LifecycleConfig()
    topics = topics or LifecycleTopics()
    scenario = config.scenario
    if events < 1:
        raise ValueError(f"events must be >= 1, got {events}")
    live = generate_transactions(events, seed=(seed, LIVE), config=scenario.generator_config(start))
    delays = scenario.chargeback_delays(np.random.default_rng((seed, CHARGEBACKS)), live.fraud_count)
    timeline = build_timeline(live, delays)
    with _registry(registry, log) as reg:
        return _Run(log, reg, timeline, champion, config, topics, seed, partitions, guarantee,
                    batch_size, validate, features, velocity_topic, progress, idle_timeout_s).run()


@contextmanager
def _registry(registry: ModelRegistry | None, log: Log) -> Iterator[ModelRegistry]:
    if registry is not None:
        yield registry
    elif log.url.startswith("memory:"):
        with tempfile.TemporaryDirectory(prefix=_TEMPORARY) as tmp:
            yield ModelRegistry(Path(tmp))
    else:
        from eventml.ml.registry import default_registry_path

        yield ModelRegistry(default_registry_path(log.url))


class _Run:
    def __init__(
        self, log: Log, registry: ModelRegistry, timeline: Timeline, champion: FraudModel,
        config: LifecycleConfig, topics: LifecycleTopics, seed: int, partitions: int,
        guarantee: Guarantee, batch_size: int, validate: bool, features: bool,
        velocity: str | None, progress: Callable[[int], None] | None, idle_timeout_s: float,
    ) -> None:
        self.log, self.registry, self.timeline = log, registry, timeline
        self.champion, self.config, self.topics, self.seed = champion, config, topics, seed
        self.partitions, self.guarantee, self.batch_size = partitions, guarantee, batch_size
        self.validate, self.features, self.velocity = validate, features, velocity
        self.progress = progress
        self.idle_timeout_s = idle_timeout_s
        self.decided: dict[str, tuple[int | None, bool]] = {}  # event id -> (version, decision)
        self.shadow: dict[str, tuple[int | None, bool]] = {}
        self.slices = 0

    # -- set-up -------------------------------------------------------------------------
    def _register_champion(self) -> int:
        c, name = self.champion, self.config.model
        v = self.registry.register(
            name, c.estimator, flavor="sklearn", features=c.feature_names,
            metrics={"threshold": c.threshold.value, "history_precision": c.threshold.precision,
                     "history_recall": c.threshold.recall},
            description="the demo's champion: trained on a generated history of three fraud "
                        "patterns (card_testing, high_value_new_category, geo_jump)",
            code_version="eventml.demos.fraud.model:fit_estimator",
        )
        move_alias(self.registry, self.log, name, "champion", v.version,
                   reason="the lifecycle demo starts")
        move_alias(self.registry, self.log, name, "challenger", v.version,
                   reason="no challenger yet: the champion shadows itself")
        return v.version

    def _apps(self, prefix: str) -> tuple[App, App]:
        c, t = self.champion, self.topics
        settings: dict[str, Any] = {
            "guarantee": self.guarantee, "max_batch": self.batch_size,
            "auto_offset_reset": "latest", "max_poll_interval_ms": 600_000,
        }
        scoring = fraud_app(
            LiveModels(self.registry, c.threshold.value, c.feature_names, c.view_features,
                       model=self.config.model, predictions=t.predictions),
            name=f"{prefix}-scoring", broker=self.log.url, transactions=t.transactions,
            alerts=t.alerts, velocity=self.velocity, partitions=self.partitions,
            validate=self.validate, features=self.features, **settings,
        )
        _tap(scoring, t.predictions, self._note_predictions)
        labels = App(f"{prefix}-labels", broker=self.log.url, **settings)
        labels.topic(t.predictions, partitions=self.partitions)
        labels.topic(t.chargebacks, partitions=1)
        join = label_join(labels, t.predictions, t.chargebacks,
                          label_horizon_ms=self.config.scenario.maturity_ms)
        labelled = labels.stream(join.output)
        labelled.sink(lambda items: self.controller.on_labelled([it.value for it in items]))
        primary = labelled.filter(_champion_of(self.config.model))
        alarms = detect_error_drift(
            primary, model=self.config.model, metric="fnr", window=self.config.drift_window,
            reference_size=self.config.drift_reference, alpha=self.config.drift_alpha,
            to=t.drift,
        )
        alarms.sink(lambda items: self.controller.on_drift([it.value for it in items]))
        return scoring, labels

    def _note_predictions(self, items: list[Item]) -> None:
        for it in items:
            p = it.value
            into = self.decided if p["role"] == "primary" else self.shadow
            into[p["event_id"]] = (p["version"], bool(p["decision"]))

    # -- the run ------------------------------------------------------------------------
    def run(self) -> LifecycleRun:
        cfg, t, tl = self.config, self.topics, self.timeline
        first_version = self._register_champion()
        for topic, n in ((t.transactions, self.partitions), (t.chargebacks, 1)):
            self.log.create_topic(TopicSpec(topic, partitions=n), exist_ok=True)
        run_starts = self.log.end_offsets(t.transactions)
        first_ms = int(tl.times[0])
        self.controller = Controller(
            log=self.log, registry=self.registry, model=cfg.model,
            job=retrain_job(cfg.model, transactions=t.transactions, chargebacks=t.chargebacks,
                            view_features=self.champion.view_features,
                            maturity_ms=cfg.scenario.maturity_ms, start_ms=first_ms,
                            seed=self.seed, holdout=cfg.holdout),
            trigger=RetrainTrigger(on_drift=True, cooldown_ms=cfg.retrain_cooldown_ms),
            policy=cfg.promotion,
            delay_ms=(cfg.scenario.maturity_ms if cfg.retrain_delay_ms is None
                      else cfg.retrain_delay_ms),
            judge_every=cfg.promotion.window, from_offsets=run_starts, champion=first_version,
        )
        prefix = f"eventml-demo-lifecycle-{uuid.uuid4().hex[:8]}"
        scoring, labels = self._apps(prefix)
        workers = [Worker(scoring, log=self.log), Worker(labels, log=self.log)]
        started = time.perf_counter()
        try:
            for w in workers:
                _wait_for_assignment(w, self.idle_timeout_s)
            for sl in tl.slices(cfg.step_ms):
                self._append(t.transactions, sl.transactions)
                self._append(t.chargebacks, sl.chargebacks)
                for w in workers:
                    _drain(w, self.idle_timeout_s)
                self.controller.step(sl.end_ms)
                self.slices += 1
                if self.progress is not None:
                    self.progress(workers[0].stats.records)
            seconds = time.perf_counter() - started
            stats = workers[0].stats
            contract = _contract_summary(workers[0], t.transactions)
        finally:
            for w in workers:
                w.close()
        alerted = self._alerted()
        return LifecycleRun(tl, alerted, self._summary(first_version, alerted, seconds), seconds,
                            scoring, stats, contract, run_starts)

    def _append(self, topic: str, events: list[Event]) -> None:
        for first in range(0, len(events), 5000):
            self.log.append(topic, [to_message(e) for e in events[first:first + 5000]])

    def _alerted(self) -> np.ndarray:
        ids = [e.id for e in self.timeline.events]
        missing = [i for i in ids if i not in self.decided]
        if missing:
            raise RuntimeError(f"{len(missing)} transactions have no primary prediction "
                               f"(e.g. {missing[0]}): the scoring pipeline lost events")
        return np.fromiter((self.decided[i][1] for i in ids), dtype=np.bool_, count=len(ids))

    # -- the report ---------------------------------------------------------------------
    def _summary(self, first_version: int, alerted: np.ndarray, seconds: float) -> dict[str, Any]:
        tl, cfg, ctl = self.timeline, self.config, self.controller
        live, times = tl.live, tl.times
        n = len(times)
        onset_ms = int(times[0]) + cfg.scenario.onset_ms
        onset = int(np.searchsorted(times, onset_ms))
        ids = [e.id for e in tl.events]
        versions = [self.decided[i][0] for i in ids]
        promoted_at = ctl.promotions[0][0] if ctl.promotions else None
        switch = _first_scored_by(versions, ctl.champion, onset) if promoted_at is not None else n
        pre = score_period("pre_drift", 0, onset, live.labels, alerted, live.patterns, versions)
        during = score_period("post_drift_champion", onset, switch, live.labels, alerted,
                              live.patterns, versions)
        after = score_period("after_promotion", switch, n, live.labels, alerted, live.patterns,
                             versions)
        periods = {p.name: p.to_json() for p in (pre, during, after)}
        shadow = self._shadow_period(ids, times, live.labels, live.patterns)
        if shadow is not None:
            periods["challenger_shadow"] = shadow
        return {
            "scenario": {
                **cfg.scenario.describe(),
                "events": n, "days": round(float(times[-1] - times[0]) / DAY_MS, 2),
                "onset": {"time": _iso(onset_ms), "event_index": onset},
                "step_hours": cfg.step_ms / HOUR_MS, "steps": self.slices,
            },
            "labels": {
                "chargebacks_in_run": len(tl.arrivals) - tl.late_chargebacks,
                "chargebacks_after_run": tl.late_chargebacks,
                "labelled_predictions": ctl.labelled, "imputed_negatives": ctl.imputed,
                "label_horizon_days": cfg.scenario.maturity_ms / DAY_MS,
            },
            "drift": self._drift(onset_ms, onset, times),
            "retraining": [self._retraining(r) for r in ctl.retrainings],
            "promotion": self._promotion(versions, first_version),
            "periods": periods,
            "recovery": recovery(pre, after, RECOVERY_POINTS) if promoted_at is not None else {
                "within_points": RECOVERY_POINTS, "recovered": False,
                "statement": "no challenger was promoted: recall did not recover"},
            "versions": {"first_champion": first_version, "champion": ctl.champion,
                         "challenger": ctl.challenger},
            "registry": ("(temporary: a memory:// run)" if self.log.url.startswith("memory:")
                         and self.registry.root.name.startswith(_TEMPORARY) else
                         str(self.registry.root)),
            "topics": {"transactions": self.topics.transactions,
                       "chargebacks": self.topics.chargebacks,
                       "predictions": self.topics.predictions, "alerts": self.topics.alerts,
                       "drift": self.topics.drift},
            "pipeline_seconds": round(seconds, 3),
        }

    def _drift(self, onset_ms: int, onset: int, times: np.ndarray) -> dict[str, Any]:
        alarms = self.controller.alarms
        before = [a for a, _ in alarms if a.window_end_ms < onset_ms]
        after = [a for a, _ in alarms if a.window_end_ms >= onset_ms]
        out: dict[str, Any] = {
            "detector": (f"the champion's miss rate on labelled fraud (fnr): windows of "
                         f"{self.config.drift_window} vs a reference of "
                         f"{self.config.drift_reference}, Fisher's exact test, alpha "
                         f"{self.config.drift_alpha:g} per window"),
            "alarms": len(alarms), "alarms_before_onset": len(before), "fired": bool(after),
            "all": [{"time": _iso(a.window_end_ms), "value": round(a.value, 4),
                     "p_value": a.evidence.get("p_value"), "outcome": what}
                    for a, what in alarms],
        }
        if after:
            a = after[0]
            at = int(np.searchsorted(times, a.window_end_ms, side="right"))
            out |= {
                "time": _iso(a.window_end_ms),
                "days_after_onset": round((a.window_end_ms - onset_ms) / DAY_MS, 2),
                "events_after_onset": at - onset,
                "within_events": self.config.drift_within_events,
                "within_stated": 0 < at - onset <= self.config.drift_within_events,
                "statistic": a.statistic, "value": round(a.value, 4),
                "threshold": round(a.threshold, 4), "alpha": a.alpha,
                "p_value": a.evidence.get("p_value"),
                "reference_rate": a.evidence.get("reference_rate"),
                "labelled_frauds_seen": a.events_seen,
            }
        return out

    def _retraining(self, r: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requested": _iso(r.request.at_ms), "reason": r.request.reason,
            "fraud_reports_since_request": r.reports_since,
            "cutoff": None if r.cutoff_ms is None else _iso(r.cutoff_ms),
        }
        if r.error is not None:
            return out | {"error": r.error}
        res = r.result
        keep = ("rows", "positives", "average_precision", "roc_auc", "precision_at_threshold",
                "recall_at_threshold", "threshold")
        training = res.training
        return out | {
            "version": res.version.version,
            "training": {k: training[k] for k in ("rows", "positives", "labelled", "defaulted",
                                                  "waiting", "labels_after_cutoff")}
                        | {"from": _iso(training["range"]["start_ms"]),
                           "to": _iso(training["range"]["end_ms"])},
            "holdout": {k: _r(res.metrics.get(k)) for k in keep},
            "champion_on_holdout": None if res.champion_metrics is None else
                {k: _r(res.champion_metrics.get(k)) for k in keep},
            "seconds": round(res.seconds["total"], 2),
        }

    def _promotion(self, versions: list[int | None], first_version: int) -> dict[str, Any]:
        ctl = self.controller
        looks = [{"at": _iso(at), "decision": o.verdict.decision,
                  "p_value": _r(o.verdict.p_value), "improvement": _r(o.verdict.improvement)}
                 for at, o in ctl.verdicts]
        out: dict[str, Any] = {
            "policy": (f"paired log loss over the last {ctl.policy.window} labelled events both "
                       f"scored, sign-flip test, alpha {ctl.policy.alpha:g}, margin "
                       f"{ctl.policy.margin:.0%}; judged every {ctl.judge_every} new ones"),
            "looks": looks, "promoted": bool(ctl.promotions),
        }
        if ctl.promotions:
            at, o = ctl.promotions[0]
            v = o.verdict
            out |= {
                "time": _iso(at), "version": v.challenger, "replaced": v.champion,
                "event_index": _first_scored_by(versions, v.challenger, 0),
                "reason": v.reason, "p_value": v.p_value, "events": v.events,
                "positives": v.positives, "log_loss": {"champion": _r(v.champion_log_loss),
                                                       "challenger": _r(v.challenger_log_loss)},
                "alerts": v.alerts,
            }
        return out

    def _shadow_period(
        self, ids: list[str], times: np.ndarray, labels: np.ndarray, patterns: tuple[str, ...]
    ) -> dict[str, Any] | None:
        """The challenger's shadow decisions from its registration to its promotion."""
        ctl = self.controller
        if ctl.challenger_since_ms is None:
            return None
        lo = int(np.searchsorted(times, ctl.challenger_since_ms))
        hi = (int(np.searchsorted(times, ctl.promotions[0][0])) if ctl.promotions else len(ids))
        shadowed = np.zeros(len(ids), dtype=np.bool_)
        for i in range(lo, hi):
            s = self.shadow.get(ids[i])
            if s is not None and s[0] == ctl.challenger:
                shadowed[i] = s[1]
        return score_period("challenger_shadow", lo, hi, labels, shadowed, patterns).to_json()


def _first_scored_by(versions: list[int | None], version: int | None, start: int) -> int:
    """The first transaction (from ``start``) whose acted-on score came from ``version``."""
    for i in range(start, len(versions)):
        if versions[i] == version:
            return i
    return len(versions)


def _champion_of(model: str) -> Callable[[Mapping[str, Any]], bool]:
    def primary(value: Mapping[str, Any]) -> bool:
        p = value["prediction"]
        return bool(p["model"] == model and p.get("role", "primary") == "primary")

    return primary


def _tap(app: App, topic: str, fn: Callable[[list[Item]], None]) -> None:
    """Call ``fn`` with the committed records written to ``topic``."""
    node = next(n for n in app.topology().nodes if isinstance(n, To) and n.topic.name == topic)
    Stream(app, node.id).sink(fn)


def _drain(worker: Worker, timeout_s: float) -> None:
    """Step ``worker`` until it has consumed every input topic to its end offsets, its
    own internal topics included (checked again after each catch-up)."""
    log = worker.log
    deadline = time.monotonic() + timeout_s
    while True:
        ends = {TopicPartition(topic, p): end
                for topic in worker.plan.inputs for p, end in log.end_offsets(topic).items()}
        while True:
            assigned = worker.consumer.assignment()
            if all(worker.consumer.position(tp) >= end for tp, end in ends.items()
                   if tp in assigned and end > 0):
                break
            if not worker.step() and time.monotonic() > deadline:
                raise BrokerUnavailable(f"{worker.app.name} did not catch up within "
                                        f"{timeout_s:.0f} s: is the broker healthy?")
        again = {TopicPartition(topic, p): end
                 for topic in worker.plan.inputs for p, end in log.end_offsets(topic).items()}
        if again == ends:
            return


def _wait_for_assignment(worker: Worker, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not worker.consumer.assignment():
        if time.monotonic() > deadline:
            raise BrokerUnavailable(f"no partitions assigned within {timeout_s:.0f} s: "
                                    "is the broker healthy?")
        worker.step()


def _contract_summary(worker: Worker, topic: str) -> str | None:
    if worker.registry is None:
        return None
    version = worker.registry.version(f"{topic}-value")
    return f"{version.subject} v{version.version} (id {version.id}, {version.schema.schema_type})"


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return ms_to_datetime(int(ms)).isoformat(timespec="seconds").replace("+00:00", "Z")


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


__all__ = ["NEW_TACTIC", "LifecycleConfig", "LifecycleRun", "LifecycleTopics", "run_lifecycle"]
