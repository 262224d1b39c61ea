"""Adaptive micro-batch size (pure): small while caught up, large while behind."""

from __future__ import annotations


class BatchSizer:
    """Doubles the batch size after a full poll (a backlog), halves it after a poll that
    returned less than a quarter (caught up), within ``[min_size, max_size]``."""

    __slots__ = ("max_size", "min_size", "size")

    def __init__(self, min_size: int, max_size: int) -> None:
        if not 1 <= min_size <= max_size:
            raise ValueError(f"need 1 <= min_size <= max_size, got {min_size}, {max_size}")
        self.min_size = min_size
        self.max_size = max_size
        self.size = min_size

    def observe(self, polled: int) -> int:
        """Record how many records the last poll returned; returns the next size."""
        if polled >= self.size:
            self.size = min(self.max_size, self.size * 2)
        elif polled < self.size // 4:
            self.size = max(self.min_size, self.size // 2)
        return self.size
