"""Pure parts of HTTP prediction: request bodies to instances, instances to a matrix,
async results kept for a while, webhook URLs checked (no I/O here; time passed in).
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from numpy.typing import NDArray

from eventml.ml._matrix import feature_matrix

_SHOWN = 3


class BadInput(ValueError):
    """A request the API refuses: ``status`` (4xx), ``code`` and a one-line message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


INVALID_BODY = 42211
MISSING_FEATURE = 42212
INVALID_FEATURE = 42213
INVALID_CALLBACK = 42215
TOO_MANY_INSTANCES = 41303


def _clip(text: str, n: int = 120) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= n else line[: n - 3] + "..."


def parse_instances(document: Any, max_instances: int) -> list[dict[str, Any]]:
    """The instances of a body: ``{"features": {...}}`` (one) or ``{"instances": [{...}, ...]}``
    (1 to ``max_instances``); :class:`BadInput` otherwise."""
    if not isinstance(document, dict):
        raise BadInput(422, INVALID_BODY, 'the body must be a JSON object: {"features": {...}} '
                       'or {"instances": [{...}, ...]}')
    has_one, has_many = "features" in document, "instances" in document
    if has_one == has_many:
        raise BadInput(422, INVALID_BODY, 'send exactly one of "features" (an object) or '
                       '"instances" (an array of objects)')
    if has_one:
        items = [document["features"]]
    else:
        items = document["instances"]
        if not isinstance(items, list) or not items:
            raise BadInput(422, INVALID_BODY, '"instances" must be a non-empty array of objects')
        if len(items) > max_instances:
            raise BadInput(413, TOO_MANY_INSTANCES, f"{len(items)} instances in one request: send at "
                           f"most {max_instances} per request")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            where = "features" if has_one else f"instance {i}"
            raise BadInput(422, INVALID_BODY, f"{where} must be a JSON object of feature values, got "
                           f"{type(item).__name__}")
    return items


def matrix_of(instances: Sequence[Mapping[str, Any]], features: Sequence[str]) -> NDArray[np.float64]:
    """One float64 row per instance, columns in ``features``' order; :class:`BadInput` (422)
    naming the first instances with a missing or non-numeric feature. Extra fields are ignored."""
    missing: list[str] = []
    invalid: list[str] = []
    single = len(instances) == 1
    for i, inst in enumerate(instances):
        where = "" if single else f"instance {i}: "
        for f in features:
            v = inst.get(f)
            if v is None:
                missing.append(f"{where}{f!r}")
            elif type(v) not in (int, float) or not math.isfinite(v):
                invalid.append(f"{where}{f!r} is {_clip(repr(v), 40)}")
        if len(missing) + len(invalid) >= _SHOWN:
            break
    if missing:
        raise BadInput(422, MISSING_FEATURE, f"missing feature(s) {', '.join(missing[:_SHOWN])}: the "
                       f"model needs {', '.join(features)}")
    if invalid:
        raise BadInput(422, INVALID_FEATURE, f"feature values must be finite JSON numbers: "
                       f"{'; '.join(invalid[:_SHOWN])}")
    try:
        return feature_matrix(instances, features, missing="raise")
    except (KeyError, TypeError, ValueError, OverflowError) as e:  # pragma: no cover - checked above
        raise BadInput(422, INVALID_FEATURE, f"feature values must be finite JSON numbers ({e})") from None


# -- async results ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    """A request accepted by this process and not answered yet."""

    model: str  # the model's NAME (what a reader's key must allow)
    accepted_at: float
    callback: str | None = None


class ResultStore:
    """Results (and pending requests) by request id: at most ``max_entries`` of each, each
    kept ``ttl_s`` seconds after it arrived (the oldest go first). Thread-safe."""

    def __init__(self, *, max_entries: int = 100_000, ttl_s: float = 600.0) -> None:
        if max_entries < 1 or ttl_s <= 0:
            raise ValueError("a result store needs max_entries >= 1 and ttl_s > 0")
        self.max_entries, self.ttl_s = max_entries, ttl_s
        self._results: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._lock = threading.Lock()

    def expect(self, request_id: str, pending: Pending) -> None:
        with self._lock:
            self._pending[request_id] = pending
            self._expire(pending.accepted_at)

    def forget(self, request_id: str) -> None:
        with self._lock:
            self._pending.pop(request_id, None)

    def put(self, request_id: str, result: dict[str, Any], now: float) -> Pending | None:
        """Keep ``result``; the pending request it answers, if this process accepted it
        (``None`` also for a repeat: each result is handed over once)."""
        with self._lock:
            pending = self._pending.pop(request_id, None)
            repeat = request_id in self._results
            self._results[request_id] = (now, result)
            self._results.move_to_end(request_id)
            self._expire(now)
        return None if repeat else pending

    def get(self, request_id: str, now: float) -> tuple[dict[str, Any] | None, Pending | None]:
        """``(result, None)``, ``(None, pending)`` or ``(None, None)`` (unknown or expired)."""
        with self._lock:
            self._expire(now)
            found = self._results.get(request_id)
            if found is not None:
                return found[1], None
            return None, self._pending.get(request_id)

    def __len__(self) -> int:
        return len(self._results)

    def _expire(self, now: float) -> None:
        oldest = now - self.ttl_s
        results, pending = self._results, self._pending
        while results and (len(results) > self.max_entries or next(iter(results.values()))[0] < oldest):
            results.popitem(last=False)
        while pending and (len(pending) > self.max_entries
                           or next(iter(pending.values())).accepted_at < oldest):
            pending.popitem(last=False)


# -- webhooks ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Callback:
    """A webhook target: ``scheme://host:port/path?query``."""

    url: str
    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent in the request line


def parse_callback(url: Any) -> Callback:
    """An ``http``/``https`` URL with a host and no credentials; :class:`BadInput` otherwise."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise BadInput(422, INVALID_CALLBACK, '"callback" must be an http(s) URL of at most 2048 '
                       'characters')
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise BadInput(422, INVALID_CALLBACK, f"callback {_clip(url)!r} is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BadInput(422, INVALID_CALLBACK, f"callback scheme {_clip(scheme or 'none')!r} is not "
                       "allowed: use http or https")
    if not parts.hostname:
        raise BadInput(422, INVALID_CALLBACK, "the callback URL has no host")
    if parts.username is not None or parts.password is not None:
        raise BadInput(422, INVALID_CALLBACK, "the callback URL must not hold credentials")
    if any(c in url for c in "\r\n\t "):
        raise BadInput(422, INVALID_CALLBACK, "the callback URL must not hold whitespace")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Callback(url, scheme, parts.hostname, port or (443 if scheme == "https" else 80), target)


def address_refusal(address: str, *, allow_loopback: bool, allow_private: bool) -> str | None:
    """Why a webhook may not go to the IP ``address`` (``None``: it may)."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return f"{address} is not an IP address"
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    if ip.is_loopback:
        return None if allow_loopback else "it is a loopback address (allow_loopback is off)"
    if ip.is_unspecified or ip.is_multicast:
        return "it is an unspecified or multicast address"
    if ip.is_private or ip.is_link_local or ip.is_reserved or not ip.is_global:
        return None if allow_private else ("it is a private, link-local or reserved address "
                                           "(allow_private is off)")
    return None
