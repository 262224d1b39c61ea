"""eventml keys: API keys for `eventml serve --auth`: scoped, expiring, revocable.

Keys live in one SQLite file: --keys FILE, else $EVENTML_KEYS, else
<data dir>/keys.sqlite (the embedded log's directory, else ./.eventml).

A key is shown once, when created. The file keeps its SHA-256, its id (the
eml_<id>_ part), name, scopes, expiry and revocation, never the key itself.

Scopes: produce:TOPIC, read:NAME, dlq:TOPIC, schema-write:SUBJECT (NAME may be *),
or admin (everything).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, fail
from eventml.clock import system_clock_ms
from eventml.security import ApiKey, KeyStore, KeyStoreError, default_path

ENV_VAR = "EVENTML_KEYS"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

keys_app = typer.Typer(help=__doc__, short_help="API keys for eventml serve: create, list, revoke.",
                       no_args_is_help=True)

KeysOption = Annotated[
    str | None,
    typer.Option("--keys", "-k", envvar=ENV_VAR, show_default=False,
                 help="The key store file (default: <data dir>/keys.sqlite, or $EVENTML_KEYS)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def key_store_path(keys: str | None, broker: str | None) -> Path:
    return Path(keys) if keys else default_path(broker)


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``12h``, ``30d`` in seconds, or a one-line error."""
    m = _DURATION.fullmatch(text.strip().lower())
    if m is None or float(m.group(1)) <= 0:
        fail(f"--expires must be a positive duration like 90s, 15m, 12h or 30d, got {text!r}")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def _time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_dict(key: ApiKey, now_ms: int) -> dict[str, object]:
    return {"id": key.key_id, "name": key.name, "scopes": [str(s) for s in key.scopes],
            "created": _time(key.created_ms), "expires": _time(key.expires_ms) if key.expires_ms else None,
            "revoked": _time(key.revoked_ms) if key.revoked_ms else None, "status": key.status(now_ms)}


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Who or what uses the key (shown in listings).")],
    scope: Annotated[list[str], typer.Option("--scope", "-s", show_default=False,
                                             help="produce:TOPIC, read:NAME, dlq:TOPIC, "
                                                  "schema-write:SUBJECT (NAME may be *), or admin; "
                                                  "repeat for several.")],
    expires: Annotated[str | None, typer.Option("--expires", show_default=False,
                                                help="Lifetime: 90s, 15m, 12h, 30d (default: none).")] = None,
    keys: KeysOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
) -> None:
    """Create a key; it is printed once and cannot be shown again."""
    lifetime = None if expires is None else parse_duration(expires)
    with KeyStore(key_store_path(keys, broker)) as store:
        try:
            token, record = store.create(name, scope, expires_in_s=lifetime)
        except KeyStoreError as e:
            fail(str(e))
    if as_json:
        typer.echo(orjson.dumps({"key": token, **_as_dict(record, record.created_ms)}).decode())
        return
    typer.echo(token)
    typer.echo(f"key {record.key_id} for {record.name}: {', '.join(str(s) for s in record.scopes)}"
               f"{'; expires ' + _time(record.expires_ms) if record.expires_ms else ''}. "
               "Store it now: it is not shown again.", err=True)


@keys_app.command("list")
def list_keys(keys: KeysOption = None, broker: BrokerOption = DEFAULT_BROKER,
              as_json: JsonOption = False) -> None:
    """Every key: id, name, scopes, status (never the key itself)."""
    now = system_clock_ms()
    with KeyStore(key_store_path(keys, broker)) as store:
        found = store.list()
    if as_json:
        typer.echo(orjson.dumps([_as_dict(k, now) for k in found]).decode())
        return
    if not found:
        typer.echo(f"no keys in {store.path} (eventml keys create NAME --scope produce:TOPIC)")
        return
    width = max(len(k.name) for k in found)
    typer.echo(f"{'ID':<8}  {'NAME':<{width}}  {'STATUS':<7}  {'EXPIRES':<20}  SCOPES")
    for k in found:
        typer.echo(f"{k.key_id:<8}  {k.name:<{width}}  {k.status(now):<7}  "
                   f"{_time(k.expires_ms):<20}  {', '.join(str(s) for s in k.scopes)}")


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from 'eventml keys list').")],
    keys: KeysOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Revoke a key: the server refuses it from its next request on."""
    with KeyStore(key_store_path(keys, broker)) as store:
        try:
            record = store.revoke(key_id)
        except KeyStoreError as e:
            fail(str(e))
    typer.echo(f"revoked key {record.key_id} ({record.name}) at {_time(record.revoked_ms)}")
