"""Copy-on-write for detectors kept in a stream's keyed state.

The state contract says a value, once put, is never changed again. A detector holds
buffers of a window's events, and copying them at every event would cost a window's
size per event. So a detector is changed in place only until the state store pickles
it (which the store does when it stages the batch's writes into the transaction):
pickling seals it, and the next update works on a copy (:meth:`CopyOnWrite.writable`).
The committed value therefore never changes after the fact, a rolled-back batch leaves
the committed detector as it was, and the copy costs once per batch, not per event.
An unpickled (restored) detector is sealed too. (The engine also reopens a partition's
stores after a refused commit, so today an in-place change would not leak into the
replay; this keeps detectors within the contract whatever a backend holds in memory.)
"""

from __future__ import annotations

import copy
from typing import Any, Self


class CopyOnWrite:
    """Base of the detectors: sealed by pickling, copied by :meth:`writable`."""

    _sealed: bool = False

    def __getstate__(self) -> dict[str, Any]:
        self._sealed = True
        return dict(self.__dict__)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._sealed = True

    @property
    def sealed(self) -> bool:
        """Whether this object may be committed state (pickled): change a copy instead."""
        return self._sealed

    def seal(self) -> None:
        """Treat this object as committed: :meth:`writable` returns copies from now on."""
        self._sealed = True

    def writable(self) -> Self:
        """This detector, or an unsealed copy of it if it has been pickled."""
        if not self._sealed:
            return self
        clone = object.__new__(type(self))
        clone.__dict__.update(copy.deepcopy(self.__dict__))  # immutable parts return themselves
        clone._sealed = False
        return clone
