"""Bearer JWTs from an identity provider, as an alternative to API keys.

A token is accepted only if it is signed with one of the **pinned** algorithms by the
configured key, names the configured issuer (``iss``) and audience (``aud``), and has not
expired (``exp`` is required; ``nbf`` and ``iat`` are honoured; ``leeway_s`` of clock
skew). The algorithm in the token's header is never trusted on its own: ``none`` is always
refused, and HMAC (``HS*``) and public-key algorithms cannot be pinned together, so a public
key can never be used as an HMAC secret (the classic algorithm-confusion attack). An HMAC
secret must be at least 32 bytes.

Permissions come from the ``scope`` claim (OAuth 2.0: a space-separated string, or a list,
as ``scp``): eventml's scopes (``produce:orders``, ``read:*``, ``admin``) are taken, others
(``openid``, ``profile`` ...) grant nothing. The token becomes an :class:`ApiKey` whose id
is ``jwt:`` + its subject, so routes check it exactly as a key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventml.security.keys import AuthError, Scope, ScopeError, parse_scope
from eventml.security.store import ApiKey

try:
    import jwt as _jwt
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"JWT bearer tokens need PyJWT ({e}): pip install 'eventml[serve]'") from e

HMAC = frozenset({"HS256", "HS384", "HS512"})
PUBLIC_KEY = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                        "ES512", "EdDSA"})
MIN_SECRET_BYTES = 32


class JwtConfigError(ValueError):
    """Settings that cannot verify tokens safely (the message says what to change)."""


@dataclass(frozen=True)
class JwtSettings:
    issuer: str
    audience: str
    key: str | bytes
    """A PEM public key for RS*/PS*/ES*/EdDSA, the shared secret for HS*."""
    algorithms: tuple[str, ...] = ("RS256",)
    leeway_s: float = 30.0


class JwtVerifier:
    """Checks bearer JWTs against :class:`JwtSettings` (see the module docstring)."""

    def __init__(self, settings: JwtSettings) -> None:
        algorithms = tuple(settings.algorithms)
        unknown = [a for a in algorithms if a not in HMAC | PUBLIC_KEY]
        if not algorithms or unknown:
            raise JwtConfigError(f"JWT algorithms must be some of {', '.join(sorted(HMAC | PUBLIC_KEY))}"
                                 f"{f' (not {unknown})' if unknown else ''}")
        if set(algorithms) & HMAC and set(algorithms) & PUBLIC_KEY:
            raise JwtConfigError("pin either HMAC (HS*) or public-key algorithms, not both: a public "
                                 "key must never verify as an HMAC secret")
        if not settings.issuer or not settings.audience:
            raise JwtConfigError("JWT verification needs an issuer and an audience")
        key = settings.key.encode() if isinstance(settings.key, str) else settings.key
        if set(algorithms) & HMAC:
            if len(key) < MIN_SECRET_BYTES:
                raise JwtConfigError(f"an HMAC secret must be at least {MIN_SECRET_BYTES} bytes")
            self._key: Any = key
        else:
            try:  # parse once: a bad key fails here, not on the first request
                self._key = _jwt.get_algorithm_by_name(algorithms[0]).prepare_key(key)
            except Exception as e:
                raise JwtConfigError(f"the JWT key is not a public key for {algorithms[0]}: "
                                     f"{type(e).__name__}") from None
        self.settings = settings
        self.algorithms = algorithms

    def verify(self, token: str) -> ApiKey:
        """The token as a key, or :class:`AuthError` (``malformed``: not a JWT or a bad
        signature, issuer, audience or algorithm; ``expired``)."""
        try:
            header = _jwt.get_unverified_header(token)
        except _jwt.PyJWTError:
            raise AuthError("malformed") from None
        if header.get("alg") not in self.algorithms:
            raise AuthError("malformed")
        try:
            claims = _jwt.decode(
                token, self._key, algorithms=list(self.algorithms), audience=self.settings.audience,
                issuer=self.settings.issuer, leeway=self.settings.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]})
        except _jwt.ExpiredSignatureError:
            raise AuthError("expired") from None
        except _jwt.PyJWTError:
            raise AuthError("malformed") from None
        subject = str(claims["sub"])[:64]
        return ApiKey(key_id=f"jwt:{subject}", name=subject, scopes=scopes_of(claims),
                      created_ms=int(claims.get("iat", 0)) * 1000, expires_ms=int(claims["exp"]) * 1000)


def scopes_of(claims: dict[str, Any]) -> tuple[Scope, ...]:
    """eventml's scopes among the token's ``scope``/``scp`` claim; others grant nothing."""
    raw = claims.get("scope", claims.get("scp", ""))
    items: Sequence[Any] = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
    found: list[Scope] = []
    for item in items:
        if not isinstance(item, str):
            continue
        try:
            found.append(parse_scope(item))
        except ScopeError:
            continue
    return tuple(found)
