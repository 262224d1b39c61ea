"""The `eventml` command as a user meets it: real processes, one-line errors, nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

EVENTML = [sys.executable, "-m", "eventml"]


def run(*args: str, stdin: bytes = b"", broker: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EVENTML_BROKER"}
    if broker:
        env["EVENTML_BROKER"] = broker
    return subprocess.run([*EVENTML, *args], input=stdin.decode(), capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.fixture
def broker(tmp_path: Path) -> str:
    return f"embedded://{tmp_path}/data"


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_topics_create_list_describe_delete(broker: str) -> None:
    assert run("topics", "create", "tx", "-p", "3", broker=broker).returncode == 0
    assert run("topics", "list", broker=broker).stdout.split() == ["tx"]
    described = orjson.loads(run("topics", "describe", "tx", "--json", broker=broker).stdout)
    assert described["partitions"] == 3 and described["records"] == 0
    assert run("topics", "delete", "tx", broker=broker).returncode == 0
    assert run("topics", "list", broker=broker).stdout.split() == []


def test_produce_reports_bad_lines_keeps_good_ones_and_dead_letters_the_rest(broker: str) -> None:
    run("topics", "create", "tx", "-p", "2", broker=broker)
    lines = (b'{"card_id": "c1", "amount": 5}\n'
             b'{"card_id": "c2", "amount": 7\n'          # line 2: truncated JSON
             b'{"card_id": "c3", "amount": 9}\n'
             b'"just a string"\n'                        # line 4: not an object
             b'{"amount": 1}\n'                          # line 5: no key field
             b'{"card_id": "c4", "amount": 11}\n')
    result = run("produce", "tx", "--key-field", "card_id", stdin=lines, broker=broker)
    assert result.returncode == 1
    assert "<stdin>:2: invalid JSON" in result.stderr
    assert "<stdin>:4: expected a JSON object" in result.stderr
    assert "<stdin>:5: no field 'card_id'" in result.stderr
    assert "3 malformed line(s) (2, 4, 5) kept in tx.dlq" in result.stderr
    out = run("consume", "tx", "-g", "check", "--from-beginning", "--idle-ms", "500", broker=broker)
    events = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert sorted(e["data"]["card_id"] for e in events) == ["c1", "c3", "c4"]
    assert all(e["partitionkey"] == e["data"]["card_id"] for e in events)
    dlq = run("consume", "tx.dlq", "-g", "check", "--from-beginning", "--idle-ms", "500",
              broker=broker)
    dead = [orjson.loads(line) for line in dlq.stdout.splitlines()]
    assert [d["value"] for d in dead] == ['{"card_id": "c2", "amount": 7', '"just a string"',
                                          '{"amount": 1}']
    assert [d["headers"]["eventml.dlq.source.line"] for d in dead] == ["2", "4", "5"]


def test_produce_validate_frames_good_lines_and_dead_letters_schema_violations(
    broker: str, tmp_path: Path
) -> None:
    run("topics", "create", "pay", broker=broker)
    missing = run("produce", "pay", "--validate", broker=broker)
    assert_one_line_error(missing, "pay-value", "eventml schemas register pay-value")
    schema = tmp_path / "pay.json"
    schema.write_text('{"type": "object", "required": ["amount"],'
                      ' "properties": {"amount": {"type": "number", "minimum": 0}}}')
    assert run("schemas", "register", "pay-value", str(schema), broker=broker).returncode == 0
    lines = b'{"amount": 5}\n{"amount": -3}\n{"x": 1}\n'
    result = run("produce", "pay", "--validate", stdin=lines, broker=broker)
    assert result.returncode == 1
    assert "<stdin>:2: pay: the value breaks schema 1 of pay-value: /amount" in result.stderr
    assert "2 malformed line(s) (2, 3) kept in pay.dlq" in result.stderr
    out = run("consume", "pay", "-g", "check", "--from-beginning", "--idle-ms", "500",
              broker=broker)
    [record] = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert record["value"] == '\u0000\u0000\u0000\u0000\u0001{"amount":5}'  # a Confluent frame
    dlq = run("consume", "pay.dlq", "-g", "check", "--from-beginning", "--idle-ms", "500",
              broker=broker)
    dead = [orjson.loads(line) for line in dlq.stdout.splitlines()]
    assert [d["value"] for d in dead] == ['{"amount": -3}', '{"x": 1}']  # byte-exact lines
    assert "is a required property" in dead[1]["headers"]["eventml.dlq.error.message"]


def test_consume_commits_so_the_group_resumes(broker: str) -> None:
    run("topics", "create", "t", broker=broker)
    run("produce", "t", stdin=b"".join(b'{"n": %d}\n' % i for i in range(10)), broker=broker)
    first = run("consume", "t", "-g", "g", "--from-beginning", "--max", "4", broker=broker)
    second = run("consume", "t", "-g", "g", "--idle-ms", "500", broker=broker)
    assert [orjson.loads(x)["data"]["n"] for x in first.stdout.splitlines()] == [0, 1, 2, 3]
    assert [orjson.loads(x)["data"]["n"] for x in second.stdout.splitlines()] == list(range(4, 10))


def test_tail_shows_the_last_events(broker: str) -> None:
    run("topics", "create", "t", broker=broker)
    run("produce", "t", stdin=b"".join(b'{"n": %d}\n' % i for i in range(10)), broker=broker)
    out = run("tail", "t", "-n", "3", broker=broker)
    assert [orjson.loads(x)["data"]["n"] for x in out.stdout.splitlines()] == [7, 8, 9]


def test_unknown_scheme_lists_the_supported_ones() -> None:
    result = run("topics", "list", "--broker", "redis://localhost")
    assert_one_line_error(result, "redis://", "embedded://PATH", "kafka://HOST:PORT", "memory://")


def test_global_broker_option_applies_to_subcommands() -> None:
    assert_one_line_error(run("--broker", "nope://x", "topics", "list"), "nope://")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("topics", "create"), "Missing argument"),
        (("topics", "create", "t", "--partitions", "zero"), "Invalid value for '--partitions'"),
        (("topics", "create", "bad/name"), "invalid topic name"),
        (("consume", "t"), "Missing option '--group'"),
        (("frobnicate",), "No such command"),
        (("topics", "describe", "missing"), "unknown topic 'missing'"),
        (("produce", "t", "--file", "/no/such/file"), "does not exist"),
    ],
)
def test_wrong_arguments_get_one_line(args: tuple[str, ...], needle: str, broker: str) -> None:
    assert_one_line_error(run(*args, broker=broker), needle)


def test_unreachable_kafka_is_one_line() -> None:
    result = run("topics", "list", "--broker", "kafka://127.0.0.1:1")
    assert_one_line_error(result, "cannot reach Kafka at 127.0.0.1:1", "scripts/kafka start")


def test_group_without_command_shows_help_only() -> None:
    result = run("topics")
    assert result.returncode == 2
    assert "create" in result.stdout and "error" not in result.stderr


def test_help_and_version() -> None:
    assert "topics" in run("--help").stdout
    assert run("--version").stdout.startswith("eventml ")


def test_describe_prints_the_topology_and_bad_app_names_are_one_line() -> None:
    ok = run("describe", "examples.clicks:app")  # from the repository root
    assert ok.returncode == 0, ok.stderr
    assert "source [source-1] clicks" in ok.stdout
    assert "window [window-3] Tumbling(size_ms=60000)" in ok.stdout
    assert "guarantee exactly_once" in ok.stdout
    for spec, why in (("nosuchmodule:app", "cannot import"), ("examples.clicks", "module:attribute"),
                      ("examples.clicks:clicks", "not an eventml App")):
        assert_one_line_error(run("describe", spec), why)
    assert_one_line_error(run("run", "examples.clicks:app", "--guarantee", "twice"),
                          "exactly_once or at_least_once")
