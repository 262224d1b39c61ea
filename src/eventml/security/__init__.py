"""API keys for the eventml service: scoped, expiring, revocable, stored hashed."""

from eventml.security.keys import (
    OPERATIONS,
    AuthError,
    Operation,
    Scope,
    ScopeError,
    is_resource_name,
    parse_scope,
)
from eventml.security.store import ApiKey, KeyStore, KeyStoreError, default_path

__all__ = [
    "OPERATIONS",
    "ApiKey",
    "AuthError",
    "KeyStore",
    "KeyStoreError",
    "Operation",
    "Scope",
    "ScopeError",
    "default_path",
    "is_resource_name",
    "parse_scope",
]
