"""Feature views (issue 5, in progress): one definition, computed the same way online
and for training.

* :class:`FeatureView` and its features (:func:`count`, :func:`total`, :func:`mean`,
  :func:`maximum`, :func:`minimum`, :func:`distinct` over sliding windows kept as
  tiles; :func:`since_last`), with a TTL;
* :class:`EntityState`: the pure per-key logic both paths run;
* :func:`get_historical_features`: point-in-time values for ``(key, time)`` rows,
  replayed from the log.
"""

from eventml.features.historical import HistoricalFeatures, get_historical_features
from eventml.features.spec import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    CountDistinct,
    Feature,
    FeatureView,
    count,
    distinct,
    maximum,
    mean,
    minimum,
    since_last,
    total,
)
from eventml.features.state import EntityState

__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "SECOND",
    "CountDistinct",
    "EntityState",
    "Feature",
    "FeatureView",
    "HistoricalFeatures",
    "count",
    "distinct",
    "get_historical_features",
    "maximum",
    "mean",
    "minimum",
    "since_last",
    "total",
]
