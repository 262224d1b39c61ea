"""Hot swap: an alias moved by a control event is used from the next batch on, a batch and
its retries keep their versions, the checker counts every event, and catches broken setups."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from numpy.typing import NDArray

from eventml.engine import App, Worker
from eventml.log import Log, Message, open_log
from eventml.ml import ModelRegistry, move_alias, read_predictions
from eventml.ml.control import alias_changes
from eventml.ml.inference import Scorer, predict
from eventml.ml.records import AliasChange, Prediction
from eventml.testing import MemoryLog, check_predictions

# version n of model "m" scores n * a, so a score says which version made it


def times1(x: NDArray[Any]) -> NDArray[np.float64]:
    return _poisoned(x, 1.0)


def times2(x: NDArray[Any]) -> NDArray[np.float64]:
    return _poisoned(x, 2.0)


def times3(x: NDArray[Any]) -> NDArray[np.float64]:
    return _poisoned(x, 3.0)


def _poisoned(x: NDArray[Any], k: float) -> NDArray[np.float64]:
    if (x[:, 0] == 13.0).any():
        raise ValueError("cannot score 13")
    return np.asarray(x[:, 0] * k, dtype=np.float64)


def needs_b(x: NDArray[Any]) -> NDArray[np.float64]:
    return np.asarray(x[:, 0], dtype=np.float64)


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    reg = ModelRegistry(tmp_path / "models")
    for fn in (times1, times2, times3):
        reg.register("m", fn, flavor="callable", features=["a"])
    reg.set_alias("m", "champion", 1)
    return reg


def _tagged(values: list[float], partition: int = 0, start: int = 0) -> list[Any]:
    return [({"a": v}, f"e{start + i}", f"k{start + i}", 1_000 + i, partition)
            for i, v in enumerate(values)]


def _scores(out: list[Any]) -> list[float]:
    return [o[0]["score"] for o in out]


def _scorer(registry: ModelRegistry, log: Log | str, **options: Any) -> Scorer:
    return Scorer("m@champion", features=["a"], registry=registry, control=log,
                  watch_every_ms=options.pop("watch_every_ms", 0), **options)


def test_an_alias_moved_by_a_control_event_is_used_from_the_next_batch(registry: ModelRegistry) -> None:
    log = MemoryLog()
    loads: list[str] = []
    load = registry.load

    def counted(ref: Any) -> Any:
        loads.append(str(ref))
        return load(ref)

    registry.load = counted  # type: ignore[method-assign]
    scorer = _scorer(registry, log)
    assert scorer.tagged and scorer.version == "m:1"
    assert _scores(scorer(_tagged([1.0, 2.0]))) == [1.0, 2.0]
    move_alias(registry, log, "m", "champion", 2)
    out = scorer(_tagged([1.0, 2.0]))
    assert _scores(out) == [2.0, 4.0] and {o[0]["model_version"] for o in out} == {"m:2"}
    move_alias(registry, log, "m", "champion", 1)
    move_alias(registry, log, "m", "champion", 3)  # two moves between batches: the last wins
    assert _scores(scorer(_tagged([1.0]))) == [3.0]
    move_alias(registry, log, "m", "champion", 1)
    assert _scores(scorer(_tagged([1.0]))) == [1.0]
    assert loads == ["m/1", "m/2", "m/3"]  # each version loaded once: cached
    assert scorer.followed[0].switches == 3
    scorer.close()


def test_a_failed_batch_and_every_retry_of_its_events_keep_the_batchs_version(
    registry: ModelRegistry,
) -> None:
    log = MemoryLog()
    scorer = _scorer(registry, log)
    batch = _tagged([1.0, 2.0, 13.0, 4.0])
    with pytest.raises(Exception, match="some events"):
        scorer(batch)
    move_alias(registry, log, "m", "champion", 2)  # lands while the engine re-asks
    assert _scores(scorer([batch[0]])) == [1.0]  # answered from the bisection: version 1
    with pytest.raises(ValueError, match="cannot score 13"):
        scorer([batch[2]])
    with pytest.raises(ValueError, match="cannot score 13"):  # the engine's retry: version 1 again
        scorer([batch[2]])
    retried = scorer([batch[1]])  # consumed? no: still answered from the bisection
    assert _scores(retried) == [2.0] and retried[0][0]["model_version"] == "m:1"
    assert _scores(scorer([batch[3]])) == [4.0]
    assert _scores(scorer([batch[3]])) == [4.0]  # asked again (a retry): still version 1
    assert _scores(scorer(_tagged([1.0], start=9))) == [2.0]  # a new batch: the new version


def test_a_failing_batch_in_the_engine_dead_letters_only_the_culprit_with_a_flip_in_between(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    url = f"embedded://{tmp_path}/data"
    log = open_log(url)
    app = App("flipper", broker=url, max_batch=50, min_batch=50)
    src = app.topic("tx", partitions=1)
    app.stream(src).predict("m@champion", features=["a"], registry=registry,
                            predictions="preds", watch_every_ms=0).to(app.topic("out"))
    Worker(app, log=log).close()
    values = [13.0 if i == 7 else float(i % 10) for i in range(100)]
    placed = log.append("tx", [Message(orjson.dumps({"a": v}), None, (("ce_id", f"e{i}".encode()),))
                               for i, v in enumerate(values)])
    worker = Worker(app, log=log)
    while not worker.step():  # the first batch: the one with the poisoned event
        pass
    assert worker.stats.records == 50 and worker.stats.dead_letters == 1
    move_alias(registry, log, "m", "champion", 2)
    worker.run(idle_timeout_s=0.3)
    preds = read_predictions(log, "preds")
    assert sorted(p.event_id for p in preds) == sorted(f"e{i}" for i in range(100) if i != 7)
    assert {p.version for p in preds if int(p.event_id[1:]) < 50} == {1}
    assert {p.version for p in preds if int(p.event_id[1:]) >= 50} == {2}
    assert all(p.score == p.version * p.features["a"] for p in preds)  # type: ignore[operator]
    events = [(f"e{i}", md.partition, md.offset) for i, md in enumerate(placed) if i != 7]
    check_predictions(events, preds, alias_changes(log), initial=1).assert_ok()
    assert "tx.dlq" in log.list_topics() and sum(log.end_offsets("tx.dlq").values()) == 1
    log.close()


def test_a_version_that_cannot_score_the_stream_is_refused_and_the_old_one_kept(
    registry: ModelRegistry,
) -> None:
    log = MemoryLog()
    registry.register("m", needs_b, flavor="callable", features=["a", "b"])  # version 4
    scorer = _scorer(registry, log)
    move_alias(registry, log, "m", "champion", 4)
    assert _scores(scorer(_tagged([5.0]))) == [5.0]  # still version 1
    assert scorer.followed[0].refused == 1 and scorer.version == "m:1"
    move_alias(registry, log, "m", "champion", 3)
    assert _scores(scorer(_tagged([5.0]))) == [15.0]


def test_a_partition_new_to_the_process_makes_it_read_the_control_topic_first(
    registry: ModelRegistry,
) -> None:
    """Another worker that owned the partition may have switched: reading first keeps the
    partition's versions in the alias's order even between two regular looks."""
    log = MemoryLog()
    scorer = _scorer(registry, log, watch_every_ms=1e9)  # never by time
    assert _scores(scorer(_tagged([1.0], partition=0))) == [1.0]
    move_alias(registry, log, "m", "champion", 2)
    assert _scores(scorer(_tagged([1.0], partition=0))) == [1.0]  # not looked at yet
    out = scorer(_tagged([1.0], partition=0) + _tagged([1.0], partition=3, start=5))
    assert _scores(out) == [2.0, 2.0]  # partition 3 is new here: looked first


def test_workers_of_a_forked_process_start_from_the_registry_then_follow(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    """The scorer built in the parent: a new process reads the alias again on its first batch."""
    import os

    url = f"embedded://{tmp_path}/data"
    scorer = Scorer("m@champion", features=["a"], registry=registry, control=url, watch_every_ms=0)
    registry.set_alias("m", "champion", 3)  # moved without an event (e.g. before a restart)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            first = _scores(scorer(_tagged([1.0])))
            move_alias(registry, url, "m", "champion", 2)
            second = _scores(scorer(_tagged([1.0])))
            os.write(write, orjson.dumps([first, second]))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert orjson.loads(os.read(read, 1000)) == [[3.0], [2.0]]


def test_on_an_unnamed_memory_log_the_alias_is_read_from_the_registry(registry: ModelRegistry) -> None:
    """``memory://`` is a new log at each opening: no one else can publish to it, so the
    registry is the shared truth (within the one process such a log lives in)."""
    scorer = _scorer(registry, "memory://")
    assert _scores(scorer(_tagged([1.0]))) == [1.0]
    registry.set_alias("m", "champion", 3)  # no control event anywhere
    assert _scores(scorer(_tagged([1.0]))) == [3.0]
    assert scorer.followed[0].switches == 1


def test_an_unreadable_control_topic_stops_the_worker_rather_than_guess(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    from eventml.engine import WorkerFailed
    from eventml.ml.inference import ControlUnavailable

    scorer = Scorer("m@champion", features=["a"], registry=registry, control="nowhere://x")
    with pytest.raises(ControlUnavailable, match="cannot read the alias's version"):
        scorer(_tagged([1.0]))
    url = f"embedded://{tmp_path}/data"
    app = App("stops", broker=url)
    app.stream(app.topic("tx")).predict("m@champion", features=["a"], registry=registry,
                                        control="nowhere://x").to(app.topic("out"))
    with open_log(url) as log:
        Worker(app, log=log).close()
        log.append("tx", [Message(b'{"a": 1.0}')])
        with pytest.raises(WorkerFailed, match="cannot read the alias"):
            Worker(app, log=log).run(idle_timeout_s=1.0)
        assert "tx.dlq" not in log.list_topics() or not sum(log.end_offsets("tx.dlq").values())


# -- the checker ---------------------------------------------------------------------------


def _p(event: str, version: int | None, role: str = "primary") -> Prediction:
    return Prediction(event_id=event, model="m", version=version, score=0.0, features={},
                      role=role)  # type: ignore[arg-type]


def _changes(*versions: int) -> list[AliasChange]:
    return [AliasChange("m", "champion", v) for v in versions]


def test_the_checker_follows_the_alias_order_per_partition() -> None:
    events = [(f"e{i}", i % 2, i // 2) for i in range(8)]  # partition 0: e0 e2 e4 e6
    # alias 1 -> 2 -> 1: partition 0 goes 1, 2, 1 (fine); partition 1 skips the 2 (fine)
    preds = [_p("e0", 1), _p("e2", 2), _p("e4", 1), _p("e6", 1),
             _p("e1", 1), _p("e3", 1), _p("e5", 1), _p("e7", 1), _p("e3", 2, "shadow")]
    report = check_predictions(events, preds, _changes(2, 1), initial=1)
    assert report.ok, report.summary()
    assert report.versions == {1: 7, 2: 1} and report.shadow == 1 and report.acted_on == 8
    assert [(s.partition, s.assignment, s.event_id) for s in report.switches] == [
        (0, 0, "e0"), (0, 1, "e2"), (0, 2, "e4"), (1, 0, "e1")]

    # back to an earlier assignment: 1 -> 2 -> 1 is not 2 -> 1 -> 2 when the alias went 1, 2, 1
    bad = check_predictions(events, [_p("e0", 2), _p("e2", 1), _p("e4", 2), _p("e6", 1)]
                            + [_p(f"e{i}", 1) for i in (1, 3, 5, 7)], _changes(2, 1), initial=1)
    assert [(r.event_id, r.version) for r in bad.reverted] == [("e4", 2)]
    assert not bad.ok and "earlier version" in bad.summary()

    odd = check_predictions(events[:2], [_p("e0", 3), _p("e1", 1), _p("e1", 2), _p("x", 1)],
                            _changes(2), initial=1)
    assert odd.unknown_versions == (("e0", 3),)
    assert odd.duplicated == ("e1",) and odd.conflicting == ("e1",) and odd.unexpected == ("x",)
    assert check_predictions(events[:2], [_p("e0", 1)], (), initial=1).missing == ("e1",)
    canary = check_predictions(events[:1], [_p("e0", 9, "canary")], (), initial=1)
    assert canary.ok and canary.acted_on == 1  # acted on, but not the alias's to check


# -- broken setups the checker must catch --------------------------------------------------


class _Crash(BaseException):
    """A process dying at a chosen point (BaseException: nothing catches it on the way)."""


def _pipeline(url: str, registry: ModelRegistry, name: str, *, model: Any = "m@champion",
              **settings: Any) -> App:
    app = App(name, broker=url, max_batch=100, min_batch=100, **settings)
    src = app.topic("tx", partitions=2, key="k")
    app.stream(src).predict(model, features=["a"], registry=registry, predictions="preds",
                            watch_every_ms=0).to(app.topic("out", partitions=2))
    return app


def _input(log: Log, n: int) -> list[tuple[str, int, int]]:
    placed = log.append("tx", [
        Message(orjson.dumps({"a": float(i % 5)}), f"k{i % 11}".encode(),
                (("ce_id", f"e{i}".encode()),)) for i in range(n)])
    return [(f"e{i}", md.partition, md.offset) for i, md in enumerate(placed)]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_crash_between_outputs_and_offsets_duplicates_predictions_only_at_least_once(
    registry: ModelRegistry, tmp_path: Path, guarantee: str
) -> None:
    url = f"embedded://{tmp_path}/data"
    log = open_log(url)
    app = _pipeline(url, registry, f"crash-{guarantee}", guarantee=guarantee)
    Worker(app, log=log).close()
    events = _input(log, 1_000)
    worker = Worker(app, log=log)
    while worker.stats.batches < 3:
        worker.step()
    move_alias(registry, log, "m", "champion", 2)

    def crash(*_: Any, **__: Any) -> None:
        raise _Crash

    if guarantee == "at_least_once":  # outputs committed, offsets never
        worker.consumer.commit = crash  # type: ignore[method-assign]
    else:  # the transaction holds outputs and offsets: dies before its commit
        begin = worker._begin

        def begin_then_die() -> Any:
            txn = begin()
            txn.commit_offsets = crash  # type: ignore[method-assign]
            return txn

        worker._begin = begin_then_die  # type: ignore[method-assign]
    with pytest.raises(_Crash):
        while True:
            worker.step()
    worker.close()  # the process is gone: its partitions are free
    Worker(app, log=log).run(idle_timeout_s=0.5)
    report = check_predictions(events, read_predictions(log, "preds"), alias_changes(log), initial=1)
    if guarantee == "exactly_once":
        report.assert_ok()
    else:
        assert not report.ok and len(report.duplicated) == 100  # the batch done twice
        assert not report.missing and not report.reverted
    log.close()


def test_a_worker_that_does_not_follow_the_alias_reverts_partitions_and_is_caught(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    """A mixed fleet: one worker follows the alias, the next (an old deploy) scores with the
    version it loaded at start; partitions go back to version 1 after version 2."""
    url = f"embedded://{tmp_path}/data"
    log = open_log(url)
    live = _pipeline(url, registry, "fleet")
    stale = _pipeline(url, registry, "fleet", model=registry.load("m@champion"))  # fixed: m/1
    Worker(live, log=log).close()
    events = _input(log, 600)
    worker = Worker(live, log=log)
    while worker.stats.batches < 1:
        worker.step()
    move_alias(registry, log, "m", "champion", 2)
    while worker.stats.batches < 3:
        worker.step()
    worker.close()
    Worker(stale, log=log).run(idle_timeout_s=0.5)
    report = check_predictions(events, read_predictions(log, "preds"), alias_changes(log), initial=1)
    assert not report.ok and report.reverted and not report.duplicated and not report.missing
    assert {r.version for r in report.reverted} == {1}
    log.close()


# -- the benchmark, small --------------------------------------------------------------------


def test_hotswap_bench_embedded_every_event_scored_once_in_alias_order() -> None:
    from eventml.bench.hotswap import run

    # enough events that a flip (published once a quarter is committed) takes effect before
    # the workers run out of input even on a loaded machine (12,000 once finished first)
    n = 40_000
    result = run(None, events=n, flips=3, workers=2, partitions=4, max_batch=300,
                 watch_every_ms=20)
    assert result["ok"], result["checker"]
    assert result["predictions"] == result["outputs"] == n
    assert result["duplicates"] == result["missing"] == result["reverted"] == 0
    assert result["alias_changes"] == 3 and len(result["per_flip"]) == 3
    assert sum(result["versions_used"].values()) == n and len(result["versions_used"]) >= 2


@pytest.mark.kafka
def test_hotswap_bench_on_kafka(kafka_bootstrap: str) -> None:
    from eventml.bench.hotswap import run

    result = run(f"kafka://{kafka_bootstrap}", events=10_000, flips=3, workers=2, partitions=4,
                 max_batch=300, watch_every_ms=20)
    assert result["ok"], result["checker"]
    assert result["predictions"] == result["outputs"] == 10_000
    assert result["duplicates"] == result["missing"] == result["reverted"] == 0
    assert result["alias_changes"] == 3 and len(result["versions_used"]) >= 2


def test_predict_without_a_registry_keeps_fixed_models(registry: ModelRegistry) -> None:
    """A reference resolved by resolve= (no registry) is fixed: nothing is watched."""
    app = App(f"fixed{uuid.uuid4().hex[:6]}", broker="memory://")
    s = predict(app.stream(app.topic("tx")), "m@champion", features=["a"], resolve=registry.load)
    node = next(n for n in app.topology().nodes if n.id == s.node)
    assert isinstance(node.fn, Scorer) and not node.fn.followed and not node.fn.tagged  # type: ignore[attr-defined]
