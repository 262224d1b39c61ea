"""The schema validation benchmark: what checking a JSON event against its schema costs.

One run times, per event, on a pool of realistic ~200-byte card transactions:

1. ``loads``: ``orjson.loads`` alone (the raw baseline: decoding without checking);
2. ``loads_validate``: ``orjson.loads`` plus the compiled validator of
   :mod:`eventml.schema.json_schema` (the hot path; target <= 10 µs per event);
3. ``loads_jsonschema``: ``orjson.loads`` plus jsonschema's ``Draft7Validator.is_valid``
   (the interpreted alternative, for comparison);
4. ``invalid_validate``: ``orjson.loads`` plus the compiled validator on invalid events,
   which also builds the error messages (the dead-letter path);
5. ``avro_decode``: fastavro's schemaless decode of the same record in Avro binary
   (another raw baseline: what the Avro format costs to decode).

The slower measurements (3 and 4) run on a tenth of the events. Times are
``time.perf_counter`` over the whole loop, after a warm-up, with garbage collection off.
"""

from __future__ import annotations

import gc
import io
import os
import platform
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from eventml.bench._timing import BenchmarkError

#: per-event target for decoding and validating a ~200-byte event (design goal)
TARGET_US = 10.0
_POOL = 256
_WARMUP = 1_000

EVENT_SCHEMA: Mapping[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "CardTransaction",
    "type": "object",
    "properties": {
        "id": {"type": "string", "minLength": 1, "maxLength": 64},
        "card": {"type": "string", "pattern": "^[0-9]{4}$"},
        "amount": {"type": "number", "minimum": 0, "maximum": 1_000_000},
        "currency": {"type": "string", "enum": ["EUR", "USD", "GBP", "JPY", "CHF"]},
        "merchant": {"type": "string", "maxLength": 64},
        "category": {"type": "string"},
        "country": {"type": "string", "minLength": 2, "maxLength": 2},
        "channel": {"type": "string", "enum": ["pos", "ecom", "atm"]},
        "card_present": {"type": "boolean"},
        "ts": {"type": "integer", "minimum": 0},
    },
    "required": ["id", "card", "amount", "currency", "merchant", "country", "ts"],
    "additionalProperties": False,
}

AVRO_SCHEMA: Mapping[str, Any] = {
    "type": "record",
    "name": "CardTransaction",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "card", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "currency", "type": "string"},
        {"name": "merchant", "type": "string"},
        {"name": "category", "type": "string"},
        {"name": "country", "type": "string"},
        {"name": "channel", "type": "string"},
        {"name": "card_present", "type": "boolean"},
        {"name": "ts", "type": "long"},
    ],
}

_MERCHANTS = [
    "Grocery Store 17",
    "Coffee Corner",
    "Fuel Station A9",
    "Online Books Ltd",
    "City Pharmacy",
]
_CATEGORIES = ["groceries", "restaurants", "fuel", "books", "health"]


def sample_events(count: int = _POOL, seed: int = 20240611) -> list[dict[str, Any]]:
    """Valid card transactions, about 200 bytes each as JSON."""
    rng = random.Random(seed)
    return [
        {
            "id": f"{rng.getrandbits(128):032x}",
            "card": f"{rng.randrange(10_000):04d}",
            "amount": round(rng.uniform(1, 2_000), 2),
            "currency": rng.choice(["EUR", "USD", "GBP"]),
            "merchant": rng.choice(_MERCHANTS),
            "category": rng.choice(_CATEGORIES),
            "country": rng.choice(["DE", "FR", "NL", "GB", "US"]),
            "channel": rng.choice(["pos", "ecom", "atm"]),
            "card_present": rng.random() < 0.7,
            "ts": 1_718_000_000_000 + rng.randrange(86_400_000),
        }
        for _ in range(count)
    ]


def invalid_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same events, each broken one way (bad amount, currency, card, or an extra field)."""
    breaks: list[Callable[[dict[str, Any]], None]] = [
        lambda e: e.update(amount=-1),
        lambda e: e.update(currency="XXX"),
        lambda e: e.update(card="42a2"),
        lambda e: e.update(unexpected=True),
    ]
    out = []
    for i, event in enumerate(events):
        broken = dict(event)
        breaks[i % len(breaks)](broken)
        out.append(broken)
    return out


def run(events: int = 200_000) -> dict[str, Any]:
    """Time decoding and validating ``events`` JSON events (see the module docstring)."""
    if events < 1:
        raise BenchmarkError(f"events must be >= 1, got {events}")
    import fastavro
    from jsonschema import Draft7Validator

    from eventml.schema.json_schema import parse

    schema = parse(orjson.dumps(EVENT_SCHEMA).decode())
    validate = schema.validator()
    reference = Draft7Validator(dict(EVENT_SCHEMA))
    good = sample_events()
    bad = invalid_events(good)
    raw_good = [orjson.dumps(e) for e in good]
    raw_bad = [orjson.dumps(e) for e in bad]
    failures = [e for e in good if validate(e)]
    if failures:
        raise BenchmarkError(f"the validator rejects a valid event: {validate(failures[0])}")
    errors = [validate(e) for e in bad]
    if not all(errors):
        raise BenchmarkError("the validator accepts an invalid event")

    avro_schema = fastavro.parse_schema(dict(AVRO_SCHEMA))
    raw_avro = []
    for event in good:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, avro_schema, event)
        raw_avro.append(buffer.getvalue())

    def loads(raw: bytes) -> Any:
        return orjson.loads(raw)

    def loads_validate(raw: bytes) -> Any:
        return validate(orjson.loads(raw))

    def loads_jsonschema(raw: bytes) -> Any:
        return reference.is_valid(orjson.loads(raw))

    def avro_decode(raw: bytes) -> Any:
        return fastavro.schemaless_reader(io.BytesIO(raw), avro_schema, None)

    slow = max(1, events // 10)
    results = {
        "loads": _time(loads, raw_good, events),
        "loads_validate": _time(loads_validate, raw_good, events),
        "loads_jsonschema": _time(loads_jsonschema, raw_good, slow),
        "invalid_validate": _time(loads_validate, raw_bad, slow),
        "avro_decode": _time(avro_decode, raw_avro, events),
    }
    hot = results["loads_validate"]["us_per_event"]
    check = {"max": TARGET_US, "value": hot, "met": hot <= TARGET_US}
    return {
        "benchmark": "schema",
        "events": events,
        "event_bytes": round(sum(map(len, raw_good)) / len(raw_good)),
        "avro_bytes": round(sum(map(len, raw_avro)) / len(raw_avro)),
        "validator": "fastjsonschema" if _compiled(schema) else "jsonschema",
        "results": results,
        "validation_overhead_us": round(hot - results["loads"]["us_per_event"], 3),
        "valid_ok": True,
        "invalid_errors": errors[:4],
        "targets": {"checks": {"loads_validate_us": check}, "met": check["met"]},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {
            p: _version(p) for p in ("orjson", "fastjsonschema", "jsonschema", "fastavro")
        },
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "arch": platform.machine(),
        },
    }


def _time(fn: Callable[[bytes], Any], pool: list[bytes], count: int) -> dict[str, Any]:
    for i in range(min(_WARMUP, count)):
        fn(pool[i % len(pool)])
    size = len(pool)
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for i in range(count):
            fn(pool[i % size])
        elapsed = time.perf_counter() - t0
    finally:
        if enabled:
            gc.enable()
    per = elapsed / count * 1e6
    return {
        "events": count,
        "seconds": round(elapsed, 6),
        "us_per_event": round(per, 3),
        "events_per_s": round(count / elapsed) if elapsed > 0 else None,
    }


def _compiled(schema: Any) -> bool:
    from eventml.schema._json_validate import _fast

    return _fast(schema._bundle) is not None


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


_LABELS = (
    ("loads", "orjson.loads (raw)"),
    ("loads_validate", "loads + compiled validator"),
    ("loads_jsonschema", "loads + jsonschema Draft7Validator"),
    ("invalid_validate", "loads + validator, invalid events"),
    ("avro_decode", "fastavro schemaless decode (raw)"),
)


def render_schema_table(result: Mapping[str, Any], console: Console) -> None:
    """µs and events/s per measurement, then the target verdict."""
    table = Table(
        title=f"schema validation: {result['events']:,} events x {result['event_bytes']} B JSON",
        caption=f"validator: {result['validator']}; Avro record: {result['avro_bytes']} B",
    )
    table.add_column("measurement")
    table.add_column("events", justify="right")
    table.add_column("µs/event", justify="right")
    table.add_column("events/s", justify="right")
    for key, label in _LABELS:
        row = result["results"][key]
        rate = row["events_per_s"]
        table.add_row(
            label, f"{row['events']:,}", f"{row['us_per_event']:.2f}", f"{rate:,}" if rate else "-"
        )
    console.print(table)
    check = result["targets"]["checks"]["loads_validate_us"]
    verdict = "[green]ok[/]" if check["met"] else "[red]MISSED[/]"
    console.print(
        f"target loads + validate <= {check['max']:g} µs/event: {check['value']:.2f} {verdict}"
    )
