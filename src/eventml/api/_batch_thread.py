"""A thread doing blocking work for coroutines, in batches: what queued meanwhile goes at once.

``await worker.submit(item)`` queues ``item`` and waits, without blocking the event loop,
for its result. One thread takes every item queued so far, in arrival order, and hands
them together to ``handle``, which answers one result (or exception) per item; while it
runs, new items queue and form the next batch (group commit, when ``handle`` writes
them in one transaction). The results go back in one call per event loop.

Cheaper than a thread pool hop (no capacity limiter, no cancel scope, one wake-up for a
whole batch), and the blocking work is serialized. The thread starts on the first item
and ends after ``idle_s`` without any. A caller cancelled while waiting does not stop
its item: it is handled all the same, its result dropped.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class BatchThread(Generic[T, R]):
    """``handle(items)`` in one thread of its own; ``await submit(item)`` for its result."""

    def __init__(self, handle: Callable[[Sequence[T]], Sequence[R | BaseException]], *,
                 name: str, idle_s: float = 5.0) -> None:
        self._handle = handle
        self.name = name
        self._idle_s = idle_s
        self._queue: queue.SimpleQueue[tuple[T, asyncio.AbstractEventLoop, asyncio.Future[R]]] = \
            queue.SimpleQueue()
        self._lock = threading.Lock()
        self._running = False

    async def submit(self, item: T) -> R:
        """``item``'s result, once the thread handled it (its exception raised here)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.put((item, loop, future))
        if not self._running:
            with self._lock:
                if not self._running:
                    self._running = True
                    threading.Thread(target=self._run, name=self.name, daemon=True).start()
        return await future

    def _run(self) -> None:
        pending = self._queue
        while True:
            try:
                first = pending.get(timeout=self._idle_s)
            except queue.Empty:
                with self._lock:  # submit() queues before it looks at _running: none is lost
                    if pending.empty():
                        self._running = False
                        return
                continue
            batch = [first]
            while True:
                try:
                    batch.append(pending.get_nowait())
                except queue.Empty:
                    break
            self._answer(batch)

    def _answer(self, batch: list[tuple[T, asyncio.AbstractEventLoop, asyncio.Future[R]]]) -> None:
        results: Sequence[R | BaseException]
        try:
            results = self._handle([item for item, _, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: {len(results)} results for {len(batch)} items")
        except Exception as e:  # every item of the batch fails with it
            results = [e] * len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[R], R | BaseException]]] = {}
        for (_, loop, future), result in zip(batch, results, strict=True):
            by_loop.setdefault(loop, []).append((future, result))
        for loop, settled in by_loop.items():
            with suppress(RuntimeError):  # the loop is closed: nobody waits for these any more
                loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[R], R | BaseException]]) -> None:
    for future, result in settled:
        if future.done():  # the caller was cancelled
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
