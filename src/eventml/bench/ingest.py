"""The HTTP ingest benchmark: ``POST /v1/topics/{topic}/events`` through ``eventml serve --auth``.

What :func:`run` does, in a temporary directory:

1. creates a key store with one key scoped ``produce:TOPIC`` and the topic (4
   partitions) on the log (default: an embedded log there, ``durability`` fsync as in
   production, or fast: no fsync per commit, stated in the result), and starts ``eventml serve --auth --keys FILE --broker URL`` as a real
   server process (uvicorn, one process);
2. **single events**: from a separate load-generator process (:mod:`eventml.bench._loadgen`),
   one card transaction (~200 bytes of JSON, ``?key_field=card``, ``Authorization:
   Bearer``) per request at a fixed open-loop ``rate`` for ``warmup_s + duration_s``
   seconds; latency from each request's due time to its answer's last byte, the first
   ``warmup_s`` seconds not counted;
3. **batches**: ``events`` transactions in requests of ``batch``, closed loop over
   ``batch_connections`` connections, as fast as the server answers: events/s and
   request latency;
4. **baseline**: the same transactions, turned into the records the server writes,
   appended in this process with ``log.append`` in batches of ``batch`` to a topic of
   their own (events/s), and ``log.append`` of one record per call (latency): what the
   log itself costs, in the same run.

After phases 2 and 3 the topic's end offsets must have grown by exactly the events the
server acknowledged (202 answers, entries with ``"duplicate": false``), and, when every
request was accepted, by every event sent: no loss, no duplicates (:func:`check_counts`).

Targets (issue 7): ≥ 20,000 events/s in batches; p99 ≤ 5 ms for single events at
1,000 requests/s, no errors.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from eventml.bench._loadgen import Server, percentiles_ms
from eventml.bench._timing import BenchmarkError
from eventml.bench.report import print_overall

DURABILITIES = {"fsync": "fsync: synchronous=FULL, acknowledged = on disk",
                "fast": "fast: synchronous=NORMAL, no fsync per commit"}
"""The temporary embedded log's durability (``embedded://PATH?durability=``)."""
TARGET_EPS = 20_000.0
TARGET_P99_MS = 5.0
TOPIC = "bench-ingest-tx"
PARTITIONS = 4
ACKNOWLEDGED = b'"duplicate":false'  # one per event the server appended, in a 202 answer
_SINGLE_BASELINE_CALLS = 2_000
_CHANNELS = ("online", "pos", "atm", "moto")
_COUNTRIES = ("DE", "FR", "NL", "ES", "IT", "US", "GB", "PL")


def transactions(n: int, seed: int, start: int = 0) -> list[dict[str, Any]]:
    """``n`` card transactions, ~200 bytes of JSON each."""
    rng = random.Random(seed * 1_000_003 + start)
    t0 = 1_767_225_600_000 + start * 50
    return [{"card": f"c{rng.randrange(20_000):05d}", "ts": t0 + i * 50,
             "amount": round(rng.uniform(1, 500), 2), "currency": "EUR",
             "merchant": f"m{rng.randrange(300):04d}", "mcc": f"{rng.randrange(5000, 6000)}",
             "country": rng.choice(_COUNTRIES), "channel": rng.choice(_CHANNELS),
             "device": f"d-{rng.randrange(10**7):07d}", "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.7",
             "entry_mode": "chip"} for i in range(n)]


def check_counts(before: Mapping[int, int], after: Mapping[int, int], acknowledged: int,
                 sent: int | None = None) -> dict[str, Any]:
    """Whether the topic's end offsets grew by exactly the ``acknowledged`` events (and,
    when given, every one of the ``sent`` events was acknowledged)."""
    appended = sum(after.values()) - sum(before.values())
    ok = appended == acknowledged and (sent is None or acknowledged == sent)
    return {"sent": sent, "acknowledged": acknowledged, "appended": appended, "ok": ok}


# -- the run -------------------------------------------------------------------------------


def run(
    *,
    events: int = 200_000,
    rate: float = 1000.0,
    duration_s: float = 10.0,
    warmup_s: float = 1.0,
    batch: int = 500,
    connections: int = 16,
    batch_connections: int = 4,
    broker: str | None = None,
    durability: str = "fsync",
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    if durability not in DURABILITIES:
        raise BenchmarkError(f"durability must be one of {', '.join(DURABILITIES)}, got {durability!r}")
    if broker is not None and durability != "fsync":
        raise BenchmarkError("the durability is the temporary embedded log's: with a broker, put "
                             "?durability=fast in its URL instead")
    if (events < 1 or rate <= 0 or duration_s <= 0 or warmup_s < 0 or batch < 1 or connections < 1
            or batch_connections < 1):
        raise BenchmarkError("events, rate, duration, batch and connections must be positive, warmup >= 0")
    if broker is not None and broker.startswith("memory:"):
        raise BenchmarkError("the server is another process: give an embedded:// or kafka:// log, "
                             "not memory://")
    say = progress or (lambda _msg: None)
    import eventml.api.ingest  # noqa: F401 - the baseline needs it: fail before any work if it cannot load
    from eventml.log import TopicSpec, open_log
    from eventml.security import KeyStore

    singles = int(rate * (warmup_s + duration_s))
    with tempfile.TemporaryDirectory(prefix="eventml-bench-ingest-") as tmp:
        url = broker or f"embedded://{tmp}/data?durability={durability}"
        topic = TOPIC if broker is None else f"{TOPIC}-{uuid.uuid4().hex[:8]}"  # leaves others' topics be
        keys_file = Path(tmp) / "keys.sqlite"
        token, _ = KeyStore(keys_file).create("bench-ingest", [f"produce:{topic}"])
        with open_log(url) as log:
            log.create_topic(TopicSpec(topic, PARTITIONS))
            args = ["--auth", "--keys", str(keys_file), "--broker", url, "--log-level", "warning"]
            say("starting eventml serve --auth")
            with Server(tmp, args) as server:
                path = f"/v1/topics/{topic}/events?key_field=card"
                one = [_post(server.host, path, token, orjson.dumps(tx))
                       for tx in transactions(singles, seed)]
                say(f"single events: {rate:,.0f} requests/s for {warmup_s:g} + {duration_s:g} s")
                single = _phase(log, topic, server, one, [1] * len(one), rate=rate,
                                warmup_s=warmup_s, duration_s=duration_s, connections=connections)
                batched_tx = transactions(events, seed, start=singles)
                sizes = [len(batched_tx[i:i + batch]) for i in range(0, events, batch)]
                many = [_post(server.host, path, token, orjson.dumps(batched_tx[i:i + batch]))
                        for i in range(0, events, batch)]
                say(f"batches: {events:,} events, {batch} per request, {batch_connections} connections")
                batched = _phase(log, topic, server, many, sizes, rate=None,
                                 connections=batch_connections, limit_s=max(600.0, events / 500))
                batched["events_per_s"] = round(batched["counts"]["acknowledged"]
                                                / batched["http"]["elapsed_s"])
                cpu = batched["http"]["server_cpu_us_per_request"]
                batched["server_cpu_us_per_event"] = None if cpu is None else round(cpu / batch, 1)
            say("baseline: the same events appended in this process")
            baseline = _baseline(log, f"{topic}-baseline", batched_tx, batch,
                                 min(_SINGLE_BASELINE_CALLS, singles))
    eps = batched["events_per_s"]
    result: dict[str, Any] = {
        "benchmark": "ingest",
        "broker": broker or f"embedded (temporary directory, {DURABILITIES[durability]})",
        "settings": {"events": events, "rate": rate, "duration_s": duration_s, "warmup_s": warmup_s,
                     "batch": batch, "connections": connections, "batch_connections": batch_connections,
                     "partitions": PARTITIONS, "event_bytes": len(orjson.dumps(batched_tx[0])),
                     "durability": None if broker else durability,
                     "server": "eventml serve --auth (uvicorn, 1 process)", "cpus": os.cpu_count()},
        "single": single,
        "batched": batched,
        "baseline": baseline,
        "ratio": round(eps / baseline["append_eps"], 3) if baseline["append_eps"] else None,
    }
    result["targets"] = _targets(result)
    return result


def _post(host: str, path: str, token: str, body: bytes) -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("ascii") + body


def _phase(log: Any, topic: str, server: Server, requests: Sequence[bytes], sizes: Sequence[int], *,
           rate: float | None, connections: int, warmup_s: float = 0.0, duration_s: float = 0.0,
           limit_s: float | None = None) -> dict[str, Any]:
    """One load-generator run and the count check on the topic around it."""
    before = log.end_offsets(topic)
    load_before = _load_average()
    http = server.drive(requests, rate=rate, warmup_s=warmup_s, duration_s=duration_s,
                        connections=connections, ok_status=202, count=ACKNOWLEDGED,
                        limit_s=limit_s or warmup_s + duration_s + 120)
    after = log.end_offsets(topic)
    http["load_average"] = [load_before, _load_average()]  # the machine's, 1 min, around the phase
    sent_requests = len(requests) if rate is None else min(len(requests), int(rate * (warmup_s + duration_s)))
    all_ok = http["ok_total"] == sent_requests
    counts = check_counts(before, after, http.pop("acknowledged"),
                          sum(sizes[:sent_requests]) if all_ok else None)
    return {"http": http, "counts": counts}


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _baseline(log: Any, topic: str, txs: list[dict[str, Any]], batch: int, single_calls: int,
              ) -> dict[str, Any]:
    """``log.append`` of the records the server would write, in batches and one by one."""
    from eventml.api.ingest import INGEST_TIME_HEADER, PRODUCER_HEADER, SOURCE
    from eventml.events import to_message
    from eventml.events.jsonlines import LineOptions, plain_event
    from eventml.log import TopicSpec

    log.create_topic(TopicSpec(topic, PARTITIONS))
    options = LineOptions(type=topic, source=SOURCE, key_field="card")
    owned = ((INGEST_TIME_HEADER, b"1767225600000"), (PRODUCER_HEADER, b"bench"))
    t0 = time.perf_counter()
    messages = [to_message(plain_event(tx, options)) for tx in txs]
    messages = [m._replace(headers=(*m.headers, *owned)) for m in messages]
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, len(messages), batch):
        log.append(topic, messages[i:i + batch])
    append_s = time.perf_counter() - t0
    lat = np.empty(single_calls)
    clock = time.perf_counter
    for i in range(single_calls):
        start = clock()
        log.append(topic, [messages[i]])
        lat[i] = clock() - start
    return {
        "events": len(messages), "batch": batch,
        "append_eps": round(len(messages) / append_s) if append_s else None,
        "build_and_append_eps": round(len(messages) / (build_s + append_s)),
        "build_us_per_event": round(build_s / len(messages) * 1e6, 2),
        "single_append": {"calls": single_calls, **percentiles_ms(lat * 1000)},
    }


def _targets(result: Mapping[str, Any]) -> dict[str, Any]:
    s = result["settings"]
    single = result["single"]["http"]
    p99 = single["p99_ms"]
    p99_met = p99 is not None and p99 <= TARGET_P99_MS and single["errors"] == 0 \
        and single["achieved_rate"] >= 0.99 * s["rate"]
    eps = result["batched"]["events_per_s"]
    counts_ok = result["single"]["counts"]["ok"] and result["batched"]["counts"]["ok"]
    return {
        "at_target_scale": s["rate"] >= 1000 and s["duration_s"] >= 10 and s["events"] >= 200_000,
        "single_p99_ms": {"target": TARGET_P99_MS, "value": p99, "met": p99_met},
        "batched_eps": {"target": TARGET_EPS, "value": eps, "met": eps >= TARGET_EPS},
        "counts": {"met": counts_ok},
        "met": p99_met and eps >= TARGET_EPS and counts_ok,
    }


# -- the report ----------------------------------------------------------------------------------


def render_ingest_table(result: Mapping[str, Any], console: Console) -> None:
    s = result["settings"]
    single, batched, base = result["single"], result["batched"], result["baseline"]

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f} ms"

    def lat(p: Mapping[str, Any]) -> str:
        return f"{ms(p['p50_ms'])} / {ms(p['p99_ms'])} / {ms(p['p999_ms'])} / {ms(p['max_ms'])}"

    def counts(c: Mapping[str, Any]) -> str:
        verdict = "[green]ok[/]" if c["ok"] else "[red]MISMATCH[/]"
        return f"{c['appended']:,} appended, {c['acknowledged']:,} acknowledged {verdict}"

    table = Table(title=f"eventml serve --auth: HTTP ingest, {s['event_bytes']}-byte events, "
                        f"{s['partitions']} partitions, {result['broker']}")
    table.add_column("")
    table.add_column(f"single events, {s['rate']:,.0f} req/s open loop, {s['connections']} conns",
                     justify="right")
    table.add_column(f"batches of {s['batch']}, closed loop, {s['batch_connections']} conns",
                     justify="right")
    table.add_column("in-process log.append (baseline)", justify="right")
    sh, bh, sa = single["http"], batched["http"], base["single_append"]
    table.add_row("events/s", f"{sh['achieved_rate']:,.0f}", f"{batched['events_per_s']:,.0f}",
                  f"{base['append_eps']:,} (batches of {base['batch']})")
    table.add_row("requests/s", f"{sh['achieved_rate']:,.0f}", f"{bh['achieved_rate']:,.1f}", "")
    table.add_row("p50 / p99 / p99.9 / max", lat(sh), lat(bh), f"{lat(sa)} (1 event per call)")
    table.add_row("errors", f"{sh['errors']:,} of {sh['requests']:,}", f"{bh['errors']:,} of {bh['requests']:,}",
                  "")
    table.add_row("server CPU per request", f"{sh['server_cpu_us_per_request']} µs",
                  f"{bh['server_cpu_us_per_request']} µs ({batched['server_cpu_us_per_event']} µs/event)", "")
    table.add_row("count check", counts(single["counts"]), counts(batched["counts"]), "")
    console.print(table)
    ratio = result["ratio"]
    console.print(f"batched HTTP / in-process append: {'-' if ratio is None else f'{ratio:.2f}'}; "
                  f"building the records in process: {base['build_us_per_event']} µs/event "
                  f"({base['build_and_append_eps']:,} events/s with the append)")
    console.print(f"load generator (single): send lag p99 {ms(sh['send_lag_p99_ms'])}, service time "
                  f"p99 {ms(sh['service_p99_ms'])}, at most {sh['max_in_flight']} requests in flight, "
                  f"{sh.get('loadgen_cpu_us_per_request')} µs CPU a request")
    console.print(f"machine load average (1 min) before / after: single {sh['load_average']}, "
                  f"batched {bh['load_average']} ({s['cpus']} CPUs; other processes' load skews latency)")
    t = result["targets"]
    scale = "" if t["at_target_scale"] else " (below the target scale: --rate 1000 --duration 10 --events 200000)"
    for label, target, fmt in (("single-event p99 <=", t["single_p99_ms"], ms),
                               ("batched events/s >=", t["batched_eps"], lambda v: f"{v:,.0f}")):
        verdict = "[green]met[/]" if target["met"] else "[red]MISSED[/]"
        console.print(f"target {label} {fmt(target['target'])}: {fmt(target['value'])} {verdict}{scale}")
    print_overall(console, t["met"])
