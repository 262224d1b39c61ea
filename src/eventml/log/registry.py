"""Open a log by URL: ``memory://``, ``embedded://PATH``, ``kafka://HOST:PORT``.

Backends register a factory per URL scheme; nothing here knows them by name, and
a backend's dependencies are imported only when its scheme is used.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from eventml.log.base import Log, LogError

DEFAULT_URL = "embedded://./.eventml"
ENV_VAR = "EVENTML_BROKER"


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    """A parsed broker URL: ``scheme://location?option=value&...``."""

    raw: str
    scheme: str
    location: str
    options: Mapping[str, str]


Factory = Callable[[BrokerUrl], Log]

# scheme -> factory, or "module:function" resolved on first use (keeps imports lazy)
_BACKENDS: dict[str, Factory | str] = {
    "memory": "eventml.log.memory:open_memory_log",
    "embedded": "eventml.log.embedded:open_embedded_log",
    "kafka": "eventml.log.kafka:open_kafka_log",
}
_EXAMPLES = {
    "memory": "memory://",
    "embedded": "embedded://PATH",
    "kafka": "kafka://HOST:PORT",
}


class UnsupportedBroker(LogError, ValueError):
    pass


def data_dir(url: str | None = None) -> Path:
    """The directory for local files (views, models): the embedded log's, else ``./.eventml``."""
    parsed = parse_broker_url(url or DEFAULT_URL)
    base = parsed.location if parsed.scheme == "embedded" else parse_broker_url(DEFAULT_URL).location
    return Path(base)


def register_backend(scheme: str, factory: Factory | str, example: str | None = None) -> None:
    """Make ``scheme://...`` URLs open with ``factory`` (a callable or ``"module:function"``)."""
    _BACKENDS[scheme] = factory
    _EXAMPLES[scheme] = example or f"{scheme}://..."


def supported_schemes() -> list[str]:
    return sorted(_BACKENDS)


def parse_broker_url(url: str) -> BrokerUrl:
    if "://" not in url:
        raise UnsupportedBroker(f"broker URL {url!r} has no scheme: {_choices()}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _BACKENDS:
        raise UnsupportedBroker(f"unknown broker scheme {scheme + '://'!r} in {url!r}: {_choices()}")
    return BrokerUrl(url, scheme, parts.netloc + parts.path, dict(parse_qsl(parts.query)))


def open_log(url: str | None = None) -> Log:
    """Open the log at ``url``; default: ``$EVENTML_BROKER`` or ``embedded://./.eventml``."""
    parsed = parse_broker_url(url or os.environ.get(ENV_VAR) or DEFAULT_URL)
    factory = _BACKENDS[parsed.scheme]
    if isinstance(factory, str):
        module, _, attr = factory.partition(":")
        factory = getattr(importlib.import_module(module), attr)
        _BACKENDS[parsed.scheme] = factory
    return factory(parsed)


def _choices() -> str:
    return "use one of " + ", ".join(_EXAMPLES[s] for s in sorted(_BACKENDS))
