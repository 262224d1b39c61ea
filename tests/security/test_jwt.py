"""Bearer JWTs: pinned algorithms, issuer, audience and expiry checked; scopes as a key's."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient

from eventml.api import create_app
from eventml.cli.app import main
from eventml.log import TopicSpec, open_log
from eventml.security import AuthError, KeyStore
from eventml.security.jwt import JwtConfigError, JwtSettings, JwtVerifier, scopes_of

ISS, AUD = "https://id.example.com/", "eventml-api"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: Any) -> bytes:
    return bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))


def token(key: Any, alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISS, "aud": AUD, "sub": "svc-1", "iat": now, "exp": now + 300,
            "scope": "openid produce:orders read:*", **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=alg)


@pytest.fixture
def verifier(rsa_key: rsa.RSAPrivateKey) -> JwtVerifier:
    return JwtVerifier(JwtSettings(ISS, AUD, public_pem(rsa_key), ("RS256",), leeway_s=0))


def test_a_valid_token_is_a_key_with_the_eventml_scopes_of_its_claim(
        verifier: JwtVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    key = verifier.verify(token(rsa_key))
    assert key.key_id == "jwt:svc-1" and key.name == "svc-1"
    assert [str(s) for s in key.scopes] == ["produce:orders", "read:*"]  # "openid" grants nothing
    assert key.allows("produce", "orders") and not key.allows("produce", "orders-internal")
    assert not key.is_admin


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()


def test_every_way_a_token_can_be_wrong_is_refused(verifier: JwtVerifier, rsa_key: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    good = token(rsa_key)
    head, body, _sig = good.split(".")
    cases = {
        "signed by another key": token(other),
        "another issuer": token(rsa_key, iss="https://evil.example.com/"),
        "another audience": token(rsa_key, aud="other-api"),
        "no exp": token(rsa_key, exp=None),
        "no sub": token(rsa_key, sub=None),
        "no aud": token(rsa_key, aud=None),
        "not yet valid": token(rsa_key, nbf=now + 600),
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{body}.",
        # the public key as an HMAC secret: the algorithm-confusion attack
        "HS256 with the public key": _hs256_with(public_pem(rsa_key), body),
        "PS256, not pinned": token(rsa_key, alg="PS256"),
        "tampered claims": f"{head}.{_b64({'iss': ISS, 'aud': AUD, 'sub': 'root', 'exp': now + 300, 'scope': 'admin'})}.{_sig}",
        "garbage": "a.b.c",
    }
    for case, bad in cases.items():
        with pytest.raises(AuthError) as e:
            verifier.verify(bad)
        assert e.value.reason == "malformed", case
    with pytest.raises(AuthError) as e:
        verifier.verify(token(rsa_key, exp=now - 5))
    assert e.value.reason == "expired"


def _hs256_with(secret: bytes, body: str) -> str:
    import hashlib
    import hmac

    head = _b64({"alg": "HS256", "typ": "JWT"})
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def test_settings_that_cannot_verify_safely_are_refused(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = public_pem(rsa_key)
    for settings, says in [
        (JwtSettings(ISS, AUD, pem, ("none",)), "algorithms must be"),
        (JwtSettings(ISS, AUD, pem, ()), "algorithms must be"),
        (JwtSettings(ISS, AUD, pem, ("RS256", "HS256")), "not both"),
        (JwtSettings(ISS, AUD, b"short", ("HS256",)), "at least 32 bytes"),
        (JwtSettings(ISS, AUD, b"not a pem", ("RS256",)), "not a public key"),
        (JwtSettings("", AUD, pem, ("RS256",)), "issuer and an audience"),
    ]:
        with pytest.raises(JwtConfigError, match=says):
            JwtVerifier(settings)


def test_hmac_and_elliptic_curve_tokens_verify_with_their_pinned_algorithm() -> None:
    secret = b"s" * 32
    hs = JwtVerifier(JwtSettings(ISS, AUD, secret, ("HS256",)))
    assert hs.verify(token(secret, alg="HS256")).key_id == "jwt:svc-1"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    es = JwtVerifier(JwtSettings(ISS, AUD, public_pem(ec_key), ("ES256",)))
    assert es.verify(token(ec_key, alg="ES256")).scopes
    with pytest.raises(AuthError):
        es.verify(token(secret, alg="HS256"))


def test_scope_claims_as_string_list_or_scp() -> None:
    assert [str(s) for s in scopes_of({"scp": ["read:tx", "email", 3, "admin"]})] == ["read:tx", "admin"]
    assert scopes_of({"scope": "read:../x produce:"}) == ()
    assert scopes_of({}) == ()


# -- through the service -------------------------------------------------------------------


@pytest.fixture
def client(verifier: JwtVerifier, tmp_path: Path) -> Iterator[TestClient]:
    log = open_log(f"embedded://{tmp_path}/data")
    for topic in ("orders", "orders-internal"):
        log.create_topic(TopicSpec(topic, 1))
    app = create_app(log=log, keys=KeyStore(tmp_path / "keys.sqlite"), jwt=verifier)
    with TestClient(app) as c:
        c.app_log = log  # type: ignore[attr-defined]
        yield c
    log.close()


def test_the_service_takes_a_scoped_jwt_in_the_header_only(
        client: TestClient, rsa_key: rsa.RSAPrivateKey) -> None:
    log = client.app_log  # type: ignore[attr-defined]
    body = orjson.dumps([{"order": 1}])
    good = token(rsa_key, scope="produce:orders")
    h = {"authorization": f"Bearer {good}", "content-type": "application/json"}
    assert client.post("/v1/topics/orders/events", content=body, headers=h).status_code == 202
    before = log.end_offsets("orders-internal")
    for url in ("/v1/topics/orders-internal/events", "/v1/topics/ORDERS/events"):
        assert client.post(url, content=body, headers=h).status_code in (403, 422), url
    assert log.end_offsets("orders-internal") == before
    for bad in (token(rsa_key, aud="other"), token(rsa_key, exp=int(time.time()) - 60),
                token(rsa_key, scope="produce:orders", iss="https://evil/")):
        r = client.post("/v1/topics/orders/events", content=body,
                        headers={**h, "authorization": f"Bearer {bad}"})
        assert r.status_code == 401 and bad not in r.text
    r = client.post(f"/v1/topics/orders/events?access_token={good}", content=body,
                    headers={"content-type": "application/json"})
    assert r.status_code == 401 and "never in the URL" in r.json()["message"]
    assert sum(log.end_offsets("orders").values()) == 1


def test_serve_says_what_a_jwt_option_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVENTML_JWT_SECRET", raising=False)
    cases = [
        (["--jwt-issuer", ISS], "--jwt-audience"),
        (["--jwt-issuer", ISS, "--jwt-audience", AUD], "--jwt-key FILE"),
        (["--jwt-issuer", ISS, "--jwt-audience", AUD, "--jwt-key", str(tmp_path / "nope.pem")],
         "No such file"),
        (["--jwt-issuer", ISS, "--jwt-audience", AUD, "--jwt-algorithm", "HS256"], "EVENTML_JWT_SECRET"),
        (["--jwt-issuer", ISS, "--jwt-audience", AUD, "--jwt-algorithm", "none",
          "--jwt-key", __file__], "algorithms must be"),
        (["--jwt-issuer", ISS, "--jwt-audience", AUD, "--jwt-key", __file__], "not a public key"),
    ]
    for args, says in cases:
        assert main(["serve", "--broker", "memory://", "--port", "0", *args]) != 0
        err = capsys.readouterr().err.strip()
        assert says in err and len(err.splitlines()) == 1 and "Traceback" not in err, (args, err)
