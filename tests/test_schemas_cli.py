"""`eventml schemas`: the schema registry on an embedded log, from the command line."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from eventml.cli.app import main
from eventml.cli.schemas import guess_type

USER_V1 = '{"type": "record", "name": "User", "fields": [{"name": "id", "type": "long"}]}'
USER_V2 = (  # adds a field with a default: backward compatible
    '{"type": "record", "name": "User", "fields": [{"name": "id", "type": "long"},'
    ' {"name": "email", "type": "string", "default": ""}]}'
)
USER_AGE = (  # adds a field without a default: old data has no age
    '{"type": "record", "name": "User", "fields": [{"name": "id", "type": "long"},'
    ' {"name": "age", "type": "int"}]}'
)
PERSON_V1 = '{"type": "object", "properties": {"age": {"type": "integer"}}}'
PERSON_AGE_TEXT = '{"type": "object", "properties": {"age": {"type": "string"}}}'
ADDRESS = (
    '{"type": "record", "name": "Address", "namespace": "com.acme",'
    ' "fields": [{"name": "city", "type": "string"}]}'
)
ORDER = (
    '{"type": "record", "name": "Order", "namespace": "com.acme",'
    ' "fields": [{"name": "to", "type": "com.acme.Address"}]}'
)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def error(self, code: int = 2) -> str:
        """The single stderr line of a failure (checked: exit code, prefix, no traceback)."""
        assert self.code == code, (self.code, self.out, self.err)
        assert "Traceback" not in self.err and self.out == ""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("eventml: error: "), lines[0]
        return lines[0]


Run = Callable[..., Result]


@pytest.fixture
def schemas(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run `eventml schemas ARGS` in-process (the real entry point) on a fresh embedded log."""
    broker = f"embedded://{tmp_path}/data"
    capsys.readouterr()

    def run(*args: str, stdin: str = "", ok: bool = True) -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["schemas", *args, "--broker", broker])
        out, err = capsys.readouterr()
        result = Result(code, out, err)
        if ok:
            assert code == 0 and err == "", result
        return result

    return run


@pytest.fixture
def files(tmp_path: Path) -> Callable[[str, str], str]:
    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text + "\n")
        return str(path)

    return write


# -- register -----------------------------------------------------------------------


def test_register_avro_and_json_is_idempotent(schemas: Run, files: Callable[[str, str], str]) -> None:
    user = files("user.avsc", USER_V1)
    assert schemas("register", "users-value", user).lines == ["registered users-value version 1 id 1"]
    # the same schema written differently: nothing new
    spaced = USER_V1.replace(", ", ",\n    ")
    assert schemas("register", "users-value", "--schema", spaced).lines == [
        "already registered users-value version 1 id 1"
    ]
    # JSON Schema from stdin, its type guessed
    got = schemas("register", "people-value", "-", "--json", stdin=PERSON_V1)
    assert orjson.loads(got.out) == {
        "subject": "people-value", "version": 1, "id": 2, "schemaType": "JSON", "schema": PERSON_V1,
    }
    # the same schema under another subject keeps its id
    assert schemas("register", "other-value", "-", "-t", "json", stdin=PERSON_V1).lines == [
        "registered other-value version 1 id 2"
    ]
    # an explicit type wins over the guess: {"type": "string"} is Avro unless told
    assert schemas("register", "s-value", "-s", '{"type": "string"}').lines == [
        "registered s-value version 1 id 3"
    ]
    shown = orjson.loads(schemas("show", "s-value", "--json").out)
    assert "schemaType" not in shown  # AVRO, as Confluent leaves it out
    assert schemas("register", "j-value", "-s", '{"type": "string"}', "--type", "JSON").lines == [
        "registered j-value version 1 id 4"
    ]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (PERSON_V1, "JSON"),
        ('{"$schema": "https://json-schema.org/draft/2020-12/schema"}', "JSON"),
        ('{"$ref": "address.json"}', "JSON"),
        ('{"type": "object"}', "JSON"),
        (USER_V1, "AVRO"),
        ('{"type": "record", "name": "R", "fields": [], "properties": {}}', "AVRO"),
        ('{"type": "array", "items": "string"}', "AVRO"),
        ('"string"', "AVRO"),
        ('["null", "string"]', "AVRO"),
        ("not json at all", "AVRO"),
    ],
)
def test_guess_type(text: str, kind: str) -> None:
    assert guess_type(text) == kind


def test_register_with_references(schemas: Run) -> None:
    schemas("register", "address-value", "-s", ADDRESS)
    got = schemas("register", "orders-value", "-s", ORDER, "-r", "com.acme.Address=address-value:latest")
    assert got.lines == ["registered orders-value version 1 id 2"]
    shown = schemas("show", "orders-value").lines
    assert "references:  com.acme.Address=address-value:1" in shown
    assert orjson.loads(schemas("show", "orders-value", "--json").out)["references"] == [
        {"name": "com.acme.Address", "subject": "address-value", "version": 1}
    ]
    # a referenced version cannot be deleted
    line = schemas("delete", "address-value", "1", ok=False).error()
    assert "(42206)" in line and "orders-value" in line
    # without the reference the order schema does not parse
    line = schemas("register", "o2-value", "-s", ORDER, ok=False).error()
    assert "(42201)" in line


# -- list and show ------------------------------------------------------------------


def test_list_and_show(schemas: Run) -> None:
    assert schemas("list").out == ""
    schemas("register", "users-value", "-s", USER_V1)
    schemas("register", "users-value", "-s", USER_V2)
    schemas("register", "people-value", "-s", PERSON_V1)
    assert schemas("list").lines == [
        "people-value  version 1  id 3  JSON",
        "users-value   version 2  id 2  AVRO",
    ]
    assert schemas("list", "--prefix", "users").lines == ["users-value  version 2  id 2  AVRO"]
    assert orjson.loads(schemas("list", "--json").out)[1] == {
        "subject": "users-value", "version": 2, "id": 2, "schemaType": "AVRO",
        "versions": [1, 2], "deleted": False,
    }

    shown = schemas("show", "users-value", "1").out
    header, _, body = shown.partition("\n\n")
    assert header.splitlines() == [
        "subject:     users-value",
        "version:     1",
        "versions:    1, 2",
        "id:          1",
        "type:        AVRO",
    ]
    assert orjson.loads(body) == orjson.loads(USER_V1)
    assert '\n  "fields": [' in body  # pretty-printed
    assert schemas("show", "users-value").lines[1] == "version:     2"  # latest by default
    assert schemas("show", "users-value", "latest", "--raw").out == USER_V2 + "\n"

    by_id = schemas("show", "--id", "2").out
    header, _, body = by_id.partition("\n\n")
    assert header.splitlines() == ["id:          2", "used by:     users-value version 2", "type:        AVRO"]
    assert orjson.loads(body) == orjson.loads(USER_V2)
    assert orjson.loads(schemas("show", "--id", "3", "--json").out) == {
        "id": 3, "schema": PERSON_V1, "schemaType": "JSON",
    }


# -- check ----------------------------------------------------------------------------


def test_check_compatible_and_incompatible(schemas: Run, files: Callable[[str, str], str]) -> None:
    schemas("register", "users-value", "-s", USER_V1)
    ok = schemas("check", "users-value", files("v2.avsc", USER_V2))
    assert ok.code == 0 and ok.lines == ["compatible (BACKWARD, checked against users-value version 1)"]

    bad = schemas("check", "users-value", files("age.avsc", USER_AGE), ok=False)
    assert bad.code == 1 and bad.err == ""
    assert bad.lines[0] == "incompatible (BACKWARD, checked against users-value version 1):"
    assert len(bad.lines) >= 2 and all(line.startswith("  ") for line in bad.lines[1:])
    assert "age" in bad.out and "READER_FIELD_MISSING_DEFAULT_VALUE" in bad.out

    verdict = orjson.loads(schemas("check", "users-value", "-s", USER_AGE, "--json", ok=False).out)
    assert verdict["is_compatible"] is False and "age" in verdict["messages"][0]
    assert orjson.loads(schemas("check", "users-value", "-s", USER_V2, "--json").out) == {
        "is_compatible": True, "messages": [], "compatibilityLevel": "BACKWARD",
    }
    # a dry run: nothing was registered
    assert schemas("list").lines == ["users-value  version 1  id 1  AVRO"]
    # register refuses it with the same reason, on one line, exit 1
    line = schemas("register", "users-value", "-s", USER_AGE, ok=False).error(code=1)
    assert "(409)" in line and "age" in line

    # JSON Schema: a property's type changed
    schemas("register", "people-value", "-s", PERSON_V1)
    bad = schemas("check", "people-value", "-s", PERSON_AGE_TEXT, ok=False)
    assert bad.code == 1 and bad.lines[0].startswith("incompatible (BACKWARD")
    assert "age" in bad.out
    # a new subject accepts anything that parses
    fresh = schemas("check", "new-value", "-s", USER_AGE)
    assert fresh.lines == ["compatible (BACKWARD, checked against nothing: new-value has no versions yet)"]
    # against one given version
    schemas("register", "users-value", "-s", USER_V2)
    assert schemas("check", "users-value", "-s", USER_V2, "--version", "1").lines == [
        "compatible (BACKWARD, checked against users-value version 1)"
    ]


# -- compatibility levels and modes -----------------------------------------------------


def test_compat_get_set_and_invalid(schemas: Run) -> None:
    schemas("register", "users-value", "-s", USER_V1)
    assert schemas("compat").lines == ["global: BACKWARD"]
    assert schemas("compat", "users-value").lines == ["users-value: BACKWARD (the global level)"]
    assert schemas("compat", "users-value", "none").lines == ["compatibility of users-value set to NONE"]
    assert schemas("compat", "users-value").lines == ["users-value: NONE"]
    # NONE lets the incompatible schema in
    assert schemas("register", "users-value", "-s", USER_AGE).lines == [
        "registered users-value version 2 id 2"
    ]
    assert schemas("compat", "--global", "FULL_TRANSITIVE").lines == [
        "global compatibility set to FULL_TRANSITIVE"
    ]
    assert schemas("compat").lines == ["global: FULL_TRANSITIVE"]
    assert schemas("compat", "users-value", "--delete").lines == [
        "dropped users-value's compatibility NONE: it follows the global level FULL_TRANSITIVE now"
    ]
    assert schemas("compat", "users-value").lines == ["users-value: FULL_TRANSITIVE (the global level)"]

    line = schemas("compat", "users-value", "SIDEWAYS", ok=False).error()
    assert "(42203)" in line and "SIDEWAYS" in line
    assert all(level in line for level in ("BACKWARD", "FORWARD_TRANSITIVE", "FULL", "NONE"))
    assert "(42203)" in schemas("compat", "--global", "nope", ok=False).error()
    assert "(40408)" in schemas("compat", "users-value", "--delete", ok=False).error()
    assert "give no SUBJECT" in schemas("compat", "users-value", "--global", "NONE", ok=False).error()


def test_mode_readonly_blocks_register(schemas: Run) -> None:
    schemas("register", "users-value", "-s", USER_V1)
    assert schemas("mode").lines == ["global: READWRITE"]
    assert schemas("mode", "users-value", "readonly").lines == ["mode of users-value set to READONLY"]
    assert schemas("mode", "users-value").lines == ["users-value: READONLY"]
    line = schemas("register", "users-value", "-s", USER_V2, ok=False).error()
    assert line == "eventml: error: (42205) Subject users-value is in read-only mode"
    assert "(42205)" in schemas("delete", "users-value", ok=False).error()
    # other subjects still take schemas
    schemas("register", "people-value", "-s", PERSON_V1)
    line = schemas("mode", "--global", "IMPORT", ok=False).error()
    assert "(42205)" in line and "--force" in line
    assert schemas("mode", "--global", "IMPORT", "--force").lines == ["global mode set to IMPORT"]
    assert schemas("mode", "--global", "READWRITE").lines == ["global mode set to READWRITE"]
    assert schemas("mode", "users-value", "--delete").lines == [
        "dropped users-value's mode READONLY: it follows the global mode READWRITE now"
    ]
    assert schemas("mode", "users-value").lines == ["users-value: READWRITE (the global mode)"]
    assert schemas("register", "users-value", "-s", USER_V2).lines == [
        "registered users-value version 2 id 3"
    ]
    assert "(42204)" in schemas("mode", "users-value", "SLEEPY", ok=False).error()


# -- delete -------------------------------------------------------------------------------


def test_delete_soft_then_permanent(schemas: Run) -> None:
    schemas("register", "users-value", "-s", USER_V1)
    schemas("register", "users-value", "-s", USER_V2)
    assert schemas("delete", "users-value", "2").lines == [
        "soft-deleted users-value version 2 (its id still resolves; --permanent removes for good)"
    ]
    assert schemas("list").lines == ["users-value  version 1  id 1  AVRO"]
    assert schemas("list", "--deleted").lines == ["users-value  version 1  id 1  AVRO"]
    assert orjson.loads(schemas("list", "--deleted", "--json").out)[0]["versions"] == [1, 2]
    assert "(40402)" in schemas("show", "users-value", "2", ok=False).error()
    assert schemas("show", "users-value", "2", "--deleted").lines[1] == "version:     2 (deleted)"
    assert "users-value version 2 (deleted)" in schemas("show", "--id", "2").out  # still resolves

    line = schemas("delete", "users-value", "--permanent", ok=False).error()
    assert "(40405)" in line and "without --permanent first" in line
    assert schemas("delete", "users-value").lines[0].startswith("soft-deleted users-value version 1 ")
    assert schemas("list").out == ""
    assert schemas("list", "--deleted").lines == ["users-value  version 2  id 2  AVRO  deleted"]
    assert "(40404)" in schemas("delete", "users-value", ok=False).error()

    assert schemas("delete", "users-value", "--permanent").lines == [
        "permanently deleted users-value versions 1, 2"
    ]
    assert schemas("list", "--deleted").out == ""
    assert "(40403)" in schemas("show", "--id", "1", ok=False).error()
    # the subject starts over
    assert schemas("register", "users-value", "-s", USER_V2).lines == [
        "registered users-value version 1 id 3"
    ]


# -- bad input: one line, exit 2 --------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stdin", "needles"),
    [
        (("register", "x-value", "-s", '{"type": "record", "name": "R"'), "", ("(42201)",)),
        (("register", "x-value", "-s", '{"type": "record", "name": "R"}'), "", ("(42201)",)),
        (("register", "x-value", "-s", '{"type": "object", "properties": 7}'), "", ("(42201)",)),
        (("register", "x-value", "-s", "{}", "--type", "PROTOBUF"), "", ("--type must be AVRO or JSON",)),
        (("register", "x-value", "/no/such/file.avsc"), "", ("cannot read /no/such/file.avsc: no such file",)),
        (("register", "x-value", "{tmp}"), "", ("cannot read",)),
        (("register", "x-value"), "", ("no schema given",)),
        (("register", "x-value", "-"), "  \n", ("the schema from stdin is empty",)),
        (("register", "x-value", "f.avsc", "-s", "{}"), "", ("not both",)),
        (("register", "x-value", "-s", '"int"', "-r", "nonsense"), "", ("NAME=SUBJECT:VERSION",)),
        (("register", "x-value", "-s", '"int"', "-r", "A=users-value:0"), "", ("(42202)",)),
        (("register", "x-value", "-s", '"int"', "-r", "A=ghost-value:latest"), "", ("(40401)",)),
        (("show", "ghost-value"), "", ("(40401)", "ghost-value")),
        (("show", "users-value", "seven"), "", ("(42202)", "seven")),
        (("show", "users-value", "9"), "", ("(40402)",)),
        (("show",), "", ("give SUBJECT [VERSION] or --id ID",)),
        (("show", "users-value", "--id", "1"), "", ("not both",)),
        (("show", "--id", "99"), "", ("(40403)",)),
        (("check", "users-value", "-s", "[1, 2"), "", ("(42201)",)),
        (("check", "ghost-value", "-s", '"int"', "--version", "1"), "", ("(40401)",)),
        (("delete", "ghost-value"), "", ("(40401)",)),
        (("delete", "users-value", "3"), "", ("(40402)",)),
    ],
)
def test_bad_input_is_one_line(
    schemas: Run, tmp_path: Path, args: tuple[str, ...], stdin: str, needles: tuple[str, ...]
) -> None:
    schemas("register", "users-value", "-s", USER_V1)
    args = tuple(str(tmp_path) if a == "{tmp}" else a for a in args)
    line = schemas(*args, stdin=stdin, ok=False).error()
    for needle in needles:
        assert needle in line, line


def test_a_real_process(tmp_path: Path) -> None:
    """The installed entry point: stdin, the broker from the environment, a one-line error."""
    env = {**os.environ, "EVENTML_BROKER": f"embedded://{tmp_path}/data"}
    cmd = [sys.executable, "-m", "eventml", "schemas"]
    done = subprocess.run([*cmd, "register", "users-value", "-"], input=USER_V1, env=env,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "registered users-value version 1 id 1\n", "")
    done = subprocess.run([*cmd, "register", "users-value", "-s", "{nope"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("eventml: error: (42201) ") and done.stderr.count("\n") == 1
