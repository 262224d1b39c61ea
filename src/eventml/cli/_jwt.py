"""`eventml serve --jwt-*`: the JWT verifier from the command line, or one line saying why not."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from eventml.cli._common import fail

if TYPE_CHECKING:
    from eventml.security.jwt import JwtVerifier

SECRET_ENV = "EVENTML_JWT_SECRET"


def jwt_verifier(issuer: str | None, audience: str | None, key_file: str | None,
                 algorithms: list[str] | None) -> JwtVerifier | None:
    """None when no --jwt-* option is given; else a verifier for all of them (an HMAC
    secret comes from $EVENTML_JWT_SECRET, never the command line, which ``ps`` shows)."""
    secret = os.environ.get(SECRET_ENV)
    pinned = tuple(algorithms or ())
    if issuer is None and audience is None and key_file is None and not pinned:
        return None
    if issuer is None or audience is None:
        fail("JWT bearer tokens need both --jwt-issuer and --jwt-audience (the iss and aud every "
             "token must carry)")
    from eventml.security.jwt import HMAC, JwtConfigError, JwtSettings, JwtVerifier

    hmac = bool(set(pinned) & HMAC)
    if hmac:
        if key_file is not None:
            fail(f"--jwt-key is a public key file; an HMAC secret ({', '.join(pinned)}) comes from "
                 f"${SECRET_ENV}")
        if not secret:
            fail(f"--jwt-algorithm {pinned[0]}: set ${SECRET_ENV} to the shared secret")
        key: str | bytes = secret
    else:
        if key_file is None:
            fail("JWT bearer tokens need --jwt-key FILE: the issuer's public key (PEM)")
        try:
            key = Path(key_file).read_bytes()
        except OSError as e:
            fail(f"--jwt-key {key_file}: {e.strerror or e}")
    try:
        return JwtVerifier(JwtSettings(issuer, audience, key, pinned or ("RS256",)))
    except JwtConfigError as e:
        fail(f"JWT: {e}")
