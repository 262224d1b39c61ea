"""`eventml serve --app ... --views ...`: a real server process, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from eventml.cli.app import main
from eventml.features import OnlineStore, materialized

from .conftest import Served
from .sample import app as sample_app

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "EVENTML_BROKER"}


def test_serve_an_apps_features_and_views(served: Served) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventml", "serve", "--broker", served.url, "--port", "0",
         "--app", "tests.api.sample:app", "--views", "tests.api.sample:views",
         "--views-db", str(served.db.parent), "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert "schema registry at http://127.0.0.1:" in lines[0] and "/docs" in lines[0], lines
        url = lines[0].split(" at ", 1)[1].split()[0]
        assert f"{url}/v1/features/card_activity?keys=KEY" in lines[1], lines
        assert f"{url}/v1/views/cards/rows/KEY" in lines[2], lines
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx2.get(f"{url}/v1/features/card_activity", params={"keys": "c1,c2,nobody"})
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
                time.sleep(0.05)
        assert r.status_code == 200, r.text
        (view, topics), = materialized(sample_app).values()
        store = OnlineStore(served.log, view, topics.online)
        store.refresh()
        expected = store.get_online_features(["c1", "c2", "nobody"])
        assert [{k: v for k, v in row.items() if k != "key"} for row in r.json()["rows"]] == expected
        assert expected[0]["tx_1h"] and expected[2]["tx_1h"] is None
        r = httpx2.get(f"{url}/v1/views/cards/rows/c1")
        assert r.status_code == 200 and r.json()["row"]["card"] == "c1"
        assert httpx2.get(f"{url}/subjects").json() == []
        assert httpx2.get(f"{url}/docs").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _one_line_error(capsys: pytest.CaptureFixture[str], args: list[str], *needles: str) -> None:
    assert main(["serve", "--port", "0", *args]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_arguments_are_one_line_errors(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("EVENTML_BROKER", raising=False)
    _one_line_error(capsys, ["--broker", "memory://", "--app", "nope_module:app"], "--app", "nope_module")
    _one_line_error(capsys, ["--broker", "memory://", "--app", "tests.api.sample"], "module:attribute")
    _one_line_error(capsys, ["--broker", "memory://", "--app", "tests.api.sample:views"], "not an eventml App")
    _one_line_error(capsys, ["--broker", "memory://", "--views", "tests.api.sample:app"], "--views")
    _one_line_error(capsys, ["--broker", "memory://", "--views-db", "x"], "--views-db needs --views")


def test_serve_with_auth_refuses_requests_without_a_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = str(tmp_path / "keys.sqlite")
    assert main(["keys", "create", "reader", "--scope", "read:*", "--keys", keys]) == 0
    token = capsys.readouterr().out.strip()
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventml", "serve", "--broker", f"embedded://{tmp_path}/data",
         "--port", "0", "--auth", "--keys", keys, "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        url = lines[0].split(" at ", 1)[1].split()[0]
        assert f"API keys required (store {keys}" in lines[1], lines
        assert f"ingest at {url}/v1/topics/TOPIC/events" in lines[2], lines
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx2.get(f"{url}/subjects")
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
                time.sleep(0.05)
        assert r.status_code == 401 and r.json()["error_code"] == 40101
        assert httpx2.get(f"{url}/subjects", headers={"Authorization": f"Bearer {token}"}).json() == []
        assert httpx2.get(f"{url}/docs").status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert token not in (proc.stderr.read() if proc.stderr else "")  # never logged


def test_auth_options_are_one_line_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTML_KEYS", raising=False)
    empty = str(tmp_path / "none.sqlite")
    _one_line_error(capsys, ["--broker", "memory://", "--auth", "--keys", empty], "no API keys",
                    "eventml keys create")
    _one_line_error(capsys, ["--broker", "memory://", "--rate-limit", "5"], "--auth")
