"""API keys and scopes (pure: no I/O).

A key is ``eml_<id>_<secret>``: ``id`` is 8 random base32 characters (40 bits) that name
the key in listings and logs, ``secret`` 32 URL-safe characters (192 random bits). Only
the key's SHA-256 is stored: the secret is high-entropy, so a fast hash is as safe as a
slow one here (nothing to guess), and a lookup is by ``id`` then one constant-time
comparison of digests.

A scope is ``OPERATION:RESOURCE``: ``produce``, ``read``, ``dlq`` and ``schema-write`` on
a topic (or view, or subject) named exactly, case-sensitively, or on ``*`` (every one);
``admin`` alone grants everything. A resource is checked after the server has decoded and
validated it as a name, so ``orders`` never grants ``orders-internal``, ``ORDERS`` or
``orders/..``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Literal

Operation = Literal["produce", "read", "dlq", "schema-write", "admin"]
OPERATIONS: tuple[Operation, ...] = ("produce", "read", "dlq", "schema-write", "admin")
PREFIX = "eml_"
_ID_CHARS = 8
_SECRET_BYTES = 24  # 192 bits
_TOKEN = re.compile(r"eml_([a-z2-7]{8})_([A-Za-z0-9_-]{32})")
# what a scope's resource may be: the log's topic-name rule (letters, digits, . _ -)
_RESOURCE = re.compile(r"[A-Za-z0-9._-]{1,249}")

AuthFailure = Literal["malformed", "unknown", "revoked", "expired"]


def looks_like_jwt(token: str) -> bool:
    """Three dot-separated parts: a JWT (an eventml API key is ``eml_<id>_<secret>``)."""
    return token.count(".") == 2 and not token.startswith("eml_")


class ScopeError(ValueError):
    """A scope that does not parse (the message says the grammar)."""


class AuthError(Exception):
    """A key that does not authenticate; ``reason`` says why (kept out of HTTP responses:
    a client learns only that its key was refused)."""

    def __init__(self, reason: AuthFailure, key_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason: AuthFailure = reason
        self.key_id = key_id


@dataclass(frozen=True, slots=True)
class Scope:
    operation: Operation
    resource: str  # a name, or "*"

    def __str__(self) -> str:
        return "admin" if self.operation == "admin" else f"{self.operation}:{self.resource}"

    def allows(self, operation: str, resource: str) -> bool:
        if self.operation == "admin":
            return True
        return self.operation == operation and (self.resource == "*" or self.resource == resource)


def parse_scope(text: str) -> Scope:
    """``produce:orders``, ``read:*``, ``admin``: one scope, or :class:`ScopeError`."""
    text = text.strip()
    if text in ("admin", "admin:*"):
        return Scope("admin", "*")
    operation, sep, resource = text.partition(":")
    if not sep or operation not in OPERATIONS or operation == "admin":
        raise ScopeError(
            f"scope {text!r}: expected OPERATION:NAME with OPERATION one of produce, read, dlq, "
            "schema-write (or 'admin' alone), e.g. produce:orders or read:*"
        )
    if resource != "*" and not _RESOURCE.fullmatch(resource):
        raise ScopeError(f"scope {text!r}: the name must be '*' or letters, digits, '.', '_', '-'")
    return Scope(operation, resource)


def is_resource_name(name: str) -> bool:
    """Whether ``name`` is a name a scope can grant (the log's topic-name characters)."""
    return _RESOURCE.fullmatch(name) is not None


def new_key() -> tuple[str, str]:
    """A fresh ``(key id, token)``; the token is shown once and never stored."""
    key_id = base64.b32encode(secrets.token_bytes(5)).decode().lower()
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    return key_id, f"{PREFIX}{key_id}_{secret}"


def key_id_of(token: str) -> str:
    """The id in ``token``, or :class:`AuthError` ``malformed``."""
    m = _TOKEN.fullmatch(token)
    if m is None:
        raise AuthError("malformed")
    return m.group(1)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_digest(token: str, stored: str) -> bool:
    """Constant-time comparison of ``token``'s digest with a stored one."""
    return hmac.compare_digest(digest(token), stored)
