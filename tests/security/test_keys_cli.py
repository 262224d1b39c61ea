"""`eventml keys create|list|revoke`: shown once, listed without secrets, one-line errors."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from eventml.cli.app import main
from eventml.security import AuthError, KeyStore


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = str(tmp_path / "keys.sqlite")
    code, out, err = _run(capsys, "keys", "list", "--keys", keys)
    assert code == 0 and "no keys" in out
    code, out, err = _run(capsys, "keys", "create", "ingest-bot", "-s", "produce:orders",
                          "-s", "read:orders", "--expires", "12h", "--keys", keys)
    token = out.strip()
    assert code == 0 and token.startswith("eml_") and "not shown again" in err
    record = KeyStore(keys).authenticate(token)
    assert [str(s) for s in record.scopes] == ["produce:orders", "read:orders"]
    assert record.expires_ms is not None and 11.9 * 3600e3 < record.expires_ms - record.created_ms <= 12 * 3600e3
    code, out, _ = _run(capsys, "keys", "list", "--keys", keys)
    assert code == 0 and record.key_id in out and "active" in out and token not in out
    code, out, _ = _run(capsys, "keys", "list", "--json", "--keys", keys)
    (listed,) = orjson.loads(out)
    assert listed["id"] == record.key_id and listed["status"] == "active" and "key" not in listed
    code, out, _ = _run(capsys, "keys", "revoke", record.key_id, "--keys", keys)
    assert code == 0 and f"revoked key {record.key_id}" in out
    with pytest.raises(AuthError):
        KeyStore(keys).authenticate(token)
    code, out, _ = _run(capsys, "keys", "list", "--keys", keys)
    assert "revoked" in out


def test_json_create_shows_the_key_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = str(tmp_path / "keys.sqlite")
    code, out, _ = _run(capsys, "keys", "create", "admin", "-s", "admin", "--json", "--keys", keys)
    created = orjson.loads(out)
    assert code == 0 and created["key"].startswith("eml_") and created["scopes"] == ["admin"]
    assert KeyStore(keys).authenticate(created["key"]).is_admin


@pytest.mark.parametrize(("args", "needle"), [
    (["create", "x", "-s", "write:orders"], "expected OPERATION:NAME"),
    (["create", "x", "-s", "produce:orders", "--expires", "soon"], "--expires"),
    (["create", "x", "-s", "produce:orders", "--expires", "0d"], "--expires"),
    (["revoke", "nope"], "no key 'nope'"),
])
def test_bad_arguments_are_one_line_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str) -> None:
    code, _, err = _run(capsys, "keys", *args, "--keys", str(tmp_path / "keys.sqlite"))
    assert code != 0 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
    assert not (tmp_path / "keys.sqlite").exists()
