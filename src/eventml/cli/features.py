"""`eventml features verify|get|sync`: check a materialized feature view, read its online
values (from the log, or from Redis), copy them into Redis.

The view is named as ``module:attribute`` (a FeatureView, or a function returning one,
such as ``eventml.demos.fraud.views:card_activity``); ``--app`` is the name of the app
that materializes it (its topics are ``<app>-features-<view>[-served]``).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer

from eventml._spec import import_attribute
from eventml.cli._common import DEFAULT_BROKER, BrokerOption, connect, fail
from eventml.features import FeatureView, OnlineStore, verify_served
from eventml.features.online import online_topic
from eventml.log import LogError

features_app = typer.Typer(
    help="Feature views: check served values against point-in-time retrieval, read online values.",
    no_args_is_help=True,
)

ViewArgument = Annotated[str, typer.Argument(help="The view as module:attribute.")]
AppOption = Annotated[str, typer.Option("--app", "-a", help="Name of the app that materializes it.")]
KeyPrefixOption = Annotated[
    str | None,
    typer.Option("--key-prefix", help="Redis key prefix (default: eventml:features:<view>:)."),
]


def load_view(spec: str) -> FeatureView:
    """The FeatureView named by ``module:attribute`` (called first if it is a function)."""
    try:
        obj: Any = import_attribute(spec, "myfeatures:card_activity")
    except ValueError as e:
        fail(str(e))
    if callable(obj) and not isinstance(obj, FeatureView):
        try:
            obj = obj()
        except TypeError as e:
            fail(f"{spec}: calling it with no arguments failed ({e})")
    if not isinstance(obj, FeatureView):
        fail(f"{spec}: not a FeatureView (got {type(obj).__name__})")
    return obj


@features_app.command("verify")
def verify(
    view: ViewArgument,
    app: AppOption,
    sample: Annotated[int, typer.Option("--sample", "-n", min=1, help="Served values to check.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Compare values the pipeline served with point-in-time retrieval (exit 1 on skew)."""
    spec = load_view(view)
    served = f"{online_topic(app, spec)}-served"
    try:
        with connect(broker) as log:
            if served not in log.list_topics():
                fail(f"no served values in {served!r}: materialize the view with log_served=True "
                     f"in app {app!r} and run it")
            report = verify_served(log, spec, served, sample=sample, seed=seed)
    except LogError as e:
        fail(str(e))
    if json:
        typer.echo(orjson.dumps(report.to_json()).decode())
    else:
        typer.echo(f"{spec.name}: {report.compared:,} served values vs point-in-time retrieval, "
                   f"{report.mismatches:,} mismatches")
        for line in report.examples:
            typer.echo(f"  {line}")
    if not report.ok:
        raise typer.Exit(1)


@features_app.command("get")
def get(
    view: ViewArgument,
    app: AppOption,
    keys: Annotated[list[str], typer.Argument(help="Entity keys.")],
    at_ms: Annotated[
        int | None, typer.Option("--at-ms", help="As of this time (default: the view's stream time).")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option("--redis", help="Read from Redis (as `features sync` keeps it), not the log.")
    ] = None,
    key_prefix: KeyPrefixOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Online values of KEYS, one JSON object per key."""
    spec = load_view(view)
    topic = online_topic(app, spec)
    if redis_url is not None:
        from eventml.cli._features_redis import get_from_redis

        for key, row in zip(keys, get_from_redis(view, app, spec, redis_url, key_prefix, keys, at_ms),
                            strict=True):
            typer.echo(orjson.dumps({"key": key, **row}).decode())
        return
    try:
        with connect(broker) as log:
            if topic not in log.list_topics():
                fail(f"no online topic {topic!r}: is {spec.name!r} materialized by app {app!r}?")
            store = OnlineStore(log, spec, topic)
            store.refresh()
            rows = store.get_online_features(keys, at_ms=at_ms)
    except LogError as e:
        fail(str(e))
    for key, row in zip(keys, rows, strict=True):
        typer.echo(orjson.dumps({"key": key, **row}).decode())


@features_app.command("sync")
def sync(
    view: ViewArgument,
    app: AppOption,
    redis_url: Annotated[str, typer.Option("--redis", help="Redis URL, e.g. redis://127.0.0.1:6379.")],
    follow: Annotated[bool, typer.Option("--follow", help="Keep copying new records.")] = False,
    idle_exit: Annotated[
        float | None, typer.Option("--idle-exit", min=0, help="With --follow: stop after S idle seconds.")
    ] = None,
    key_prefix: KeyPrefixOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Copy the view's online topic into Redis (exactly-once effects), for `get --redis`
    and RedisOnlineStore in any process."""
    from eventml.cli._features_redis import sync_to_redis

    if idle_exit is not None and not follow:
        fail("--idle-exit needs --follow")
    spec = load_view(view)
    typer.echo(sync_to_redis(spec, online_topic(app, spec), broker, redis_url, key_prefix,
                             follow=follow, idle_exit=idle_exit))
