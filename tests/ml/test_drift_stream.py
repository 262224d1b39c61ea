"""Drift detection on the stream engine: model.drift events with evidence, the detector as
keyed state under exactly-once (refused commits, restarts), sampling, bad input."""

from __future__ import annotations

import time
import uuid
import zlib
from typing import Any

import numpy as np
import orjson
import pytest
from numpy.typing import NDArray

from eventml.bench.drift import FEATURES, Regime, transactions
from eventml.deadletter import parse_dead_letter
from eventml.engine import App, Worker
from eventml.log import ConsumerConfig, Log, Message, Record, TopicPartition, open_log
from eventml.ml.drift import (
    ErrorRateDetector,
    FeatureDriftDetector,
    detect_drift,
    detect_error_drift,
)
from eventml.ml.drift.operator import _Step
from eventml.ml.records import DRIFT_TYPE, DriftDetected
from eventml.state import StoreSpec, backend_for
from eventml.testing.faults import refuse_commits

pytest.importorskip("scipy")

WINDOW = 500
T0 = 1_700_000_000_000


def _data(n: int, change: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    rng = np.random.default_rng(seed)
    reference = transactions(2_000, rng)
    x = np.vstack([transactions(change, rng), transactions(n - change, rng, Regime(z_loc=0.8))])
    errors = np.concatenate([rng.random(change) < 0.05, rng.random(n - change) < 0.25])
    return reference, x, errors


def _tx(i: int, row: list[float]) -> Message:
    value = {f: (None if v != v else v) for f, v in zip(FEATURES, row, strict=True)}
    return Message(orjson.dumps(value), f"card{i % 13}".encode(), (("ce_id", f"tx{i}".encode()),), T0 + i)


def _lp(i: int, error: bool) -> Message:
    value = {"prediction": {"event_id": f"tx{i}", "score": 0.9 if error else 0.1, "decision": None},
             "label": 0.0}
    return Message(orjson.dumps(value), f"card{i % 13}".encode(), (("ce_id", f"lp{i}".encode()),), T0 + i)


def _read(log: Log, topic: str) -> list[Record]:
    ends = {TopicPartition(topic, p): o for p, o in log.end_offsets(topic).items()}
    c = log.consumer(f"r{uuid.uuid4().hex[:8]}", [topic], config=ConsumerConfig(auto_offset_reset="earliest"))
    out: list[Record] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out += c.poll(10_000, 0.05)
            owned = c.assignment()
            if len(owned) == len(ends) and all(c.position(tp) >= ends[tp] for tp in owned):
                break
    finally:
        c.close()
    return sorted(out, key=lambda r: (r.partition, r.offset))


def _sig(f: DriftDetected) -> tuple[Any, ...]:
    return (f.kind, f.feature, f.statistic, f.events_seen, f.window_start_ms, f.window_end_ms,
            round(f.value, 12))


def _detector(log: Log, app: App, store: str, key: str) -> Any:
    """The committed detector of ``store`` (read through the app's state backend)."""
    nodes = app.topology().nodes
    proc = next(n for n in nodes if getattr(getattr(n, "store", None), "name", None) == store)
    keyby: Any = next(n for n in nodes if n.id == proc.parent)
    ps = backend_for(log).open(StoreSpec(app.name, store), TopicPartition(keyby.repartition.name, 0), None)
    return (ps.get(key) or {}).get("detector")


def _app(url: str, tag: str, reference: NDArray[np.float64], **settings: Any) -> tuple[App, str, str, str]:
    app = App(f"drift-{tag}", broker=url, **settings)
    tx, labelled, drift = f"tx-{tag}", f"lp-{tag}", f"drift-{tag}"
    detect_drift(app.stream(app.topic(tx)), model="fraud", features=FEATURES, reference=reference,
                 window=WINDOW, alpha=0.001, to=drift)
    detect_error_drift(app.stream(app.topic(labelled)), model="fraud", window=WINDOW,
                       reference_size=1_000, alpha=0.001, to=drift)
    return app, tx, labelled, drift


def _core(reference: NDArray[np.float64], x: NDArray[np.float64], errors: NDArray[np.bool_]) -> list[Any]:
    times = T0 + np.arange(len(x))
    f = FeatureDriftDetector(FEATURES, reference=reference, model="fraud", window=WINDOW, alpha=0.001)
    e = ErrorRateDetector(model="fraud", window=WINDOW, reference_size=1_000, alpha=0.001)
    return sorted(_sig(a) for a in f.update_many(x, times) + e.update_many(errors, times))


def test_drift_events_on_the_log_carry_evidence_and_are_the_cores_alarms(log_url: str) -> None:
    n, change = 6_000, 3_250
    reference, x, errors = _data(n, change, seed=1)
    tag = uuid.uuid4().hex[:8]
    log = open_log(log_url)
    try:
        app, tx, labelled, drift = _app(log_url, tag, reference)
        Worker(app, log=log).close()  # creates the topics
        bad = Message(b'{"amount": "lots"}', b"card0", (("ce_id", b"bad"),), T0)
        log.append(tx, [_tx(i, r) for i, r in enumerate(x[:100].tolist())] + [bad]
                   + [_tx(i, r) for i, r in enumerate(x[100:].tolist(), 100)])
        log.append(labelled, [_lp(i, bool(e)) for i, e in enumerate(errors.tolist())])
        Worker(app, log=log).run(idle_timeout_s=1.0 if log_url.startswith("kafka") else 0.3)
        records = _read(log, drift)
        alarms = [DriftDetected.from_dict(orjson.loads(r.value or b"{}")) for r in records]
        # the same alarms as the pure core on the same events, each once
        assert sorted(_sig(a) for a in alarms) == _core(reference, x, errors)
        ids = [dict(r.headers)["ce_id"] for r in records]
        assert len(set(ids)) == len(ids)
        assert {dict(r.headers)["ce_type"] for r in records} == {DRIFT_TYPE.encode()}
        assert {r.key for r in records} == {b"fraud"}
        kinds = {a.kind for a in alarms}
        assert kinds == {"feature", "error"}
        z = next(a for a in alarms if a.feature == "z")
        assert change < z.events_seen <= change + 2 * WINDOW
        assert z.evidence["window_quantiles"][2] > z.evidence["reference_quantiles"][2]
        assert z.evidence["psi_threshold_source"] in ("quantile", "chi2-fit")
        err = next(a for a in alarms if a.kind == "error")
        assert err.evidence["window_rate"] > 0.15 and err.evidence["reference_rate"] < 0.1
        # the non-numeric event went to the dead letters, the detector counted every other
        (dead,) = _read(log, f"{tx}.dlq")
        letter = parse_dead_letter(dead)
        assert letter.value == b'{"amount": "lots"}' and letter.error_class.endswith("ValueError")
        assert _detector(log, app, "drift-fraud", "fraud").events_seen == n
        assert _detector(log, app, "drift-fraud-error", "fraud").events_seen == n
    finally:
        log.close()




@pytest.mark.parametrize("broken", [False, True], ids=["keyed-state", "broken-closure"])
@pytest.mark.parametrize("backend", ["memory", "embedded"])
def test_refused_commits_replay_from_the_committed_detector(
    backend: str, broken: bool, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if broken:  # deliberately wrong: the detector lives in the function, not in keyed state
        held: dict[int, Any] = {}

        def in_closure(self: _Step, value: Any, state: Any) -> list[dict[str, Any]]:
            detector = held.setdefault(id(self), self.template.writable())
            found = detector.update_one(value, state.time_ms)
            state["detector"] = detector  # written too, so the check can read it
            return [f.to_dict() for f in found]

        monkeypatch.setattr(_Step, "__call__", in_closure)
    n, change = 5_000, 2_750
    reference, x, errors = _data(n, change, seed=2)
    url = f"memory://d{uuid.uuid4().hex[:8]}" if backend == "memory" else f"embedded://{tmp_path}/data"
    log = open_log(url)
    try:
        app, tx, labelled, drift = _app(url, uuid.uuid4().hex[:8], reference,
                                        max_batch=300, min_batch=50)
        Worker(app, log=log).close()
        log.append(tx, [_tx(i, r) for i, r in enumerate(x.tolist())])
        log.append(labelled, [_lp(i, bool(e)) for i, e in enumerate(errors.tolist())])
        worker = Worker(app, log=log)
        count = refuse_commits(worker, 3)
        worker.run(idle_timeout_s=0.3)
        worker.close()
        assert count[1] >= 10  # commits were refused and their batches replayed
        alarms = [DriftDetected.from_dict(orjson.loads(r.value or b"{}")) for r in _read(log, drift)]
        seen = (_detector(log, app, "drift-fraud", "fraud").events_seen,
                _detector(log, app, "drift-fraud-error", "fraud").events_seen)
        correct = seen == (n, n) and sorted(_sig(a) for a in alarms) == _core(reference, x, errors)
        assert correct is not broken, (seen, len(alarms))
    finally:
        log.close()


def test_a_restarted_worker_continues_from_the_committed_detector(tmp_path: Any) -> None:
    n, change = 5_000, 3_750
    reference, x, errors = _data(n, change, seed=3)
    url = f"embedded://{tmp_path}/data"
    log = open_log(url)
    try:
        app, tx, labelled, drift = _app(url, uuid.uuid4().hex[:8], reference, max_batch=500)
        Worker(app, log=log).close()
        log.append(tx, [_tx(i, r) for i, r in enumerate(x.tolist())])
        log.append(labelled, [_lp(i, bool(e)) for i, e in enumerate(errors.tolist())])
        first = Worker(app, log=log)
        first.run(max_records=4_000)  # a share of both inputs and of the repartition topic
        first.close()
        part = _detector(log, app, "drift-fraud", "fraud")
        assert part is not None and 0 < part.events_seen < n
        Worker(app, log=log).run(idle_timeout_s=0.3)
        alarms = [DriftDetected.from_dict(orjson.loads(r.value or b"{}")) for r in _read(log, drift)]
        assert sorted(_sig(a) for a in alarms) == _core(reference, x, errors)
        assert _detector(log, app, "drift-fraud", "fraud").events_seen == n
    finally:
        log.close()


def test_sampling_feeds_the_detector_a_fixed_share_chosen_by_event_id() -> None:
    url = f"memory://s{uuid.uuid4().hex[:8]}"
    log = open_log(url)
    try:
        rng = np.random.default_rng(4)
        app = App(f"drift-s{uuid.uuid4().hex[:6]}", broker=url)
        detect_drift(app.stream(app.topic("tx")), model="fraud", features=FEATURES,
                     reference=transactions(2_000, rng), window=WINDOW, sample=0.25)
        Worker(app, log=log).close()
        log.append("tx", [_tx(i, r) for i, r in enumerate(transactions(4_000, rng).tolist())])
        Worker(app, log=log).run(idle_timeout_s=0.3)
        chosen = sum(zlib.crc32(f"tx{i}".encode()) < 0.25 * 2**32 for i in range(4_000))
        assert _detector(log, app, "drift-fraud", "fraud").events_seen == chosen
        assert 800 < chosen < 1_200
    finally:
        log.close()


def test_bad_settings_fail_when_the_pipeline_is_built() -> None:
    app = App("drift-bad", broker="memory://")
    s = app.stream(app.topic("tx"))
    with pytest.raises(ValueError, match="invalid model 'fraud detector'"):
        detect_drift(s, model="fraud detector", features=["a"], reference={"a": list(range(20))})
    with pytest.raises(ValueError, match=r"sample must be in \(0, 1\]"):
        detect_drift(s, model="fraud", features=["a"], sample=0.0)
    with pytest.raises(ValueError, match="method must be 'fisher' or 'adwin'"):
        detect_error_drift(s, model="fraud", method="cusum")  # type: ignore[arg-type]
