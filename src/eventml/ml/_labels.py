"""The label join's rules for one event id, over that id's state (pure: no I/O, no clock).

The streaming join (:func:`eventml.ml.online.label_join`) keeps one small state per event
id, a dict-like (the engine's :class:`~eventml.engine.KeyState`) holding:

* ``"p"``: the predictions still waiting for a label, by identity (model, version, role);
* ``"d"``: the identities already joined (emitted), so a repeat is recognised;
* ``"l"``: ``(label, time_ms)`` of the first label, once one came;
* ``"x"``: the time the label horizon closed a waiting prediction (imputed negative).

Nested values are never changed in place: each change writes a new tuple or dict, as the
engine's state requires (a committed value may still be shared). Prediction records are
kept as given: the caller hands over records nobody else changes.

The outcomes, each a rule here and a test in ``tests/ml/test_online.py``:

* prediction, then its label: one labelled prediction per waiting prediction when the
  label comes (``joined``);
* label before its prediction: the label is kept; the prediction is joined as soon as it
  comes (``early``);
* a second label for the event: ignored, the first one wins (``duplicate_labels``), as in
  :func:`eventml.ml.records.join_labels`;
* the same prediction twice (same model, version and role): the second is ignored
  (``duplicate_predictions``); different models or versions of one event are each joined;
* no label within the horizon (when one is set): joined with the negative label,
  ``imputed=True`` (``imputed``); a label that comes after that joins no prediction
  already decided and is counted (``late_labels``);
* a label whose prediction never comes, or a prediction whose label never comes (no
  horizon): kept until the state's time-to-live drops it, never emitted.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

__all__ = ["JoinStats", "identity", "on_due", "on_label", "on_prediction"]

State = MutableMapping[str, Any]


@dataclass(slots=True)
class JoinStats:
    """How the join's inputs ended up, counted in this process since it started (a batch
    that is retried or rolled back counts again; the emitted records are exact)."""

    joined: int = 0  # labelled predictions emitted with a real label
    early: int = 0  # ... of which the label had come before the prediction
    imputed: int = 0  # labelled predictions emitted with the horizon's negative label
    duplicate_labels: int = 0
    duplicate_predictions: int = 0
    late_labels: int = 0  # labels after the horizon had decided every waiting prediction


def identity(prediction: Mapping[str, Any]) -> str:
    """What makes two predictions of one event the same: model, version and role."""
    return f"{prediction['model']}\x1f{prediction.get('version')}\x1f{prediction.get('role', 'primary')}"


def _labelled(prediction: Mapping[str, Any], label: float, time_ms: int, imputed: bool) -> dict[str, Any]:
    # the shape of LabelledPrediction.to_dict(), built without a round trip through the class
    return {"prediction": prediction, "label": label, "label_time_ms": time_ms, "imputed": imputed}


def on_prediction(state: State, prediction: Mapping[str, Any], stats: JoinStats) -> list[dict[str, Any]]:
    """A prediction of this event arrived: joined now if the label is known, else kept."""
    ident = identity(prediction)
    pending: Mapping[str, Any] = state.get("p") or {}
    done: tuple[str, ...] = state.get("d") or ()
    if ident in pending or ident in done:
        stats.duplicate_predictions += 1
        return []
    label = state.get("l")
    if label is None:
        state["p"] = {**pending, ident: prediction}
        return []
    state["d"] = (*done, ident)
    stats.joined += 1
    stats.early += 1
    return [_labelled(prediction, label[0], label[1], False)]


def on_label(state: State, label: float, time_ms: int, stats: JoinStats) -> list[dict[str, Any]]:
    """A label for this event arrived: the first one joins every waiting prediction."""
    if state.get("l") is not None:
        stats.duplicate_labels += 1
        return []
    state["l"] = (label, time_ms)
    pending: Mapping[str, Any] = state.get("p") or {}
    if not pending:
        if state.get("x") is not None:
            stats.late_labels += 1
        return []
    state["d"] = (*(state.get("d") or ()), *pending)
    state["p"] = {}
    stats.joined += len(pending)
    return [_labelled(p, label, time_ms, False) for p in pending.values()]


def on_due(
    state: State, identities: list[str], due_ms: int, negative: float, stats: JoinStats
) -> list[dict[str, Any]]:
    """The horizon passed for these predictions: those still waiting get ``negative``."""
    pending: Mapping[str, Any] = state.get("p") or {}
    due = list(dict.fromkeys(i for i in identities if i in pending))  # once each
    if not due:
        return []
    state["p"] = {i: p for i, p in pending.items() if i not in due}
    state["d"] = (*(state.get("d") or ()), *due)
    state["x"] = due_ms
    stats.imputed += len(due)
    return [_labelled(pending[i], negative, due_ms, True) for i in due]
