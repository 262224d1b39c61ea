"""`eventml bench drift`: false alarms on stationary data, detection delay after injected drift.

Data: a seeded generator of card transactions with a realistic mix of features
(``amount`` lognormal with 2 % missing, ``hour`` categorical-as-int with a day/night
profile, ``tx_last_hour`` Poisson counts, ``distance_km`` exponential with 5 % missing,
``z`` a standard normal score). Synthetic, and said so: no public card data exists.

In one run:

1. **Calibration** (the pure core, vectorized): N stationary events (1M by default)
   through :class:`FeatureDriftDetector` with the default settings, the reference a
   separate training sample. False alarms (windows with any alarm) against the
   binomial bound of the configured ``alpha`` (:func:`check_false_alarms`). Then the same
   events with ``alpha=0.2`` on windows of 200 and ``after_drift="keep"``, where the
   expected count is large enough to show the per-test rates against their nominal
   level; and a miscalibrated detector (folk PSI 0.1, windows of 50) caught by the same
   check.
2. **Delay**: for each injected drift (mean shift, variance change, amount scale,
   missing-rate jump, hour mix, a small shift), ``seeds`` streams with the change at
   an event that is not a window boundary; the delay is the events from the change to
   the first alarm.
3. **Error rate**: N stationary labelled outcomes at 5 % error through
   :class:`ErrorRateDetector` (Fisher, calibrated) and river's ADWIN (measured), then
   jumps 5 % -> 20 % and 5 % -> 8 %: delay per method.
4. **Stream**: a smaller run through the engine (``detect_drift`` and
   ``detect_error_drift`` on a temporary embedded log, exactly-once): its alarms must
   be the pure core's on the same events; events/s, state size.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray
from rich.console import Console
from rich.table import Table

from eventml.bench._timing import BenchmarkError
from eventml.ml.drift import (
    AdwinErrorDetector,
    ErrorRateDetector,
    FeatureDriftDetector,
    check_false_alarms,
    psi_threshold,
)
from eventml.ml.records import DriftDetected

Progress = Callable[[str], None]

FEATURES = ("amount", "hour", "tx_last_hour", "distance_km", "z")
WINDOW = 1_000
REFERENCE = 5_000
ALPHA = 1e-3
ERROR_WINDOW = 500
ERROR_REFERENCE = 2_000
STATED_DELAY_WINDOWS = 2  # a clear drift alarms within this many windows after the change
_HOURS = np.array([1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 9, 8, 8, 8, 8, 8, 8, 7, 6, 4, 3, 2], dtype=float)
_NIGHT = np.array([h < 6 or h >= 22 for h in range(24)])


@dataclass(frozen=True)
class Regime:
    """The generator's parameters (a drift is a change of one of them)."""

    amount_mu: float = 3.5
    amount_missing: float = 0.02
    night_factor: float = 1.0
    tx_rate: float = 2.0
    distance_missing: float = 0.05
    z_loc: float = 0.0
    z_scale: float = 1.0


SCENARIOS: dict[str, tuple[str, Regime]] = {
    "mean_shift": ("z mean +0.5 sd", Regime(z_loc=0.5)),
    "variance": ("z sd x1.5", Regime(z_scale=1.5)),
    "amount": ("amount x1.35", Regime(amount_mu=3.8)),
    "missing": ("distance missing 5->20%", Regime(distance_missing=0.20)),
    "hour_mix": ("night share x3", Regime(night_factor=3.0)),
    "small_shift": ("z mean +0.2 sd (small)", Regime(z_loc=0.2)),
}
_CLEAR = ("mean_shift", "variance", "amount", "missing", "hour_mix")


def transactions(n: int, rng: np.random.Generator, regime: Regime = Regime()) -> NDArray[np.float64]:
    """``n`` events x :data:`FEATURES` (NaN: missing), drawn under ``regime``."""
    amount = rng.lognormal(regime.amount_mu, 1.0, n)
    amount[rng.random(n) < regime.amount_missing] = np.nan
    w = _HOURS * np.where(_NIGHT, regime.night_factor, 1.0)
    hour = rng.choice(24, n, p=w / w.sum()).astype(np.float64)
    tx = rng.poisson(regime.tx_rate, n).astype(np.float64)
    distance = rng.exponential(20.0, n)
    distance[rng.random(n) < regime.distance_missing] = np.nan
    z = rng.normal(regime.z_loc, regime.z_scale, n)
    return np.column_stack([amount, hour, tx, distance, z])


def run(
    *,
    events: int = 1_000_000,
    seeds: int = 10,
    stream_events: int = 40_000,
    broker: str | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """All four parts (see the module's doc); ``events`` is the stationary run's length."""
    if events < 50 * WINDOW:
        raise BenchmarkError(f"events must be >= {50 * WINDOW:,}, got {events:,}")
    if seeds < 1:
        raise BenchmarkError(f"seeds must be >= 1, got {seeds}")
    if stream_events < 10 * WINDOW:
        raise BenchmarkError(f"stream events must be >= {10 * WINDOW:,}, got {stream_events:,}")
    say = progress or (lambda _msg: None)
    t_start = time.perf_counter()
    say(f"calibration: {events:,} stationary events, {len(FEATURES)} features")
    calibration = _calibration(events)
    say(f"delay: {len(SCENARIOS)} injected drifts x {seeds} seeds")
    delays = {name: _feature_delay(regime, seeds) | {"drift": label}
              for name, (label, regime) in SCENARIOS.items()}
    say(f"error rate: {events:,} stationary outcomes, then jumps")
    errors = _errors(events, seeds)
    say(f"stream: {stream_events:,} events through the engine")
    stream = _stream(stream_events, broker)
    checks = _checks(calibration, delays, errors, stream)
    return {
        "benchmark": "drift",
        "events": events,
        "seeds": seeds,
        "features": list(FEATURES),
        "settings": {"window": WINDOW, "reference_size": REFERENCE, "alpha": ALPHA,
                     "statistics": ["psi", "ks"], "after_drift": "rebase",
                     "error_window": ERROR_WINDOW, "error_reference": ERROR_REFERENCE,
                     "stated_delay_events": STATED_DELAY_WINDOWS * WINDOW,
                     "stated_error_delay_events": STATED_DELAY_WINDOWS * ERROR_WINDOW},
        "cpus": os.cpu_count(),
        "calibration": calibration,
        "delay": delays,
        "error_rate": errors,
        "stream": stream,
        "seconds": round(time.perf_counter() - t_start, 1),
        "targets": {"checks": checks, "met": all(c["met"] for c in checks.values())},
    }


# -- 1. calibration -------------------------------------------------------------------------


def _calibration(events: int) -> dict[str, Any]:
    rng = np.random.default_rng(2026)
    reference = transactions(REFERENCE, rng)
    x = transactions(events, rng)
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    det = FeatureDriftDetector(FEATURES, reference=reference, window=WINDOW, alpha=ALPHA)
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    det.update_many(x)
    seconds = time.perf_counter() - t0
    out["default"] = _verdict(det) | {
        "build_s": round(build_s, 3), "seconds": round(seconds, 2),
        "events_per_s": round(events / seconds),
        "psi_thresholds": {r.feature: r.psi.to_dict() for r in det.references},
    }
    out["psi_tail_check"] = _psi_tail(det)
    wide = FeatureDriftDetector(FEATURES, reference=reference, window=200, alpha=0.2,
                                after_drift="keep")
    wide.update_many(x)
    out["alpha_0.2_window_200"] = _verdict(wide) | {"per_test": _per_test(wide)}
    folk = FeatureDriftDetector(FEATURES, reference=reference, window=50, alpha=ALPHA,
                                statistics=["psi"], psi_threshold=0.1, after_drift="keep")
    folk.update_many(x[: min(events, 200_000)])
    out["folk_psi_0.1_window_50"] = _verdict(folk)
    calibrated = FeatureDriftDetector(FEATURES, reference=reference, window=50, alpha=ALPHA,
                                      statistics=["psi"], after_drift="keep")
    calibrated.update_many(x[: min(events, 200_000)])
    out["calibrated_psi_window_50"] = _verdict(calibrated)
    return out


def _psi_tail(det: FeatureDriftDetector) -> dict[str, Any]:
    """The default's PSI thresholds come from a chi-square fitted to 20,000 simulated windows
    (its per-test alpha is beyond what they reach): compare with the quantile of 1M draws."""
    out = {}
    for ref in det.references[:2]:
        fitted = ref.psi.value
        direct = psi_threshold(ref.counts, det.window, det.alpha_test, seed=5, draws=1_000_000)
        out[ref.feature] = {"alpha": det.alpha_test, "fitted": round(fitted, 6),
                            "quantile_1M_draws": round(direct.value, 6),
                            "chi2": round(ref.psi.chi2, 6),
                            "fitted_vs_quantile": round(fitted / direct.value, 4)}
    return out


def _verdict(det: FeatureDriftDetector) -> dict[str, Any]:
    check = check_false_alarms(det.windows_alarmed, det.windows_tested, det.alpha)
    return {"window": det.window, "alpha": det.alpha, "alpha_per_test": det.alpha_test,
            "events": det.events_seen, "check": check.to_dict(), "alarms": dict(det.alarms)}


def _per_test(det: FeatureDriftDetector) -> dict[str, Any]:
    """Each (feature, statistic)'s alarm rate against its Bonferroni share of alpha."""
    n = det.windows_tested
    return {
        f"{f}/{s}": {"alarms": det.alarms.get(f"{f}/{s}", 0),
                     "rate": round(det.alarms.get(f"{f}/{s}", 0) / n, 4),
                     "nominal": det.alpha_test}
        for f in det.features for s in det.statistics
    }


# -- 2. delay after injected drift ---------------------------------------------------------------


def _change_point(window: int, reference: int = 0) -> int:
    return reference + 20 * window + window // 2  # mid-window: the straddling window is half drifted


def _feature_delay(regime: Regime, seeds: int) -> dict[str, Any]:
    change = _change_point(WINDOW)
    delays: list[int | None] = []
    first: dict[str, int] = {}
    before = 0
    for seed in range(seeds):
        rng = np.random.default_rng(10_000 + seed)
        reference = transactions(REFERENCE, rng)
        x = np.vstack([transactions(change, rng), transactions(10 * WINDOW, rng, regime)])
        det = FeatureDriftDetector(FEATURES, reference=reference, window=WINDOW, alpha=ALPHA,
                                   seed=seed)
        found = det.update_many(x)
        before += len({f.events_seen for f in found if f.events_seen <= change})
        after = [f for f in found if f.events_seen > change]
        if not after:
            delays.append(None)
            continue
        at = min(f.events_seen for f in after)
        delays.append(at - change)
        for f in after:
            if f.events_seen == at:
                key = f"{f.feature}/{f.statistic}"
                first[key] = first.get(key, 0) + 1
    return _delay_summary(delays, before, WINDOW) | {"first_alarm_tests": first,
                                                     "change_at_event": change}


def _delay_summary(delays: list[int | None], before: int, window: int) -> dict[str, Any]:
    found = [d for d in delays if d is not None]
    return {
        "runs": len(delays),
        "detected": len(found),
        "delay_min": min(found) if found else None,
        "delay_median": int(np.median(found)) if found else None,
        "delay_max": max(found) if found else None,
        "within_stated": sum(d <= STATED_DELAY_WINDOWS * window for d in found),
        "false_alarms_before_change": before,
    }


# -- 3. error rate ---------------------------------------------------------------------------


def _errors(events: int, seeds: int) -> dict[str, Any]:
    rng = np.random.default_rng(77)
    stationary = rng.random(events) < 0.05
    fisher = ErrorRateDetector(window=ERROR_WINDOW, reference_size=ERROR_REFERENCE, alpha=ALPHA)
    t0 = time.perf_counter()
    fisher.update_many(stationary)
    fisher_s = time.perf_counter() - t0
    out: dict[str, Any] = {
        "stationary_rate": 0.05,
        "fisher": {"check": check_false_alarms(fisher.windows_alarmed, fisher.windows_tested,
                                               ALPHA).to_dict(),
                   "critical_errors": list(fisher.critical_errors),
                   "events_per_s": round(events / fisher_s)},
    }
    adwin = _adwin()
    if adwin is not None:
        t0 = time.perf_counter()
        adwin.update_many(stationary)
        adwin_s = time.perf_counter() - t0
        out["adwin"] = {"delta": adwin.delta, "false_alarms": adwin.alarms, "events": events,
                        "events_per_s": round(events / adwin_s),
                        "note": "delta is not a per-event or per-window rate: measured, not bounded"}
    else:
        out["adwin"] = None
    out["jumps"] = {}
    for label, high in (("5% -> 20%", 0.20), ("5% -> 8%", 0.08)):
        out["jumps"][label] = {"fisher": _error_delay(high, seeds, adwin=False)}
        if adwin is not None:
            out["jumps"][label]["adwin"] = _error_delay(high, seeds, adwin=True)
    return out


def _adwin() -> AdwinErrorDetector | None:
    try:
        return AdwinErrorDetector()
    except ImportError:
        return None


def _error_delay(high: float, seeds: int, *, adwin: bool) -> dict[str, Any]:
    change = _change_point(ERROR_WINDOW, ERROR_REFERENCE)
    delays: list[int | None] = []
    before = 0
    for seed in range(seeds):
        rng = np.random.default_rng(20_000 + seed)
        outcomes = np.concatenate([rng.random(change) < 0.05, rng.random(20 * ERROR_WINDOW) < high])
        det: ErrorRateDetector | AdwinErrorDetector = (
            AdwinErrorDetector() if adwin else
            ErrorRateDetector(window=ERROR_WINDOW, reference_size=ERROR_REFERENCE, alpha=ALPHA))
        found = det.update_many(outcomes)
        before += sum(f.events_seen <= change for f in found)
        after = [f.events_seen for f in found if f.events_seen > change]
        delays.append(min(after) - change if after else None)
    return _delay_summary(delays, before, ERROR_WINDOW) | {"change_at_event": change}


# -- 4. through the engine ----------------------------------------------------------------------


@contextlib.contextmanager
def _broker(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="eventml-bench-drift-") as tmp:
        yield f"embedded://{tmp}/data"


def _stream(n: int, broker: str | None) -> dict[str, Any]:
    from eventml.engine import App, Worker
    from eventml.log import Message, open_log
    from eventml.ml.drift import detect_drift, detect_error_drift

    rng = np.random.default_rng(5)
    reference = transactions(REFERENCE, rng)
    change = (n // 2 // WINDOW) * WINDOW + WINDOW // 2
    x = np.vstack([transactions(change, rng), transactions(n - change, rng, Regime(z_loc=0.5))])
    err = np.concatenate([rng.random(change) < 0.05, rng.random(n - change) < 0.20])
    tag = uuid.uuid4().hex[:8]
    tx, labelled, drift = f"bench-drift-tx-{tag}", f"bench-drift-labelled-{tag}", f"bench-drift-{tag}"
    with _broker(broker) as url, open_log(url) as log:
        app = App(f"bench-drift-{tag}", broker=url)
        detect_drift(app.stream(app.topic(tx)), model="bench", features=FEATURES,
                     reference=reference, window=WINDOW, alpha=ALPHA, to=drift)
        detect_error_drift(app.stream(app.topic(labelled)), model="bench", window=ERROR_WINDOW,
                           reference_size=ERROR_REFERENCE, alpha=ALPHA, to=drift)
        Worker(app, log=log).close()  # creates the topics
        rows = x.tolist()
        times = [1_700_000_000_000 + 10 * i for i in range(n)]
        log.append(tx, [
            Message(orjson.dumps({n_: (None if v != v else v) for n_, v in zip(FEATURES, r, strict=True)}),
                    f"card{i % 97}".encode(), (("ce_id", f"tx{i}".encode()),), t)
            for i, (r, t) in enumerate(zip(rows, times, strict=True))
        ])
        log.append(labelled, [
            Message(orjson.dumps({"event_id": f"tx{i}", "decision": bool(e), "label": 0.0}),
                    f"card{i % 97}".encode(), (("ce_id", f"lp{i}".encode()),), t)
            for i, (e, t) in enumerate(zip(err.tolist(), times, strict=True))
        ])
        worker = Worker(app, log=log)
        t0 = time.perf_counter()
        worker.run(idle_timeout_s=1.0)
        seconds = time.perf_counter() - t0 - 1.0
        alarms = [DriftDetected.from_dict(orjson.loads(r.value or b"{}"))
                  for r in _read(log, drift)]
        state = _state_bytes(log, app, tx)
        worker.close()
        baseline = _baseline(url, log, tag, tx, labelled)
    core_f = FeatureDriftDetector(FEATURES, reference=reference, window=WINDOW, alpha=ALPHA)
    core_e = ErrorRateDetector(window=ERROR_WINDOW, reference_size=ERROR_REFERENCE, alpha=ALPHA)
    expected = sorted(_sig(f) for f in core_f.update_many(x, times) + core_e.update_many(err, times))
    got = sorted(_sig(f) for f in alarms)
    return {
        "events": n, "change_at_event": change,
        "seconds": round(seconds, 2),
        "events_per_s": round(2 * n / max(seconds, 1e-9)),
        "note": "events/s counts both inputs (features and labelled predictions), one worker",
        "alarms": len(alarms),
        "first_alarms": [{"kind": f.kind, "feature": f.feature, "statistic": f.statistic,
                          "events_seen": f.events_seen, "value": round(f.value, 4),
                          "threshold": round(f.threshold, 4)} for f in alarms[:6]],
        "baseline_events_per_s": round(2 * n / max(baseline, 1e-9)),
        "baseline": "the same shape (project, key_by, process) without detectors or state",
        "same_as_core": got == expected,
        "core_alarms": len(expected),
        "state_bytes": state,
    }


def _baseline(url: str, log: Any, tag: str, tx: str, labelled: str) -> float:
    """Seconds the same pipeline shape takes without detectors (what the engine costs)."""
    from eventml.engine import App, Worker

    app = App(f"bench-drift-base-{tag}", broker=url)
    app.stream(app.topic(tx)).map(lambda v: [v.get(f) for f in FEATURES]).key_by(
        lambda v: "bench", partitions=1).process(lambda v, s: [], state="noop-f").flat_map(list)
    app.stream(app.topic(labelled)).map(lambda v: bool(v["decision"])).key_by(
        lambda v: "bench", partitions=1).process(lambda v, s: [], state="noop-e").flat_map(list)
    worker = Worker(app, log=log)
    t0 = time.perf_counter()
    worker.run(idle_timeout_s=1.0)
    seconds = time.perf_counter() - t0 - 1.0
    worker.close()
    return seconds


def _sig(f: DriftDetected) -> tuple[Any, ...]:
    return (f.kind, f.feature or "", f.statistic, f.events_seen, round(f.value, 9),
            f.window_start_ms, f.window_end_ms)


def _read(log: Any, topic: str) -> list[Any]:
    from eventml.log import ConsumerConfig, TopicPartition

    ends = {TopicPartition(topic, p): o for p, o in log.end_offsets(topic).items()}
    c = log.consumer(f"bench-read-{uuid.uuid4().hex[:8]}", [topic],
                     config=ConsumerConfig(auto_offset_reset="earliest"))
    out: list[Any] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out += c.poll(10_000, 0.1)
            owned = c.assignment()
            if len(owned) == len(ends) and all(c.position(tp) >= ends[tp] for tp in owned):
                break
    finally:
        c.close()
    return sorted(out, key=lambda r: (r.partition, r.offset))


def _state_bytes(log: Any, app: Any, source: str) -> dict[str, int]:
    """Pickled size of each committed detector (what a batch writes to the store)."""
    from eventml.log import TopicPartition
    from eventml.state import StoreSpec, backend_for

    out: dict[str, int] = {}
    backend = backend_for(log)
    for node in app.topology().nodes:
        store = getattr(node, "store", None)
        if store is None or not store.name.startswith("drift-"):
            continue
        parent = next(p for p in app.topology().nodes if p.id == node.parent)
        topic = parent.repartition.name
        ps = backend.open(StoreSpec(app.name, store.name), TopicPartition(topic, 0), None)
        value = ps.get("bench")
        if value is not None:
            out[store.name] = len(pickle.dumps(value, protocol=5))
    return out


# -- verdicts and rendering ------------------------------------------------------------------------


def _checks(
    calibration: Mapping[str, Any], delays: Mapping[str, Any], errors: Mapping[str, Any],
    stream: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    c: dict[str, dict[str, Any]] = {}
    d = calibration["default"]["check"]
    c["stationary false alarms <= bound"] = {"value": d["alarms"], "max": d["bound"], "met": d["ok"]}
    w = calibration["alpha_0.2_window_200"]["check"]
    c["alpha 0.2 false alarms <= bound"] = {"value": w["alarms"], "max": w["bound"], "met": w["ok"]}
    folk = calibration["folk_psi_0.1_window_50"]["check"]
    c["folk PSI caught (alarms > bound)"] = {"value": folk["alarms"], "max": folk["bound"],
                                            "met": not folk["ok"]}
    for name in _CLEAR:
        r = delays[name]
        c[f"{name} detected within {STATED_DELAY_WINDOWS * WINDOW:,} events"] = {
            "value": f"{r['within_stated']}/{r['runs']}", "met": r["within_stated"] == r["runs"]}
    e = errors["fisher"]["check"]
    c["error-rate false alarms <= bound"] = {"value": e["alarms"], "max": e["bound"], "met": e["ok"]}
    j = errors["jumps"]["5% -> 20%"]["fisher"]
    c[f"error 5%->20% detected within {STATED_DELAY_WINDOWS * ERROR_WINDOW:,} events"] = {
        "value": f"{j['within_stated']}/{j['runs']}", "met": j["within_stated"] == j["runs"]}
    c["stream alarms == core alarms"] = {"value": stream["same_as_core"], "met": stream["same_as_core"]}
    return c


def render_drift_table(result: Mapping[str, Any], console: Console) -> None:
    """Calibration, delays, error-rate detectors, the stream run, then the verdicts."""
    s = result["settings"]
    cal = Table(title=f"drift: false alarms on {result['events']:,} stationary events "
                      f"({len(result['features'])} features, reference {s['reference_size']:,})")
    for col in ("detector", "window", "alpha", "windows", "alarms", "expected", "bound", "ok"):
        cal.add_column(col, justify="left" if col == "detector" else "right")
    for name, r in result["calibration"].items():
        if "check" not in r:
            continue
        ch = r["check"]
        cal.add_row(_LABELS.get(name, name), f"{r['window']:,}", f"{r['alpha']:g}", f"{ch['trials']:,}",
                    f"{ch['alarms']:,}", f"{ch['expected']:.1f}", f"{ch['bound']:,}",
                    "yes" if ch["ok"] else "NO")
    e = result["error_rate"]
    ch = e["fisher"]["check"]
    cal.add_row("errors: Fisher", f"{s['error_window']:,}", f"{ch['alpha']:g}",
                f"{ch['trials']:,}", f"{ch['alarms']:,}", f"{ch['expected']:.1f}",
                f"{ch['bound']:,}", "yes" if ch["ok"] else "NO")
    if e.get("adwin"):
        cal.add_row(f"errors: ADWIN {e['adwin']['delta']:g}", "-", "-", "-",
                    f"{e['adwin']['false_alarms']:,}", "-", "-", "(no bound)")
    console.print(cal)
    dl = Table(title=f"delay in events after the change ({result['seeds']} seeds; window "
                     f"{s['window']:,}, errors {s['error_window']:,}; in time: <= "
                     f"{s['stated_delay_events']:,} / {s['stated_error_delay_events']:,})",
               caption="before: false alarms before the change, all seeds")
    for col in ("drift", "found", "min", "median", "max", "in time", "before"):
        dl.add_column(col, justify="left" if col == "drift" else "right")
    for r in result["delay"].values():
        dl.add_row(r["drift"], f"{r['detected']}/{r['runs']}", _n(r["delay_min"]),
                   _n(r["delay_median"]), _n(r["delay_max"]), f"{r['within_stated']}/{r['runs']}",
                   f"{r['false_alarms_before_change']}")
    for label, methods in e["jumps"].items():
        for method, r in methods.items():
            dl.add_row(f"errors {label.replace(' ', '')} {method}", f"{r['detected']}/{r['runs']}",
                       _n(r["delay_min"]), _n(r["delay_median"]), _n(r["delay_max"]),
                       f"{r['within_stated']}/{r['runs']}", f"{r['false_alarms_before_change']}")
    console.print(dl)
    for feature, t in result["calibration"]["psi_tail_check"].items():
        console.print(f"PSI threshold {feature} at {t['alpha']:g}: fitted {t['fitted']:.4f}, "
                      f"1M-draw quantile {t['quantile_1M_draws']:.4f}, chi2 {t['chi2']:.4f}")
    st = result["stream"]
    console.print(
        f"stream (engine, exactly-once): {st['events']:,} events + {st['events']:,} labelled, "
        f"{st['events_per_s']:,} events/s (same shape without detectors: "
        f"{st['baseline_events_per_s']:,}), {st['alarms']} alarms, same as core: "
        f"{st['same_as_core']}, state bytes {st['state_bytes']}"
    )
    for name, c in result["targets"]["checks"].items():
        verdict = "[green]ok[/]" if c["met"] else "[red]MISSED[/]"
        bound = f" (max {c['max']:,})" if "max" in c else ""
        console.print(f"check {name}: {c['value']}{bound} {verdict}")


_LABELS = {
    "default": "PSI+KS (default)",
    "alpha_0.2_window_200": "PSI+KS, alpha 0.2",
    "folk_psi_0.1_window_50": "folk PSI 0.1",
    "calibrated_psi_window_50": "calibrated PSI",
}


def _n(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"
