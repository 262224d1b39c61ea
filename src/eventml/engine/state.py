"""The per-key state handle that ``Stream.process`` functions receive."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from eventml.state.base import PartitionStore

_MISSING: Any = object()


class KeyState(MutableMapping[str, Any]):
    """A dict-like view of one key's state. Writes are kept aside until the function
    returns, so a failed (retried or dead-lettered) call leaves the state unchanged."""

    __slots__ = ("_base", "_data", "_dirty", "_store", "key", "time_ms")

    def __init__(self, store: PartitionStore, key: str, time_ms: int) -> None:
        self._store = store
        self.key = key
        self.time_ms = time_ms
        base = store.get(key)
        self._base: dict[str, Any] = base if base is not None else {}
        self._data: dict[str, Any] | None = None
        self._dirty = False

    def _view(self) -> dict[str, Any]:
        return self._base if self._data is None else self._data

    def _writable(self) -> dict[str, Any]:
        if self._data is None:
            self._data = dict(self._base)
        self._dirty = True
        return self._data

    def __getitem__(self, name: str) -> Any:
        return self._view()[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self._view().get(name, default)

    def __setitem__(self, name: str, value: Any) -> None:
        self._writable()[name] = value

    set = __setitem__

    def __delitem__(self, name: str) -> None:
        del self._writable()[name]

    def clear(self) -> None:
        self._data = {}
        self._dirty = True

    def __iter__(self) -> Iterator[str]:
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())

    def flush(self) -> bool:
        """Write the changes to the store; returns whether there were any."""
        if not self._dirty:
            return False
        if self._data:
            self._store.put(self.key, self._data, time_ms=self.time_ms)
        else:
            self._store.delete(self.key)
        return True

    def __repr__(self) -> str:
        return f"KeyState({self.key!r}, {self._view()!r})"
