"""The online learner's step: learn a micro-batch of labelled examples, checkpoint once.

The model lives in the engine's keyed state under one key (the learner's name), as one
pickle with the count of examples learned, a digest of their event ids in order, the
labelled topic's offsets covered and the feature names seen. The state commits with the
batch's input offsets and outputs, so a crash at any point leaves the checkpoint and the
offsets in agreement: the restarted worker re-learns exactly the batches that never
committed, from the model as it was before them.

The engine calls :meth:`Learning.learn` once per micro-batch (the examples of the batch
gathered on its last item), so the model is pickled once per batch, not per example.
Between batches the unpickled model stays in memory, valid while the state still holds
the very bytes object it was pickled into: after a rollback, a rebalance or a restore the
state holds another object and the model is loaded again from it.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventml.deadletter.retry import FatalError

__all__ = ["LearnerCheckpoint", "Learning", "chain_digest", "example_of"]

PROTOCOL = 5


@dataclass(frozen=True, slots=True)
class LearnerCheckpoint:
    """An online learner's committed state: what the model learned and from where.

    ``digest`` chains the event ids learned, in order (:func:`chain_digest`): two
    checkpoints with the same count and digest learned the same examples in the same
    order. ``offsets`` are, per partition of the labelled topic, the offset after the
    newest example learned; ``position`` is the offset after it in the learner's own topic
    (an example below it is never learned again, whatever the delivery guarantee).
    """

    learner: str
    model: str  # the model whose labelled predictions it learns from
    learned: int
    digest: str
    offsets: Mapping[int, int]
    last_time_ms: int
    features: tuple[str, ...]
    model_bytes: bytes = field(repr=False)
    position: int = 0

    def load_model(self) -> Any:
        """The learned model (unpickled: state is trusted, app-private data)."""
        return pickle.loads(self.model_bytes)

    @classmethod
    def from_state(cls, learner: str, model: str, state: Mapping[str, Any]) -> LearnerCheckpoint:
        return cls(
            learner=learner, model=model, learned=int(state["n"]), digest=bytes(state["h"]).hex(),
            offsets=dict(state["o"]), last_time_ms=int(state["t"]), features=tuple(state["f"]),
            model_bytes=state["m"], position=int(state.get("r", 0)),
        )


def chain_digest(event_ids: Sequence[str], start: bytes = b"") -> bytes:
    """sha256 chained over ``event_ids`` in order: ``h = sha256(h + id)`` (``b""`` for none)."""
    h = start
    for e in event_ids:
        h = hashlib.sha256(h + e.encode()).digest()
    return h


def example_of(
    value: Mapping[str, Any], partition: int, offset: int, features: Sequence[str] | None
) -> dict[str, Any]:
    """A labelled prediction (``LabelledPrediction.to_dict()``) as a learning example: the
    prediction's features (``features`` only, if given; missing or ``None`` values left out,
    River's convention for absent features), the label, where it was read."""
    p = value["prediction"]
    recorded: Mapping[str, Any] = p.get("features") or {}
    names = recorded if features is None else features
    x = {k: float(v) for k in names if (v := recorded.get(k)) is not None}
    return {"e": str(p["event_id"]), "x": x, "y": float(value["label"]),
            "t": int(value["label_time_ms"]), "p": partition, "o": offset}


class Learning:
    """The learn step of one learner (see the module docstring)."""

    def __init__(
        self, name: str, model: str, initial: bytes, *, target: Callable[[float], Any] | None,
        publish_every: int | None, features: Sequence[str] | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self._initial = initial
        self._target = target
        self._publish_every = publish_every
        self._features = None if features is None else tuple(features)  # the order to publish in
        self._live: dict[str, tuple[bytes, Any]] = {}  # key -> (the state's bytes, their model)

    def _model_for(self, key: str, raw: bytes | None) -> Any:
        hit = self._live.pop(key, None)  # back only once the batch is learned in full
        if hit is not None and raw is not None and hit[0] is raw:
            return hit[1]
        return pickle.loads(self._initial if raw is None else raw)

    def learn(self, examples: list[dict[str, Any]], state: Any) -> dict[str, Any]:
        """Learn ``examples`` in order into the model held in ``state`` (the key's
        :class:`~eventml.engine.KeyState`), write the new checkpoint, return a summary."""
        raw: bytes | None = state.get("m")
        model = self._model_for(state.key, raw)
        before = learned = int(state.get("n", 0))
        position = int(state.get("r", 0))
        digest: bytes = state.get("h", b"")
        offsets: dict[int, int] = dict(state.get("o") or {})
        names: set[str] = set(state.get("f") or ())
        last = int(state.get("t", 0))
        target = self._target
        for ex in examples:
            r = ex.get("r")
            if r is not None:
                if r < position:  # learned in a batch that committed (a redelivery)
                    continue
                position = r + 1
            x = ex["x"]
            try:
                model.learn_one(x, ex["y"] if target is None else target(ex["y"]))
            except Exception as e:  # the model may be half-changed: never keep it
                raise FatalError(
                    f"learner {self.name}: learn_one failed on event {ex['e']} "
                    f"({type(e).__name__}: {e}); fix the model or the features and restart"
                ) from e
            digest = hashlib.sha256(digest + ex["e"].encode()).digest()
            learned += 1
            if x.keys() - names:
                names.update(x)
            p, o = ex["p"], ex["o"] + 1
            if o > offsets.get(p, 0):
                offsets[p] = o
            if ex["t"] > last:
                last = ex["t"]
        if learned == before:  # nothing new: keep the checkpoint (and the model) as they are
            if raw is not None:
                self._live[state.key] = (raw, model)
            return self._summary(learned, 0, digest, offsets, last, tuple(state.get("f") or ()))
        raw = pickle.dumps(model, PROTOCOL)
        state["m"] = raw
        state["r"] = position
        state["n"] = learned
        state["h"] = digest
        state["o"] = offsets
        state["t"] = last
        feats = self._features if self._features is not None else tuple(sorted(names))
        state["f"] = feats
        self._live[state.key] = (raw, model)
        summary = self._summary(learned, learned - before, digest, offsets, last, feats)
        every = self._publish_every
        if every is not None and learned // every > before // every:
            summary["model_bytes"] = raw  # a snapshot is due: see online.Publisher
        return summary

    def _summary(
        self, learned: int, batch: int, digest: bytes, offsets: dict[int, int], last: int,
        features: tuple[str, ...],
    ) -> dict[str, Any]:
        return {"learner": self.name, "model": self.model, "learned": learned, "batch": batch,
                "digest": digest.hex(), "offsets": offsets, "time_ms": last, "features": features}
