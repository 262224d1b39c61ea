"""Property-based fuzzing of the whole service against its own OpenAPI spec (Schemathesis).

Every operation of the spec is called with generated requests, valid and invalid, through a
real uvicorn server with an admin key: no response may be a 5xx, and every response must
match the spec (status codes, content types, bodies, headers). At least 5,000 cases in all.
The Server-Sent-Event streams are left out: a generated request without ``until_s`` would
never end (they are tested in test_predict_api.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from eventml.api import create_app, online_stores, sqlite_view
from eventml.api.auth import SCHEMAS_PREFIX
from eventml.deadletter import dead_letter_message
from eventml.features import materialized
from eventml.log import TopicSpec
from eventml.ml import ModelRegistry
from eventml.schema.registry import SchemaRegistry
from eventml.security import KeyStore
from eventml.testing import serve_app

from .conftest import Served
from .sample import cards
from .test_models_api import SCORE

TOTAL_CASES = int(__import__("os").environ.get("FUZZ_CASES", "5000"))
STREAMS = ("/v1/results/stream", "/v1/dashboard/stream")
# Requests the spec cannot tell apart from valid ones, refused for what they mean: a schema's
# text must parse, a model's features are those of its version, a dead letter id or a model
# version must exist, a consumer group's name must be printable text (Unicode's rule, which
# a JSON Schema pattern cannot say). And every write to the schema registry: its answer
# depends on the registry's mode and contents, which the fuzzing itself changes (a generated
# PUT /mode READONLY refuses later writes with 422, as Confluent's does; IMPORT over existing
# subjects needs force=true; a hard delete needs a soft one first). Every other check still
# applies to these operations.
SEMANTIC = ("/subjects/{subject}", "/subjects/{subject}/versions",
            "/compatibility/subjects/{subject}/versions",
            "/compatibility/subjects/{subject}/versions/{version}",
            "/v1/predict/{model}", "/v1/predict/{model}/async", "/v1/predict/{model}/stats",
            "/v1/topics/{topic}/dlq/replay", "/v1/models/{name}/aliases/{alias}",
            "/v1/topics/{topic}/lag", "/mode", "/mode/{subject}")


@dataclass
class Target:
    base_url: str
    schema: Any
    admin: str
    session: requests.Session = field(default_factory=requests.Session)


@pytest.fixture
def target(served: Served, tmp_path: Path) -> Iterator[Target]:
    keys = KeyStore(tmp_path / "keys.sqlite")
    admin = keys.create("fuzz", ["admin"])[0]
    models = ModelRegistry(tmp_path / "models")
    models.register("fraud", SCORE, flavor="callable", features=["amount"], metrics={"threshold": 0.5})
    served.log.create_topic(TopicSpec("orders", 2))
    served.log.append("tx.dlq", [dead_letter_message(
        b'{"card": "c1"}', key=b"c1", error=ValueError("bad"), now_ms=1,
        source={"topic": "tx", "partition": 0, "offset": 0})])
    app = create_app(registry=SchemaRegistry(served.log),
                     features=online_stores(served.log, materialized(served.app)),
                     views=[sqlite_view(cards, served.db, served.log)], keys=keys,
                     log=served.log, models=models, predict_worker=True)
    schema = schemathesis.openapi.from_dict(app.openapi())
    with serve_app(app, log_level="critical") as url:
        yield Target(url, schema, admin)


def _operations(schema: Any) -> list[Any]:
    ops = [result.ok() for result in schema.get_all_operations()]
    return [op for op in ops if op.path not in STREAMS]


def test_no_generated_request_gets_a_5xx_or_an_answer_the_spec_does_not_describe(
        target: Target) -> None:
    operations = _operations(target.schema)
    assert len(operations) > 40  # the whole service, not a part of it
    per_operation = math.ceil(1.5 * TOTAL_CASES / len(operations))  # small spaces end early
    headers = {"Authorization": f"Bearer {target.admin}"}
    counted: dict[str, int] = {}
    failures: dict[str, str] = {}
    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        counted[label] = 0
        try:
            _fuzz(target, operation, label, per_operation, headers, counted)()
        except (Exception, BaseExceptionGroup) as e:  # fuzz every operation: report all findings
            failures[label] = _summary(e)
    total = sum(counted.values())
    print(f"\nschemathesis: {total} cases over {len(operations)} operations")
    assert failures == {}, "\n".join(f"{k}: {v}" for k, v in sorted(failures.items()))
    assert total >= TOTAL_CASES, sorted(counted.items(), key=lambda kv: kv[1])[:10]


def _fuzz(target: Target, operation: Any, label: str, n: int, headers: dict[str, str],
          counted: dict[str, int]) -> Any:
    @settings(max_examples=n, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        counted[label] += 1
        response = case.call(base_url=target.base_url, session=target.session, headers=headers,
                             timeout=10)
        assert response.status_code < 500, (label, response.status_code, response.text[:300])
        path = operation.path.removeprefix(SCHEMAS_PREFIX)
        registry_write = not path.startswith("/v1/") and case.method in ("PUT", "POST", "DELETE")
        semantic = path in SEMANTIC or registry_write
        case.validate_response(response, headers=headers,
                               excluded_checks=[positive_data_acceptance] if semantic else None)

    return check


def _summary(e: BaseException) -> str:
    """One line per distinct finding (Schemathesis groups them)."""
    found = e.exceptions if isinstance(e, BaseExceptionGroup) else (e,)
    lines = {f"{type(x).__name__}: {' '.join(str(x).split())[:240]}" for x in found}
    curl = [line.strip() for line in str(e).splitlines() if line.strip().startswith("curl ")]
    return " | ".join(sorted(lines) + curl[:1])
