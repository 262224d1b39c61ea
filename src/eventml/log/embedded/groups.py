"""Consumer groups shared by every process on one data directory.

Tables (see :mod:`~eventml.log.embedded.schema`):

* ``group_members``: who is in the group, subscribed to what, which process it
  lives in (host, pid, process start time) and when it last polled.
* ``group_owners``: which member currently *holds* each partition. A member
  takes a partition only when no live member holds it, and gives it up on its
  own next sync once the assignment moves it elsewhere: so two live members
  never read one partition at the same time, even while a rebalance is under way.
* ``group_offsets``: committed next-to-read offsets.
* ``groups.generation``: bumped whenever membership changes or a partition is
  released, so the other members re-run the assignment on their next poll
  instead of waiting for their periodic check.

A member is dead when it has not polled for its ``max_poll_interval_ms`` or when
its process is gone (same host only; a member of the calling process is never
judged by pid). The target assignment is :func:`~eventml.log._groups.assign_partitions`
(Kafka's range assignor) over the live members, exactly as in the memory log.

Every function here runs on a connection the caller owns; the writing ones must
run inside the caller's write transaction (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from eventml.log._groups import assign_partitions
from eventml.log.base import CommitFailed, TopicPartition


@dataclass(frozen=True, slots=True)
class ProcessId:
    """A process: ``host`` names where its pid means something, ``start`` tells a reused pid apart.

    ``host`` is the host name plus the pid namespace (Linux), so containers that
    share a host name and a data directory but not their pids never judge each
    other's members by pid. ``start`` is 0 where unknown.
    """

    host: str
    pid: int
    start: int


_ME: ProcessId | None = None


def current_process() -> ProcessId:
    """This process (recomputed after a fork)."""
    global _ME
    pid = os.getpid()
    if _ME is None or _ME.pid != pid:
        _ME = ProcessId(_pid_space(), pid, _process_start(pid) or 0)
    return _ME


def _pid_space() -> str:
    host = socket.gethostname()
    try:
        return f"{host}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return host


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` from the state on (Linux), or ``None``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    return raw[raw.rfind(")") + 2 :].split()


def _process_start(pid: int) -> int | None:
    fields = _proc_stat(pid)
    if fields is None or len(fields) < 20:
        return None
    return int(fields[19])  # field 22, starttime (clock ticks since boot)


def process_alive(host: str, pid: int, start: int, me: ProcessId) -> bool:
    """Whether the process that registered a member still runs (``True`` when it cannot tell)."""
    if host != me.host or pid == me.pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    except OSError:
        return True
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc: the pid exists, take it as alive
    if fields[0] in ("Z", "X"):  # killed but not yet reaped
        return False
    return not (start and len(fields) >= 20 and int(fields[19]) != start)


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What a member holds after a sync (its assignment minus what others still hold)."""

    owned: frozenset[TopicPartition]
    generation: int
    expiry_ms: int | None  # the earliest time another member may expire (as last seen)
    joined: bool  # the member was not in the group (new, or expired and now back)


def generation(conn: sqlite3.Connection, group: str) -> int:
    """The group's generation (-1 if the group has never synced); a cheap read."""
    row = conn.execute("SELECT generation FROM groups WHERE grp = ?", (group,)).fetchone()
    return -1 if row is None else int(row[0])


def _current_generation(conn: sqlite3.Connection, group: str) -> int:
    row = conn.execute("SELECT generation FROM groups WHERE grp = ?", (group,)).fetchone()
    if row is None:
        conn.execute("INSERT INTO groups (grp, generation) VALUES (?, 0)", (group,))
        return 0
    return int(row[0])


def _bump(conn: sqlite3.Connection, group: str, gen: int) -> int:
    conn.execute("UPDATE groups SET generation = ? WHERE grp = ?", (gen + 1, group))
    return gen + 1


@dataclass(slots=True)
class _Members:
    live: dict[str, list[str]]  # member -> subscribed topics
    removed: bool  # dead members were removed
    expiry_ms: dict[str, int]  # member -> when it expires unless it polls again


def _live_members(conn: sqlite3.Connection, group: str, now_ms: int, me: ProcessId) -> _Members:
    """Subscriptions of the live members; dead ones are removed with their partitions."""
    live: dict[str, list[str]] = {}
    expiry: dict[str, int] = {}
    dead: list[str] = []
    rows = conn.execute(
        "SELECT member, host, pid, pid_start, topics, last_poll_ms, max_poll_interval_ms "
        "FROM group_members WHERE grp = ?",
        (group,),
    ).fetchall()
    for member, host, pid, start, topics, last_poll, max_poll in rows:
        if now_ms - last_poll > max_poll or not process_alive(host, pid, start, me):
            dead.append(member)
        else:
            live[member] = json.loads(topics)
            expiry[member] = last_poll + max_poll
    if dead:
        conn.executemany(
            "DELETE FROM group_members WHERE grp = ? AND member = ?", [(group, m) for m in dead]
        )
        conn.executemany(
            "DELETE FROM group_owners WHERE grp = ? AND member = ?", [(group, m) for m in dead]
        )
    return _Members(live, bool(dead), expiry)


def _partition_counts(conn: sqlite3.Connection) -> dict[str, int]:
    return {name: int(n) for name, n in conn.execute("SELECT name, partitions FROM topics")}


def _owners(conn: sqlite3.Connection, group: str) -> dict[TopicPartition, str]:
    return {
        TopicPartition(topic, p): member
        for topic, p, member in conn.execute(
            "SELECT topic, p, member FROM group_owners WHERE grp = ?", (group,)
        )
    }


def full_sync(
    conn: sqlite3.Connection,
    group: str,
    member: str,
    topics: Sequence[str],
    max_poll_interval_ms: int,
    now_ms: int,
    me: ProcessId,
) -> SyncResult:
    """Heartbeat ``member``, expire dead members, release and take partitions.

    Runs inside the caller's write transaction.
    """
    gen = _current_generation(conn, group)
    topics_json = json.dumps(list(topics))
    row = conn.execute(
        "SELECT topics, max_poll_interval_ms FROM group_members WHERE grp = ? AND member = ?",
        (group, member),
    ).fetchone()
    changed = row is None or tuple(row) != (topics_json, max_poll_interval_ms)
    conn.execute(
        "INSERT INTO group_members (grp, member, host, pid, pid_start, topics, joined_ms, "
        "last_poll_ms, max_poll_interval_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (grp, member) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
        "pid_start = excluded.pid_start, topics = excluded.topics, "
        "last_poll_ms = excluded.last_poll_ms, max_poll_interval_ms = excluded.max_poll_interval_ms",
        (
            group,
            member,
            me.host,
            me.pid,
            me.start,
            topics_json,
            now_ms,
            now_ms,
            max_poll_interval_ms,
        ),
    )
    members = _live_members(conn, group, now_ms, me)
    live = members.live
    changed = changed or members.removed
    counts = _partition_counts(conn)
    target = assign_partitions(live, counts).get(member, frozenset())
    owners = _owners(conn, group)

    released = [
        tp
        for tp, owner in owners.items()
        if owner not in live
        or tp.partition >= counts.get(tp.topic, 0)
        or (owner == member and tp not in target)
    ]
    if released:
        conn.executemany(
            "DELETE FROM group_owners WHERE grp = ? AND topic = ? AND p = ?",
            [(group, tp.topic, tp.partition) for tp in released],
        )
        for tp in released:
            del owners[tp]
        changed = True

    taken = [tp for tp in target if tp not in owners]
    if taken:
        conn.executemany(
            "INSERT INTO group_owners (grp, topic, p, member, generation) VALUES (?, ?, ?, ?, ?)",
            [(group, tp.topic, tp.partition, member, gen) for tp in taken],
        )
    owned = frozenset(tp for tp in target if owners.get(tp, member) == member)
    if changed:
        gen = _bump(conn, group, gen)
    others = [t for m, t in members.expiry_ms.items() if m != member]
    return SyncResult(owned, gen, min(others) if others else None, row is None)


def leave(conn: sqlite3.Connection, group: str, member: str) -> None:
    """Remove ``member`` and release its partitions; inside a write transaction."""
    cur = conn.execute("DELETE FROM group_members WHERE grp = ? AND member = ?", (group, member))
    conn.execute("DELETE FROM group_owners WHERE grp = ? AND member = ?", (group, member))
    if cur.rowcount:
        _bump(conn, group, _current_generation(conn, group))


def commit(
    conn: sqlite3.Connection,
    group: str,
    member: str,
    offsets: Mapping[TopicPartition, int],
    now_ms: int,
    me: ProcessId,
) -> None:
    """Store ``offsets`` if ``member`` holds every partition and keeps it; inside a write transaction.

    Refused (:class:`CommitFailed`) when the assignment over the live members no
    longer gives a partition to ``member`` (as in the memory log and in Kafka during
    a rebalance), or another member holds it.
    """
    members = _live_members(conn, group, now_ms, me)
    if members.removed:
        _bump(conn, group, _current_generation(conn, group))
    target = assign_partitions(members.live, _partition_counts(conn)).get(member, frozenset())
    owners = _owners(conn, group)
    stray = [tp for tp in offsets if tp not in target or owners.get(tp, member) != member]
    if stray:
        raise CommitFailed(
            f"commit refused for {group!r}: {len(stray)} partition(s) such as "
            f"{stray[0].topic}[{stray[0].partition}] moved to another member; "
            "poll again and reprocess from the committed offsets"
        )
    conn.executemany(
        "INSERT INTO group_offsets (grp, topic, p, o, committed_ms) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (grp, topic, p) DO UPDATE SET o = excluded.o, committed_ms = excluded.committed_ms",
        [(group, tp.topic, tp.partition, offset, now_ms) for tp, offset in offsets.items()],
    )


def committed(
    conn: sqlite3.Connection, group: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """Committed offsets of ``group`` (``None`` where nothing was committed)."""
    tps = list(partitions)
    if not tps:
        return {}
    stored = {
        TopicPartition(topic, p): int(o)
        for topic, p, o in conn.execute(
            "SELECT topic, p, o FROM group_offsets WHERE grp = ?", (group,)
        )
    }
    return {tp: stored.get(tp) for tp in tps}


def topics_changed(conn: sqlite3.Connection) -> None:
    """Make every group re-run its assignment at its next poll; inside a write transaction."""
    conn.execute("UPDATE groups SET generation = generation + 1")


def forget_topic(conn: sqlite3.Connection, topic: str) -> None:
    """Drop every group's offsets and holdings for ``topic``; inside a write transaction."""
    conn.execute("DELETE FROM group_offsets WHERE topic = ?", (topic,))
    conn.execute("DELETE FROM group_owners WHERE topic = ?", (topic,))
    topics_changed(conn)
