"""WAL checkpoints off the commit path: one thread per process and log file.

SQLite's automatic checkpoint runs inside the ``COMMIT`` that takes the WAL past
``wal_autocheckpoint`` pages: that append waits while the WAL is copied into the database
and the file synced (tens of milliseconds), and so does every append queued behind it
(group commit, as the HTTP ingest does it): at 1,000 single-event appends a second, a
stall of ~20 ms every ~0.7 s, the p99 of the whole path. :class:`Checkpointer` runs a
``PASSIVE`` checkpoint every ``interval_s`` while appends come in, from its own
connection, so the automatic one (left in place as the backstop) finds nothing left to
copy. A passive checkpoint waits for no reader or writer and blocks none; durability is
unchanged (the WAL is synced at each commit as before, the database by the checkpoint).

The thread starts with the first append and ends, closing its connection, after
``idle_s`` without any.

**Fork.** A process forked while the thread is inside SQLite could inherit SQLite's
mutexes locked, and its first SQLite call would hang. So a fork waits for a running
checkpoint to finish (``os.register_at_fork``), and the child starts with no thread and
fresh locks (its next append starts its own).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import suppress

_log = logging.getLogger(__name__)

INTERVAL_S = 0.1
IDLE_S = 2.0


class Checkpointer:
    """Passive checkpoints of one log file, in a thread, while appends come in."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, interval_s: float = INTERVAL_S,
                 idle_s: float = IDLE_S) -> None:
        self._connect = connect
        self.interval_s, self.idle_s = interval_s, idle_s
        self._lock = threading.Lock()
        self._busy = threading.Lock()  # held while a checkpoint runs: a fork waits for it
        self._dirty = False
        self._running = False
        self.checkpoints = 0
        _ALL.add(self)

    def appended(self) -> None:
        """An append committed: checkpoint within ``interval_s`` (starting the thread)."""
        with self._lock:
            self._dirty = True
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="eventml-log-checkpoint", daemon=True).start()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        quiet_since = time.monotonic()
        try:
            while True:
                time.sleep(self.interval_s)
                with self._lock:
                    dirty, self._dirty = self._dirty, False
                    if not dirty and time.monotonic() - quiet_since >= self.idle_s:
                        self._running = False
                        return
                if not dirty:
                    continue
                quiet_since = time.monotonic()
                with self._busy:  # every SQLite call of this thread: a fork waits for it
                    try:
                        if conn is None:
                            conn = self._connect()
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        self.checkpoints += 1
                    except Exception as e:  # the file went away, or is locked: the backstop remains
                        _log.debug("background checkpoint failed: %s", e)
                        if conn is not None:
                            with suppress(sqlite3.Error):
                                conn.close()
                        conn = None
        finally:
            if conn is not None:
                with self._busy, suppress(sqlite3.Error):
                    conn.close()


_ALL: weakref.WeakSet[Checkpointer] = weakref.WeakSet()


def _before_fork() -> None:
    for c in list(_ALL):
        c._busy.acquire()


def _after_fork_in_parent() -> None:
    for c in list(_ALL):
        c._busy.release()


def _after_fork_in_child() -> None:
    for c in list(_ALL):  # the thread did not come along: nothing runs, nothing is held
        c._lock, c._busy = threading.Lock(), threading.Lock()
        c._running = c._dirty = False


os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                    after_in_child=_after_fork_in_child)
