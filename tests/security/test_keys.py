"""API keys: the token's shape and entropy, what is stored, scopes, expiry, revocation."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from eventml.security import AuthError, KeyStore, KeyStoreError, ScopeError, parse_scope
from eventml.security.keys import digest, key_id_of


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys.sqlite")


def test_a_key_has_an_id_and_at_least_128_random_bits(store: KeyStore) -> None:
    tokens = [store.create(f"k{i}", ["read:*"])[0] for i in range(50)]
    assert len(set(tokens)) == 50
    for token in tokens:
        prefix, key_id, secret = token.split("_", 2)
        assert prefix == "eml" and len(key_id) == 8 and key_id_of(token) == key_id
        assert len(secret) * 6 >= 128  # URL-safe base64: 6 bits a character (32 chars: 192)
    # the secrets differ everywhere, not in a counter's last digits
    assert len({t[-32:][:8] for t in tokens}) == 50


def test_only_the_digest_is_stored_and_the_file_is_private(store: KeyStore) -> None:
    token, record = store.create("ingest-bot", ["produce:orders"])
    raw = store.path.read_bytes()
    secret = token.split("_", 2)[2]
    assert secret.encode() not in raw and token.encode() not in raw
    assert digest(token).encode() in raw and record.key_id.encode() in raw
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    with sqlite3.connect(store.path) as db:
        assert db.execute("SELECT name FROM api_keys").fetchall() == [("ingest-bot",)]


def test_authenticate_says_why_a_key_is_refused(store: KeyStore) -> None:
    token, record = store.create("app", ["read:orders"], now_ms=1_000, expires_in_s=10)
    assert store.authenticate(token, now_ms=5_000) == record
    with pytest.raises(AuthError) as e:
        store.authenticate(token, now_ms=11_000)
    assert e.value.reason == "expired"
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")  # right id, wrong secret
    with pytest.raises(AuthError) as e:
        store.authenticate(forged, now_ms=5_000)
    assert e.value.reason == "unknown" and e.value.key_id == record.key_id
    with pytest.raises(AuthError) as e:
        store.authenticate("eml_aaaaaaaa_" + "x" * 32)
    assert e.value.reason == "unknown"
    for bad in ("", "Bearer " + token, token + "x", token.upper(), "eml_short_secret"):
        with pytest.raises(AuthError) as e:
            store.authenticate(bad)
        assert e.value.reason == "malformed"
    store.revoke(record.key_id, now_ms=6_000)
    with pytest.raises(AuthError) as e:
        store.authenticate(token, now_ms=7_000)
    assert e.value.reason == "revoked"
    # revoking again keeps the first time; revoking by the token works too
    assert store.revoke(token, now_ms=9_000).revoked_ms == 6_000


def test_a_store_that_does_not_exist_has_no_keys_and_is_not_created(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "nowhere" / "keys.sqlite")
    assert store.list() == []
    with pytest.raises(AuthError):
        store.authenticate("eml_aaaaaaaa_" + "x" * 32)
    with pytest.raises(KeyStoreError, match="no key"):
        store.revoke("abcdefgh")
    assert not (tmp_path / "nowhere").exists()


def test_scopes_grant_exact_names_case_sensitively() -> None:
    orders = parse_scope("produce:orders")
    assert orders.allows("produce", "orders")
    for other in ("orders-internal", "ORDERS", "Orders", "orders/..", "order", ""):
        assert not orders.allows("produce", other)
    assert not orders.allows("read", "orders")
    star = parse_scope("read:*")
    assert star.allows("read", "anything") and not star.allows("produce", "anything")
    admin = parse_scope("admin")
    assert admin.allows("dlq", "x") and str(admin) == "admin"
    for bad in ("orders", "write:orders", "produce:", "produce:orders/..", "produce:or ders",
                "admin:orders", "produce:orders*"):
        with pytest.raises(ScopeError):
            parse_scope(bad)


def test_create_refuses_what_it_cannot_keep(store: KeyStore) -> None:
    with pytest.raises(KeyStoreError, match="scope"):
        store.create("x", [])
    with pytest.raises(KeyStoreError, match="expected OPERATION:NAME"):
        store.create("x", ["write:orders"])
    with pytest.raises(KeyStoreError, match="name"):
        store.create("  ", ["read:*"])
    with pytest.raises(KeyStoreError, match="future"):
        store.create("x", ["read:*"], expires_in_s=0)
    assert not store.path.exists()
