"""The data-contract phase: the fraud pipeline without and with validation of its input.

With ``validate``, each throughput run times the fraud app twice over the same
pre-appended records, each in a fresh consumer group: **plain** (``orjson.loads`` of
each value, as without a contract) and **validated** (the app built with
``validate=True``: :data:`~eventml.demos.fraud.events.TRANSACTION_SCHEMA` bound to
the input topic unframed, so each bare-JSON value is parsed and checked by the
compiled JSON Schema; a value that fails goes to ``TOPIC.dlq``). The two alternate
which goes first from run to run, so warm caches and machine noise fall on both.
The generated transactions all meet the schema: any dead letter is a bug, flagged
by the ``validation_dead_letters`` target.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from eventml.bench.pipeline._result import _combine, _overall, _ratio
from eventml.bench.pipeline._setup import Statistic, _Bench
from eventml.bench.pipeline._throughput import _run_pipeline

#: The issue's target: validated throughput >= 80 % of plain, and no dead letter.
VALIDATION_TARGETS: Mapping[str, Mapping[str, float]] = {
    "validation_ratio": {"min": 0.8},
    "validation_dead_letters": {"max": 0},
}
CONTRACT = "TRANSACTION_SCHEMA, unframed JSON"


def _run_both(
    bench: _Bench, k: int, repeat: int, who: str
) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """Run ``k``: the plain pipeline and the validated one (odd runs plain first).

    Returns the plain pipeline's metrics and topics (the run's ``pipeline``) and the
    run's ``validation``: the validated pipeline's metrics, topics, order and ratio.
    """
    order = (False, True) if k % 2 else (True, False)
    done: dict[bool, tuple[dict[str, Any], dict[str, str]]] = {}
    for validate in order:
        what = "fraud pipeline, validated" if validate else "fraud pipeline"
        bench.say(f"run {k}/{repeat}: {what}, {who}")
        done[validate] = _run_pipeline(bench, k, validate=validate)
    (plain, topics), (validated, validated_topics) = done[False], done[True]
    return (
        plain,
        topics,
        {
            "pipeline": validated,
            "topics": validated_topics,
            "order": ["validated" if v else "plain" for v in order],
            "ratio": _ratio(validated["eps"], plain["eps"]),
        },
    )


def _add_validation(
    result: dict[str, Any], runs: Sequence[Mapping[str, Any]], statistic: Statistic
) -> None:
    """Fill in the result's ``validation`` and add its targets to the others."""
    validation = _summary(runs, result["pipeline"], statistic)
    result["validation"] = validation
    checks = {**result["targets"]["checks"], **_checks(validation)}
    result["targets"] = {"checks": checks, "met": _overall(checks)}


def _summary(
    runs: Sequence[Mapping[str, Any]], plain: Mapping[str, Any], statistic: Statistic
) -> dict[str, Any]:
    """The result's ``validation``: each side's rate by ``statistic``, their ratio, the verdict."""
    sides = [r["validation"]["pipeline"] for r in runs]
    validated = _combine(sides, statistic)
    dead = validated["dead_letters"]  # over the runs
    validated["consistent"] = all(
        (s["alerts"], s["velocity_alerts"]) == (plain["alerts"], plain["velocity_alerts"])
        for s in sides
    )
    ratio = _ratio(validated["eps"], plain["eps"])
    steady = (
        _ratio(validated["steady_eps"], plain["steady_eps"])
        if validated["steady_eps"] and plain["steady_eps"]
        else None
    )
    target = VALIDATION_TARGETS["validation_ratio"]["min"]
    return {
        "contract": CONTRACT,
        "plain_eps": plain["eps"],
        "validated_eps": validated["eps"],
        "ratio": ratio,
        "steady_ratio": steady,
        "run_ratios": [r["validation"]["ratio"] for r in runs],
        "target": target,
        "met": ratio >= target,
        "dead_letters": dead,
        "validated": validated,
    }


def _checks(validation: Mapping[str, Any]) -> dict[str, Any]:
    """The validation targets with the measured values (as ``_result._targets`` has them)."""
    values = {
        "validation_ratio": validation["ratio"],
        "validation_dead_letters": validation["dead_letters"],
    }
    checks: dict[str, Any] = {}
    for name, bound in VALIDATION_TARGETS.items():
        value = values[name]
        met = value >= bound["min"] if "min" in bound else value <= bound["max"]
        checks[name] = {**bound, "value": value, "met": met}
    return checks


def _drop_subject(bench: _Bench) -> None:
    """Delete the input topic's subject the validated apps registered (at clean-up)."""
    from eventml.schema.registry import SchemaRegistry

    subject = f"{bench.input_topic}-value"
    with contextlib.suppress(Exception):
        registry = SchemaRegistry(bench.log)
        if subject in registry.subjects():
            registry.delete_subject(subject)
            registry.delete_subject(subject, permanent=True)
