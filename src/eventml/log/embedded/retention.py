"""Retention and compaction in SQL, with the semantics of :mod:`eventml.log._retention`.

Per partition, inside the caller's write transaction:

* ``delete`` + ``retention_ms``: drop the prefix of records stamped before
  ``now - retention_ms`` (stopping at the first newer-stamped record);
* ``delete`` + ``retention_bytes``: then drop the oldest records while the
  partition holds more than ``retention_bytes`` (key + value + header bytes);
* ``compact``: keep the latest record per key (keyless records and tombstones stay).
"""

from __future__ import annotations

import sqlite3

from eventml.log.base import TopicSpec
from eventml.log.embedded.schema import TopicSql


def enforce_partition(
    conn: sqlite3.Connection, sql: TopicSql, spec: TopicSpec, partition: int, now_ms: int
) -> int:
    """Delete what ``spec`` no longer keeps in ``partition``; returns the number deleted."""
    t = sql.table
    deleted = 0
    if spec.cleanup_policy == "compact":
        deleted += conn.execute(
            f"DELETE FROM {t} WHERE p = ?1 AND k IS NOT NULL AND o NOT IN "
            f"(SELECT max(o) FROM {t} WHERE p = ?1 AND k IS NOT NULL GROUP BY k)",
            (partition,),
        ).rowcount
    else:
        if spec.retention_ms is not None:
            row = conn.execute(
                sql.first_at_or_after_time, (partition, now_ms - spec.retention_ms)
            ).fetchone()
            if row is None:
                deleted += conn.execute(f"DELETE FROM {t} WHERE p = ?", (partition,)).rowcount
            else:
                deleted += conn.execute(
                    f"DELETE FROM {t} WHERE p = ? AND o < ?", (partition, row[0])
                ).rowcount
        if spec.retention_bytes is not None:
            (last_dropped,) = conn.execute(
                "SELECT max(o) FROM (SELECT o, sum(coalesce(length(k), 0) + coalesce(length(v), 0)"
                " + CASE WHEN h IS NULL THEN 0 ELSE eventml_header_size(h) END)"
                f" OVER (ORDER BY o DESC) AS newer_bytes FROM {t} WHERE p = ?)"
                " WHERE newer_bytes > ?",
                (partition, spec.retention_bytes),
            ).fetchone()
            if last_dropped is not None:
                deleted += conn.execute(
                    f"DELETE FROM {t} WHERE p = ? AND o <= ?", (partition, last_dropped)
                ).rowcount
    return deleted
