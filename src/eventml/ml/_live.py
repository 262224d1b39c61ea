"""The models a scorer uses, ready to call: fixed ones, and registry aliases that follow
control events (hot swap).

A :class:`Followed` alias changes only when :meth:`Control.refresh` runs, which the scorer
calls at the start of a batch: a batch is scored by the versions current at its start.
Each process starts its own watcher (forked workers too), then reads the registry, in that
order (see :mod:`eventml.ml.control`). Loaded versions are cached, so flipping back and
forth loads each version once.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from eventml.log import Log
from eventml.ml.control import DEFAULT_WATCH_MS, AliasWatcher
from eventml.ml.records import AliasChange

_log = logging.getLogger(__name__)

Scores = NDArray[np.float64]
BatchFn = Callable[[NDArray[np.float64]], Scores]
ControlSource = Log | str | Callable[[], str]

_CACHE = 8  # loaded versions kept per followed alias


class ReadyModel(NamedTuple):
    """One model as a scorer calls it, with what its predictions record."""

    call: BatchFn
    label: str | None  # ``model_version`` in outputs and the stats key, e.g. "fraud:3"
    name: str  # the prediction record's ``model``
    number: int | None  # the prediction record's ``version`` (registry version number)
    features: tuple[str, ...]  # the columns it reads, in its order
    cols: tuple[int, ...] | None  # their indexes in the stream's feature matrix (None: as is)

    def matrix(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return x if self.cols is None else x[:, self.cols]


class Fixed:
    """A model that never changes (an object, or a reference resolved once)."""

    def __init__(self, model: ReadyModel) -> None:
        self.model = model

    def __repr__(self) -> str:
        return f"Fixed({self.model.label})"


class Followed:
    """``name@alias`` in a model registry, switched to the version each control event names.

    ``make`` turns a registry entry into a :class:`ReadyModel` (and raises if the version
    cannot be scored on the stream's features). A version that cannot be loaded or used
    is refused: the alias keeps its current version, and the refusal is logged and counted.
    """

    def __init__(self, registry: Any, name: str, alias: str, make: Callable[[Any], ReadyModel]) -> None:
        self.registry = registry
        self.name = name
        self.alias = alias
        self._make = make
        self._cache: OrderedDict[int, ReadyModel] = OrderedDict()
        self.model = self._load(int(registry.resolve(f"{name}@{alias}").version))
        self.target: int | None = None
        self.switches = 0
        self.refused = 0

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.alias}"

    def _load(self, number: int) -> ReadyModel:
        model = self._cache.get(number)
        if model is None:
            model = self._make(self.registry.load(f"{self.name}/{number}"))
            self._cache[number] = model
            while len(self._cache) > _CACHE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(number)
        return model

    def begin(self) -> None:
        """In a new process: the alias's version now, from the registry."""
        self.target = int(self.registry.resolve(self.ref).version)

    def apply(self, change: AliasChange) -> None:
        if change.model != self.name or change.alias != self.alias:
            return
        if change.version is None:
            _log.warning("%s was removed from the registry; still scoring with %s",
                         self.ref, self.model.label)
            return
        self.target = change.version

    def switch(self) -> None:
        """Load the target version, if it changed (a batch boundary)."""
        target, self.target = self.target, None
        if target is None or target == self.model.number:
            return
        try:
            self.model = self._load(target)
        except Exception as e:
            self.refused += 1
            _log.error("%s moved to version %d, which cannot be used here (%s); "
                       "still scoring with %s", self.ref, target, e, self.model.label)
            return
        self.switches += 1

    def __repr__(self) -> str:
        return f"Followed({self.ref} = {self.model.label})"


def unnamed_memory(url: str) -> bool:
    """An unnamed ``memory://`` URL: each opening is a new, empty log that no other
    process (and no other opening) shares."""
    return url.split("?", 1)[0].rstrip("/") == "memory:"


class Control:
    """Keeps followed aliases current: one watcher of the control topic per process.

    On an unnamed ``memory://`` log there is no control topic anyone else can write to (each
    opening is a new log), so the aliases are read from the registry at each look instead:
    the same rule within the one process such a log lives in."""

    def __init__(self, source: ControlSource, followed: list[Followed],
                 every_ms: float = DEFAULT_WATCH_MS, monotonic: Callable[[], float] = time.monotonic
                 ) -> None:
        self._source = source
        self.followed = followed
        self.every_ms = every_ms
        self._monotonic = monotonic
        self._pid: int | None = None
        self._next = 0.0
        self.watcher: AliasWatcher | None = None

    def refresh(self, *, force: bool = False) -> bool:
        """Apply control events published since the last look (at most every ``every_ms``,
        unless ``force``); True if the control topic (or the registry) was looked at."""
        pid = os.getpid()
        if self._pid != pid:  # first batch in this process: watch first, then read the registry
            source = self._source
            if callable(source) and not isinstance(source, Log):
                source = source()
            self.watcher = None
            if not (isinstance(source, str) and unnamed_memory(source)):
                self.watcher = AliasWatcher(source, every_ms=self.every_ms)
                self.watcher.start()
            for f in self.followed:
                f.begin()
            self._pid = pid
            self._next = self._monotonic() + self.every_ms / 1000
            looked = True
        elif self.watcher is None:  # the registry is the only shared truth
            now = self._monotonic()
            looked = force or now >= self._next
            if looked:
                self._next = now + self.every_ms / 1000
                for f in self.followed:
                    f.begin()
        else:
            looks = self.watcher.looks
            for change in self.watcher.poll(force=force):
                for f in self.followed:
                    f.apply(change)
            looked = self.watcher.looks != looks
        for f in self.followed:
            f.switch()
        return looked

    def close(self) -> None:
        if self.watcher is not None and self._pid == os.getpid():
            self.watcher.close()
        self.watcher = None
        self._pid = None
