"""Read models (CQRS views): tables folded from event streams, queryable by key and filter.

A :class:`Projection` names source topics and a deterministic handler
``handle(value, meta, table)``; a :class:`ProjectionRunner` keeps its table in the
view's own SQLite file (``<data dir>/views/<name>.sqlite``, the default) or in
PostgreSQL (a ``postgresql://`` URL, :mod:`eventml.views.pg_store`; both are a
:class:`RowStore`, see :func:`open_view_store`), committing changed rows and source
positions in one transaction, so each event is applied exactly once on every log
backend. Handler failures are retried or dead-lettered to ``<topic>.dlq``;
:meth:`ProjectionRunner.rebuild` replays the sources from scratch;
:func:`view_status` reports the catch-up lag. ``eventml views`` is the CLI.
"""

from eventml.views.base import RowStore, ViewNotFound, open_view_store
from eventml.views.projection import (
    EventMeta,
    Handler,
    InvalidProjection,
    Projection,
    Row,
    Table,
    projection,
)
from eventml.views.registry import Views, as_views, load_views
from eventml.views.runner import (
    PartitionStatus,
    ProjectionFailed,
    ProjectionRunner,
    RunStats,
    ViewStatus,
    default_db_path,
    view_status,
)
from eventml.views.store import ViewStore

__all__ = [
    "EventMeta",
    "Handler",
    "InvalidProjection",
    "PartitionStatus",
    "Projection",
    "ProjectionFailed",
    "ProjectionRunner",
    "Row",
    "RowStore",
    "RunStats",
    "Table",
    "ViewNotFound",
    "ViewStatus",
    "ViewStore",
    "Views",
    "as_views",
    "default_db_path",
    "load_views",
    "open_view_store",
    "projection",
    "view_status",
]
