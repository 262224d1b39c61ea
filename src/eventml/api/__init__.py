"""The HTTP service (FastAPI): schema registry, online features, read models.

``eventml serve`` runs :func:`create_app`; mount the routers in an app of your own::

    from eventml.api import create_app, online_stores, sqlite_view

    app = create_app(registry=registry, features=online_stores(log, materialized(fraud_app)),
                     views=[sqlite_view(projection, "views/orders.sqlite", log)])

* ``/`` ... Confluent Schema Registry's REST API (:mod:`eventml.schema.api`);
* ``/v1/features[/{view}]``: online feature values (:mod:`eventml.api.features`);
* ``/v1/views[/{view}[/rows/{key}|/status]]``: read models (:mod:`eventml.api.views`);
* ``/v1/topics/{topic}/events``: ingest, with API keys (:mod:`eventml.api.ingest`);
* ``/v1/topics[/{topic}[/lag|/dlq[/replay]]]``: topics, consumer lag, dead letters
  (:mod:`eventml.api.topics`, :mod:`eventml.api.dlq`);
* ``/v1/models[/{name}...]``: the model registry, alias moves (:mod:`eventml.api.models`);
* ``/v1/predict/{model}[/async]``, ``/v1/results``: inference (:mod:`eventml.api.predict`);
* ``/docs``: the API's interactive documentation.

With ``create_app(keys=KeyStore(...))`` every route needs an API key of the right scope
(:mod:`eventml.api.auth`, :mod:`eventml.security`).
"""

try:
    import fastapi  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(f"the HTTP API needs FastAPI ({e}): pip install 'eventml[serve]'") from e

from eventml.api.app import create_app, online_stores
from eventml.api.auth import Authorizer, RateLimit
from eventml.api.dlq import DeadLettersRouter
from eventml.api.errors import ApiError
from eventml.api.features import FeatureRefresher, features_router
from eventml.api.ingest import IngestLimits, ingest_router
from eventml.api.models import models_router
from eventml.api.predict import AsyncConfig, ModelCache, PredictLimits, predict_router, worker_app
from eventml.api.topics import topics_router
from eventml.api.views import ServedView, ViewsRouter, sqlite_view, stored_view

__all__ = [
    "ApiError",
    "AsyncConfig",
    "Authorizer",
    "DeadLettersRouter",
    "FeatureRefresher",
    "IngestLimits",
    "ModelCache",
    "PredictLimits",
    "RateLimit",
    "ServedView",
    "ViewsRouter",
    "create_app",
    "features_router",
    "ingest_router",
    "models_router",
    "online_stores",
    "predict_router",
    "sqlite_view",
    "stored_view",
    "topics_router",
    "worker_app",
]
