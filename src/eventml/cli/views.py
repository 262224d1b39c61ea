"""eventml views: read models (CQRS projections) folded from event streams.

Views are declared in Python and found with --app module:attribute (or
$EVENTML_VIEWS): a Projection, a list or dict of them, or an object with a
.projections attribute. Each view keeps its table in its own SQLite file,
<data dir>/views/NAME.sqlite by default (the embedded log's directory, else
./.eventml), or --db PATH; or, with --db postgresql://USER@HOST:PORT/DB (or
$EVENTML_VIEWS_DB), in a table of that PostgreSQL database (one per view;
pip install 'eventml\\[postgres]').

  list                   the views: name, source topics, indexed fields
  status NAME            rows, and per partition the position against the end (lag)
  run NAME               apply new events until interrupted (or --idle-exit S)
  rebuild NAME           drop the table and replay the sources from the start
  get NAME KEY           one row as JSON (exit 1 if there is none)
  query NAME             rows as JSON lines, filtered by --where FIELD=VALUE
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import orjson
import typer

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, connect, fail
from eventml.views import (
    InvalidProjection,
    Projection,
    ProjectionFailed,
    ProjectionRunner,
    RowStore,
    ViewNotFound,
    default_db_path,
    load_views,
    open_view_store,
    view_status,
)

views_app = typer.Typer(
    help=__doc__,
    short_help="Read models: list, status, run, rebuild, get and query views.",
    no_args_is_help=True,
)

AppOption = Annotated[
    str,
    typer.Option("--app", "-a", envvar="EVENTML_VIEWS",
                 help="Where the views are declared, as module:attribute (or $EVENTML_VIEWS)."),
]
NameArgument = Annotated[str, typer.Argument(help="The view's name.", show_default=False)]
DbOption = Annotated[
    str | None,
    typer.Option("--db", envvar="EVENTML_VIEWS_DB",
                 help="A postgresql:// URL (a table per view in that database), or the view's "
                      "SQLite file (default: <data dir>/views/NAME.sqlite)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _view(app: str, name: str) -> Projection:
    try:
        return load_views(app)[name]
    except InvalidProjection as e:
        fail(str(e))


def _store(broker: str, view: Projection, db: str | None, *, create: bool = True) -> RowStore:
    """The view's store; one line and exit 2 when it cannot be opened."""
    target: str | Path = db if db else default_db_path(broker, view.name)
    try:
        return open_view_store(target, view.name, view.indexed, create=create)
    except ViewNotFound as e:
        fail(f"{e}: run 'eventml views rebuild {view.name}'")
    except (ImportError, ValueError) as e:
        fail(str(e))
    except Exception as e:
        if type(e).__module__.split(".", 1)[0] == "psycopg":
            _database_error(view.name, e)
        raise


def _database_error(name: str, error: Exception) -> NoReturn:
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    fail(f"view {name!r}: PostgreSQL: {first}")


@views_app.command("list")
def list_views(app: AppOption, as_json: JsonOption = False) -> None:
    """The views declared in --app."""
    try:
        views = list(load_views(app))
    except InvalidProjection as e:
        fail(str(e))
    if as_json:
        typer.echo(orjson.dumps([
            {"name": v.name, "topics": list(v.topics), "indexed": list(v.indexed),
             "description": v.description} for v in views]).decode())
        return
    for v in views:
        indexed = f"  indexed: {', '.join(v.indexed)}" if v.indexed else ""
        typer.echo(f"{v.name}  <- {', '.join(v.topics)}{indexed}")


@views_app.command()
def status(
    name: NameArgument, app: AppOption, broker: BrokerOption = DEFAULT_BROKER,
    db: DbOption = None, as_json: JsonOption = False,
) -> None:
    """Rows, last update and catch-up lag per source partition."""
    view = _view(app, name)
    with connect(broker) as log, _store(broker, view, db) as store:
        st = view_status(log, view, store)
    if as_json:
        typer.echo(orjson.dumps(st.as_dict()).decode())
        return
    typer.echo(f"{st.name}: {st.rows} rows, lag {st.lag}, at {st.path}")
    for p in st.partitions:
        typer.echo(f"  {p.topic}[{p.partition}]  position {p.position}  end {p.end_offset}  lag {p.lag}")


@views_app.command()
def rebuild(
    name: NameArgument, app: AppOption, broker: BrokerOption = DEFAULT_BROKER, db: DbOption = None,
) -> None:
    """Drop the view's table and positions and replay its sources from the start."""
    view = _view(app, name)
    with connect(broker) as log, ProjectionRunner(log, view, _store(broker, view, db)) as runner:
        try:
            stats = runner.rebuild()
        except ProjectionFailed as e:
            fail(str(e), 1)
        rows = runner.count()
    typer.echo(f"rebuilt {name}: {stats.events} events -> {rows} rows in {stats.seconds:.2f} s "
               f"({stats.events_per_s:,.0f} events/s), {stats.dead_lettered} dead-lettered")


@views_app.command()
def run(
    name: NameArgument, app: AppOption, broker: BrokerOption = DEFAULT_BROKER, db: DbOption = None,
    idle_exit: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without new events.")
    ] = None,
) -> None:
    """Apply new events to the view until interrupted (Ctrl-C)."""
    view = _view(app, name)
    with connect(broker) as log, ProjectionRunner(log, view, _store(broker, view, db)) as runner:
        try:
            stats = runner.run(idle_timeout_s=idle_exit)
        except ProjectionFailed as e:
            fail(str(e), 1)
        except KeyboardInterrupt:
            return
    typer.echo(f"{name}: applied {stats.events} events, {stats.dead_lettered} dead-lettered")


@views_app.command()
def get(
    name: NameArgument,
    key: Annotated[str, typer.Argument(help="The row's key.", show_default=False)],
    app: AppOption, broker: BrokerOption = DEFAULT_BROKER, db: DbOption = None,
) -> None:
    """Print one row as JSON (exit 1 when the view has no such row)."""
    view = _view(app, name)
    with _store(broker, view, db, create=False) as store:
        row = store.get(key)
    if row is None:
        fail(f"view {name!r} has no row {key!r}", 1)
    typer.echo(orjson.dumps(row).decode())


@views_app.command()
def query(
    name: NameArgument, app: AppOption, broker: BrokerOption = DEFAULT_BROKER, db: DbOption = None,
    where: Annotated[
        list[str] | None,
        typer.Option("--where", "-w", help="FIELD=VALUE, repeatable (all must hold); VALUE is "
                                           "read as JSON when it parses (1, true, null), else text."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="At most this many rows.")] = 100,
    count: Annotated[bool, typer.Option("--count", help="Print the number of matching rows.")] = False,
) -> None:
    """Rows matching the filters as JSON lines {"key": ..., "row": ...}, by key."""
    view = _view(app, name)
    filters = dict(_filter(w) for w in where or [])
    with _store(broker, view, db, create=False) as store:
        try:
            if count:
                typer.echo(str(store.count(filters)))
                return
            found = store.query(filters, limit=limit)
        except ValueError as e:
            fail(str(e))
    for key, row in found:
        typer.echo(orjson.dumps({"key": key, "row": row}).decode())


def _filter(text: str) -> tuple[str, object]:
    field, sep, raw = text.partition("=")
    if not sep or not field:
        fail(f"--where takes FIELD=VALUE, got {text!r}")
    try:
        value: object = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = raw
    if isinstance(value, list | dict):
        value = raw
    return field, value
