"""One trace from HTTP ingest to the alert: the request's traceparent, the ingest span,
the worker's process span(s), the alert's ``ce_traceparent``, all in one trace with the
right parents (OpenTelemetry SDK's in-memory exporter)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from eventml.api import create_app
from eventml.engine import App, Worker
from eventml.engine.items import Effects
from eventml.log import ConsumerConfig, Log, Record, TopicPartition, open_log
from eventml.observe import tracing
from eventml.observe.tracing import TRACEPARENT_HEADER, header_context, parse_traceparent
from eventml.security import KeyStore

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(exporter, batch=False)
    try:
        yield exporter
    finally:
        tracing.disable()


@dataclass
class Pipeline:
    url: str
    log: Log
    app: App
    client: TestClient
    headers: dict[str, str]

    def post(self, value: dict[str, Any], **headers: str) -> str:
        """POST one event to the input topic; its id."""
        r = self.client.post(f"/v1/topics/{self.app.name}-payments/events", json=value,
                             headers={**self.headers, **headers})
        assert r.status_code == 202, r.text
        return str(r.json()["events"][0]["id"])

    def run(self) -> Worker:
        worker = Worker(self.app)
        worker.run(idle_timeout_s=0.5)
        return worker

    def alerts(self) -> dict[str, Record]:
        """The alert records by event id."""
        return {dict(r.headers)["ce_id"].decode(): r for r in read_all(self.log, f"{self.app.name}-alerts")}


def read_all(log: Log, topic: str) -> list[Record]:
    c = log.consumer(f"r{uuid.uuid4().hex[:8]}", [topic], config=ConsumerConfig(auto_offset_reset="earliest"))
    ends = {TopicPartition(topic, p): o for p, o in log.end_offsets(topic).items()}
    out: list[Record] = []
    try:
        for _ in range(100):
            out += c.poll(1000, 0.05)
            if len(c.assignment()) == len(ends) and all(c.position(tp) >= ends[tp] for tp in c.assignment()):
                break
    finally:
        c.close()
    return out


def _score(v: dict[str, Any]) -> dict[str, Any]:
    return {**v, "score": v["amount"] / 1000}


def build(url: str, name: str, *, repartition: bool) -> App:
    """payments → score → (key_by card →) keep score > 0.5 → alerts."""
    app = App(name, broker=url, auto_offset_reset="earliest")
    src = app.topic(f"{name}-payments", partitions=2)
    out = app.topic(f"{name}-alerts", partitions=2)
    stream = app.stream(src).map(_score)
    if repartition:
        stream = stream.key_by("card", partitions=2)
    stream.filter(lambda v: v["score"] > 0.5).to(out)
    return app


def make_pipeline(tmp_path: Path, url: str, *, repartition: bool = False) -> Iterator[Pipeline]:
    name = f"tr{uuid.uuid4().hex[:6]}"
    app = build(url, name, repartition=repartition)
    Worker(app).close()  # creates the topics
    keys = KeyStore(tmp_path / "keys.sqlite")
    token, _ = keys.create("loadgen", [f"produce:{name}-payments"])
    log = open_log(url)
    try:
        with TestClient(create_app(log=log, keys=keys)) as client:
            yield Pipeline(url, log, app, client, {"Authorization": f"Bearer {token}"})
    finally:
        log.close()
        keys.close()


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[Pipeline]:
    yield from make_pipeline(tmp_path, f"embedded://{tmp_path}/data")


def trace_problems(finished: list[ReadableSpan], alert: Record, caller: str, topics: list[str],
                   ) -> list[str]:
    """Why ``alert`` and the spans are not ONE trace descending from the ``caller``'s
    traceparent through ``ingest TOPIC`` then ``process T`` for each topic ``T`` of
    ``topics`` in order (empty: they are)."""
    problems: list[str] = []
    parent = parse_traceparent(caller)
    assert parent is not None
    ctx = header_context(alert.headers)
    if ctx is None:
        return [f"the alert carries no {TRACEPARENT_HEADER}"]
    if ctx.parent.trace_id != parent.trace_id:
        problems.append(f"the alert is in trace {ctx.parent.trace_id}, not {parent.trace_id}")
    mine = [s for s in finished if s.context is not None and f"{s.context.trace_id:032x}" == parent.trace_id]
    by_id = {f"{s.context.span_id:016x}": s for s in mine if s.context is not None}
    # walk up from the alert's parent span to the caller's
    chain: list[ReadableSpan] = []
    at = ctx.parent.parent_id
    while at in by_id:
        span = by_id[at]
        chain.append(span)
        at = f"{span.parent.span_id:016x}" if span.parent is not None else ""
    if at != parent.parent_id:
        problems.append(f"the chain of parents from the alert ends at {at or 'a root'}, "
                        f"not the caller's span {parent.parent_id}")
    expected = [(f"process {t}", SpanKind.CONSUMER) for t in reversed(topics)]
    expected.append((f"ingest {topics[0]}", SpanKind.PRODUCER))
    got = [(s.name, s.kind) for s in chain]
    if got != expected:
        problems.append(f"spans from the alert up: {got}, expected {expected}")
    if len(mine) != len(chain):
        problems.append(f"{len(mine) - len(chain)} span(s) of the trace are off the alert's chain")
    for s in chain:
        if s.status.status_code == StatusCode.ERROR:
            problems.append(f"span {s.name} failed: {s.status.description}")
    return problems


def test_an_ingested_event_and_its_alert_are_one_trace(
    pipeline: Pipeline, spans: InMemorySpanExporter
) -> None:
    traced = pipeline.post({"amount": 900, "card": "c1"}, traceparent=TRACEPARENT, tracestate="vendor=abc")
    untraced = pipeline.post({"amount": 950, "card": "c2"})
    quiet = pipeline.post({"amount": 10, "card": "c3"}, traceparent=f"00-{'1' * 32}-{'2' * 16}-01")
    ingest_spans = list(spans.get_finished_spans())
    assert [s.name for s in ingest_spans] == [f"ingest {pipeline.app.name}-payments"] * 2
    assert {s.kind for s in ingest_spans} == {SpanKind.PRODUCER}
    pipeline.run()
    alerts = pipeline.alerts()
    assert set(alerts) == {traced, untraced}  # the quiet payment scores 0.01: no alert
    finished = list(spans.get_finished_spans())
    assert trace_problems(finished, alerts[traced], TRACEPARENT, [f"{pipeline.app.name}-payments"]) == []
    # the vendor's tracestate travels with the context
    assert dict(alerts[traced].headers)["ce_tracestate"] == b"vendor=abc"
    # the event without a traceparent: no header on its alert, no span anywhere
    assert TRACEPARENT_HEADER not in dict(alerts[untraced].headers)
    assert untraced not in {s.attributes.get("messaging.message.id") for s in finished if s.attributes}
    # the filtered-out traced event still got its process span (child of its ingest span)
    process = [s for s in finished if s.name.startswith("process")]
    assert sorted(str((s.attributes or {})["messaging.message.id"]) for s in process) == sorted([traced, quiet])
    ingest = {f"{s.context.span_id:016x}": s for s in finished if s.name.startswith("ingest") and s.context}
    for s in process:
        assert s.parent is not None and f"{s.parent.span_id:016x}" in ingest
        attrs = s.attributes or {}
        assert attrs["messaging.destination.name"] == f"{pipeline.app.name}-payments"
        assert attrs["messaging.consumer.group.name"] == pipeline.app.name
        assert attrs["messaging.system"] == "eventml"
    assert len(finished) == 4  # 2 ingest + 2 process: nothing for the untraced event


def test_the_checker_catches_a_worker_that_drops_the_trace(
    pipeline: Pipeline, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    traced = pipeline.post({"amount": 900, "card": "c1"}, traceparent=TRACEPARENT)
    monkeypatch.setattr(Effects, "trace_outputs", lambda *a: None)  # outputs lose the headers
    pipeline.run()
    alert = pipeline.alerts()[traced]
    assert trace_problems(list(spans.get_finished_spans()), alert, TRACEPARENT,
                          [f"{pipeline.app.name}-payments"]) == [f"the alert carries no {TRACEPARENT_HEADER}"]


def test_the_checker_catches_a_broken_chain(pipeline: Pipeline, spans: InMemorySpanExporter) -> None:
    """An alert whose traceparent has the right trace id but skips the process span
    (a worker forwarding its input's header unchanged) is caught too."""
    traced = pipeline.post({"amount": 900, "card": "c1"}, traceparent=TRACEPARENT)
    tracing.disable()  # the worker runs without tracing: headers are not rewritten
    pipeline.run()
    alert = pipeline.alerts()[traced]
    forged = alert._replace(headers=(*alert.headers, (TRACEPARENT_HEADER, TRACEPARENT.encode())))
    problems = trace_problems(list(spans.get_finished_spans()), forged, TRACEPARENT,
                              [f"{pipeline.app.name}-payments"])
    assert any("spans from the alert up" in p for p in problems), problems


def test_a_repartitioned_pipeline_is_still_one_trace(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    for p in make_pipeline(tmp_path, f"embedded://{tmp_path}/data", repartition=True):
        traced = p.post({"amount": 900, "card": "c1"}, traceparent=TRACEPARENT)
        p.run()
        topics = [f"{p.app.name}-payments", f"{p.app.name}-keyby-3-repartition"]
        assert topics[1] in p.app.topology().describe()
        assert trace_problems(list(spans.get_finished_spans()), p.alerts()[traced], TRACEPARENT, topics) == []


def test_a_structured_cloudevent_carries_its_own_traceparent(
    pipeline: Pipeline, spans: InMemorySpanExporter
) -> None:
    """The CloudEvent's ``traceparent`` attribute wins over the request's header."""
    own = f"00-{'a' * 32}-{'b' * 16}-01"
    event = {"specversion": "1.0", "id": "ev-1", "source": "/pos", "type": "payment",
             "traceparent": own, "data": {"amount": 800, "card": "c9"}}
    r = pipeline.client.post(f"/v1/topics/{pipeline.app.name}-payments/events", json=event,
                             headers={**pipeline.headers, "Content-Type": "application/cloudevents+json",
                                      "traceparent": TRACEPARENT})
    assert r.status_code == 202, r.text
    pipeline.run()
    assert trace_problems(list(spans.get_finished_spans()), pipeline.alerts()["ev-1"], own,
                          [f"{pipeline.app.name}-payments"]) == []


def test_without_tracing_the_request_context_is_forwarded_unchanged(pipeline: Pipeline) -> None:
    assert tracing.current() is None
    traced = pipeline.post({"amount": 900, "card": "c1"}, traceparent=TRACEPARENT)
    plain = pipeline.post({"amount": 900, "card": "c1"}, traceparent="00-not-a-traceparent")
    records = {dict(r.headers)["ce_id"].decode(): r for r in
               read_all(pipeline.log, f"{pipeline.app.name}-payments")}
    assert dict(records[traced].headers)[TRACEPARENT_HEADER] == TRACEPARENT.encode()
    assert TRACEPARENT_HEADER not in dict(records[plain].headers)
    pipeline.run()  # a worker without tracing adds nothing
    assert TRACEPARENT_HEADER not in dict(pipeline.alerts()[traced].headers)


def test_a_binary_mode_cloudevent_keeps_its_ce_traceparent(pipeline: Pipeline) -> None:
    own = f"00-{'c' * 32}-{'d' * 16}-00"
    r = pipeline.client.post(f"/v1/topics/{pipeline.app.name}-payments/events",
                             content=b'{"amount": 5, "card": "c1"}',
                             headers={**pipeline.headers, "Content-Type": "application/json",
                                      "ce-specversion": "1.0", "ce-id": "bin-1", "ce-source": "/pos",
                                      "ce-type": "payment", "ce-traceparent": own,
                                      "traceparent": TRACEPARENT})
    assert r.status_code == 202, r.text
    (record,) = read_all(pipeline.log, f"{pipeline.app.name}-payments")
    assert dict(record.headers)[TRACEPARENT_HEADER] == own.encode()  # the event's own wins


def test_a_failed_append_fails_the_ingest_span(pipeline: Pipeline, spans: InMemorySpanExporter,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from eventml.log import LogError

    def refuse(*a: Any, **k: Any) -> Any:
        raise LogError("disk full")

    monkeypatch.setattr(type(pipeline.log), "append", refuse)
    r = pipeline.client.post(f"/v1/topics/{pipeline.app.name}-payments/events", json={"amount": 1},
                             headers={**pipeline.headers, "traceparent": TRACEPARENT})
    assert r.status_code == 503
    (span,) = spans.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.parent is not None and f"{span.parent.span_id:016x}" == CALLER_SPAN


@pytest.mark.kafka
def test_one_trace_through_kafka_exactly_once(
    tmp_path: Path, kafka_bootstrap: str, spans: InMemorySpanExporter
) -> None:
    """Headers survive Kafka's EOS path (transactional produce, offsets in the transaction)."""
    for p in make_pipeline(tmp_path, f"kafka://{kafka_bootstrap}"):
        traced = p.post({"amount": 900, "card": "c1"}, traceparent=TRACEPARENT)
        worker = Worker(p.app)
        assert worker.eos
        worker.run(idle_timeout_s=3.0)
        finished = list(spans.get_finished_spans())
        assert trace_problems(finished, p.alerts()[traced], TRACEPARENT, [f"{p.app.name}-payments"]) == []
        (process,) = [s for s in finished if s.name.startswith("process")]
        assert (process.attributes or {})["messaging.system"] == "kafka"



def test_every_operator_passes_on_its_input_trace(spans: InMemorySpanExporter) -> None:
    """flat_map, map_batch, window results and late events each carry the context of the
    process span of the input record they came from (each input its own trace)."""
    from eventml.log import Message
    from eventml.windows import Count, Tumbling

    url = f"memory://{uuid.uuid4().hex[:8]}"
    app = App(f"ops{uuid.uuid4().hex[:6]}", broker=url, auto_offset_reset="earliest")
    src = app.topic(f"{app.name}-in")
    late = app.topic(f"{app.name}-late")
    s = app.stream(src)
    s.flat_map(lambda v: [v, v]).to(f"{app.name}-flat")
    s.map_batch(lambda vs: [{**v, "b": 1} for v in vs]).to(f"{app.name}-batch")
    s.window(Tumbling(size_ms=10_000), emit="update", late_to=late).aggregate(Count()).to(f"{app.name}-win")
    times = [1_000, 2_000, 30_000, 1_500]  # the last is late: its window closed at 30 s
    log = open_log(url)
    try:
        Worker(app).close()
        log.append(src.name, [
            Message(b"{}", b"k", (("ce_id", f"in-{i}".encode()),
                                  (TRACEPARENT_HEADER, f"00-{i + 1:032x}-{i + 1:016x}-01".encode())), t)
            for i, t in enumerate(times)])
        Worker(app).run(idle_timeout_s=0.3)
        finished = list(spans.get_finished_spans())
        process = {str((s.attributes or {})["messaging.message.id"]): s for s in finished}
        assert sorted(process) == [f"in-{i}" for i in range(4)]

        def source_of(event_id: str) -> str:
            return next(f"in-{i}" for i in range(4) if event_id.split("#")[0].endswith(f"in-{i}"))

        seen = {}
        for suffix in ("flat", "batch", "win", "late"):
            records = read_all(log, f"{app.name}-{suffix}")
            assert records, suffix
            for r in records:
                ctx = header_context(r.headers)
                assert ctx is not None, (suffix, r.headers)
                span = process[source_of(dict(r.headers)["ce_id"].decode())]
                assert span.context is not None
                assert (ctx.parent.trace_id, ctx.parent.parent_id) == (
                    f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"), suffix
            seen[suffix] = len(records)
        assert seen == {"flat": 8, "batch": 4, "win": 3, "late": 1}
    finally:
        log.close()


def test_the_fraud_demo_alert_is_one_trace_with_its_http_ingest(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    """The fraud demo's app (its model's threshold at 0: every transaction alerts)."""
    from dataclasses import replace

    from eventml.demos.fraud import train_demo_model
    from eventml.demos.fraud.app import fraud_app

    model = train_demo_model(seed=7, history_events=5_000)
    model = replace(model, threshold=replace(model.threshold, value=0.0))
    url = f"embedded://{tmp_path}/data"
    name = f"fraud{uuid.uuid4().hex[:6]}"
    app = fraud_app(model, name=name, broker=url, transactions=f"{name}-tx", alerts=f"{name}-alerts",
                    velocity=f"{name}-velocity", partitions=2, auto_offset_reset="earliest")
    Worker(app).close()
    keys = KeyStore(tmp_path / "keys.sqlite")
    token, _ = keys.create("pos", [f"produce:{name}-tx"])
    log = open_log(url)
    try:
        with TestClient(create_app(log=log, keys=keys)) as client:
            tx = {"card_id": "card-1", "merchant_id": "m-9", "category": "electronics", "amount": 2400.0,
                  "lat": 40.71, "lon": -74.0}
            r = client.post(f"/v1/topics/{name}-tx/events", json=tx,
                            headers={"Authorization": f"Bearer {token}", "traceparent": TRACEPARENT})
            assert r.status_code == 202, r.text
            event_id = r.json()["events"][0]["id"]
        Worker(app).run(idle_timeout_s=0.5)
        (alert,) = read_all(log, f"{name}-alerts")
        assert dict(alert.headers)["ce_id"].decode() == event_id
        assert trace_problems(list(spans.get_finished_spans()), alert, TRACEPARENT, [f"{name}-tx"]) == []
    finally:
        log.close()
        keys.close()
