"""Feature views (issue 5, in progress): one definition, computed the same way online
and for training.

* :class:`FeatureView` and its features (:func:`count`, :func:`total`, :func:`mean`,
  :func:`maximum`, :func:`minimum`, :func:`distinct` over sliding windows kept as
  tiles; :func:`since_last`), with a TTL;
* :class:`EntityState`: the pure per-key logic both paths run;
* :func:`get_historical_features`: point-in-time values for ``(key, time)`` rows or a
  DataFrame / Arrow table of them, replayed from the log (late events as online), out
  as Arrow, pandas or Parquet (``eventml[offline]``);
* :func:`materialize`: the view computed in an app's pipeline (exactly-once), its state
  on a compacted topic that :class:`OnlineStore` serves from memory; :func:`materialized`
  lists an app's views (what ``eventml serve --app`` serves);
* :class:`RedisSync` copies the online topic into Redis (exactly-once effects), which
  :class:`RedisOnlineStore` serves to other processes and machines;
* :func:`verify_served`: the values the pipeline served vs historical retrieval (skew).
"""

from eventml.features.historical import HistoricalFeatures, get_historical_features
from eventml.features.online import FeatureTopics, OnlineStore, materialize, materialized
from eventml.features.redis_store import RedisOnlineStore, RedisSync
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
from eventml.features.verify import SkewReport, verify_served

__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "SECOND",
    "CountDistinct",
    "EntityState",
    "Feature",
    "FeatureTopics",
    "FeatureView",
    "HistoricalFeatures",
    "OnlineStore",
    "RedisOnlineStore",
    "RedisSync",
    "SkewReport",
    "count",
    "distinct",
    "get_historical_features",
    "materialize",
    "materialized",
    "maximum",
    "mean",
    "minimum",
    "since_last",
    "total",
    "verify_served",
]
