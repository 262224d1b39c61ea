"""The embedded log: SQLite (WAL) in a data directory, shared by the processes of one machine.

Open it by URL, ``embedded://PATH?durability=fsync|fast`` (see :func:`open_embedded_log`),
or construct :class:`EmbeddedLog` directly.
"""

from __future__ import annotations

from eventml.log.base import LogError
from eventml.log.embedded.log import EmbeddedLog
from eventml.log.embedded.schema import Durability
from eventml.log.registry import BrokerUrl

__all__ = ["Durability", "EmbeddedLog", "open_embedded_log"]

_OPTIONS = {
    "durability": "fsync (default: acknowledged = on disk) or fast (may lose the last "
    "acknowledged batches on power loss)",
    "retention_interval_s": "seconds between automatic retention runs; 0 turns them off "
    "(default 60)",
    "busy_timeout_s": "seconds to wait for another writer's lock (default 30)",
}


def open_embedded_log(url: BrokerUrl) -> EmbeddedLog:
    """``embedded://PATH[?durability=fsync|fast&retention_interval_s=S&busy_timeout_s=S]``.

    ``PATH`` is the data directory (created if missing), relative to the working
    directory unless absolute: ``embedded://./.eventml``, ``embedded:///var/lib/eventml``.
    """
    if not url.location:
        raise LogError(
            f"{url.raw!r} names no data directory: use e.g. embedded://./.eventml "
            "or embedded:///var/lib/eventml"
        )
    unknown = sorted(set(url.options) - set(_OPTIONS))
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in _OPTIONS.items())
        raise LogError(f"unknown option(s) {unknown} in {url.raw!r}; known options: {known}")
    durability: Durability
    match url.options.get("durability", "fsync"):
        case "fsync":
            durability = "fsync"
        case "fast":
            durability = "fast"
        case other:
            raise LogError(f"durability must be fsync or fast in {url.raw!r}, got {other!r}")
    try:
        retention_interval_s = float(url.options.get("retention_interval_s", 60.0))
        busy_timeout_s = float(url.options.get("busy_timeout_s", 30.0))
    except ValueError as e:
        raise LogError(f"{url.raw!r}: {e}; give seconds as a number") from e
    return EmbeddedLog(
        url.location,
        durability=durability,
        url=url.raw,
        retention_interval_s=retention_interval_s,
        busy_timeout_s=busy_timeout_s,
    )
