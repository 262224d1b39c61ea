"""`eventml serve`: the HTTP service on the log: the schema registry (Confluent's REST API),
topics, consumer lag, dead letters and the model registry (``--models``, default
``<data dir>/models``) under ``/v1``, and, when asked, an app's online features and read
models.

``--app module:app`` serves the feature views the app materializes
(:func:`eventml.features.materialize`), read from their online topics, and gives the
dashboard at ``/`` the app's topology and consumer group;
``--views module:attr`` serves read models from their tables (as ``eventml views run``
keeps them, in ``<data dir>/views/NAME.sqlite`` or ``--views-db``).
"""

from __future__ import annotations

import copy
import errno
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from eventml.cli._common import connect, fail
from eventml.log.registry import DEFAULT_URL, ENV_VAR
from eventml.ml.registry import ENV_VAR as MODELS_ENV_VAR
from eventml.ml.registry import ModelRegistry, default_registry_path
from eventml.schema.errors import SchemaError
from eventml.schema.registry import SchemaRegistry

if TYPE_CHECKING:
    from eventml.api import ServedView
    from eventml.engine import App
    from eventml.log import Log
    from eventml.views import Views

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
_BIND_HINTS = {
    errno.EADDRINUSE: " (another process listens there: pick another --port)",
    errno.EACCES: " (ports below 1024 need privileges: pick another --port)",
    errno.EADDRNOTAVAIL: " (not an address of this machine: check --host)",
}


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or one line saying why it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as e:
        fail(f"cannot resolve --host {host!r}: {e}")
    # getaddrinfo's proto (IPPROTO_TCP) makes asyncio set TCP_NODELAY on each connection;
    # without it every response waits ~40 ms for the client's delayed ACK
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen()  # from here connections queue: clients may start once the URL is printed
    except OSError as e:
        sock.close()
        hint = _BIND_HINTS.get(e.errno or 0, "")
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}{hint}")
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket, scheme: str = "http") -> str:
    host, port = sock.getsockname()[:2]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _tls(cert: str | None, key: str | None) -> dict[str, str]:
    """uvicorn's TLS settings, or one line saying what is missing."""
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        fail("TLS needs both --tls-cert and --tls-key (PEM files)")
    import ssl

    try:  # load once here: a bad file is one line now, not a traceback in uvicorn
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        fail(f"--tls-cert {cert} / --tls-key {key}: {getattr(e, 'strerror', None) or e}")
    return {"ssl_certfile": cert, "ssl_keyfile": key}


def _found(fast: str, fallback: str) -> str:
    """``fast`` (httptools, uvloop: the serve extra) when it can be imported, else
    ``fallback`` (uvicorn's pure-Python h11, asyncio): said, not left to uvicorn's "auto"."""
    import importlib.util

    return fast if importlib.util.find_spec(fast) is not None else fallback


def _log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """uvicorn's logging, plus eventml's own loggers (server-side errors) on stderr;
    ``log_format="json"``: every line (access log included) one JSON object."""
    from uvicorn.config import LOGGING_CONFIG

    from eventml.observe.logging import uvicorn_formatters

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"] = uvicorn_formatters("json" if log_format == "json" else "text")
    config["loggers"]["eventml"] = {
        "handlers": ["default"],
        "level": "DEBUG" if level in ("debug", "trace") else "INFO",
        "propagate": False,
    }
    return config


def _tracing_from_env() -> None:
    """Spans exported as ``$OTEL_TRACES_EXPORTER`` says (console, otlp), if set."""
    from eventml.observe.tracing import configure_from_env

    try:
        configure_from_env()
    except (ImportError, ValueError) as e:
        fail(f"tracing: {e}")


def _load_app(spec: str) -> App:
    from eventml.engine import load_app

    try:
        return load_app(spec)
    except ValueError as e:
        fail(f"--app: {e}")


def _load_views(spec: str) -> Views:
    from eventml.views import InvalidProjection, load_views

    try:
        views = load_views(spec)
    except InvalidProjection as e:
        fail(f"--views: {e}")
    if not len(views):
        fail(f"--views {spec}: no views declared there")
    return views


def _view_files(views: Views, where: str | None, broker: str) -> dict[str, Path | str]:
    """Where each view is: ``--views-db`` is a directory of ``NAME.sqlite`` files, the
    file of the one view served, or a ``postgresql://`` URL holding them all; default
    ``<data dir>/views/NAME.sqlite``."""
    from eventml.views import default_db_path
    from eventml.views.base import is_store_url

    names = [v.name for v in views]
    if where is not None and is_store_url(where):
        return dict.fromkeys(names, where)
    db = Path(where) if where is not None else None
    if db is None:
        return {n: default_db_path(broker, n) for n in names}
    if db.suffix and not db.is_dir():
        if len(names) > 1:
            fail(f"--views-db {db} names one file but {len(names)} views are served: "
                 "give the directory holding their NAME.sqlite files")
        return {names[0]: db}
    return {n: db / f"{n}.sqlite" for n in names}


def _has_table(view: ServedView) -> bool:
    store = view.open_store()
    if store is None:
        return False
    store.close()
    return True


def _served_views(views: Views, files: dict[str, Path | str], log: Log) -> list[ServedView]:
    from eventml.api import sqlite_view, stored_view

    return [stored_view(v, where, log) if isinstance(where, str) else sqlite_view(v, where, log)
            for v in views for where in [files[v.name]]]


def serve(
    broker: Annotated[
        str | None,
        typer.Option("--broker", "-b", show_default=False,
                     help=f"Log URL: embedded://PATH, kafka://HOST:PORT or memory:// (default: "
                          f"the --app's broker, else ${ENV_VAR}, else {DEFAULT_URL})."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0 or :: for every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free port).")] = 8081,
    app_spec: Annotated[
        str | None,
        typer.Option("--app", "-a", show_default=False,
                     help="An app (module:attribute): the dashboard shows its topology; the "
                          "feature views it materializes are served."),
    ] = None,
    views_spec: Annotated[
        str | None,
        typer.Option("--views", show_default=False,
                     help="Serve these read models (module:attribute, as 'eventml views --app')."),
    ] = None,
    views_db: Annotated[
        str | None,
        typer.Option("--views-db", show_default=False,
                     help="Directory of the views' NAME.sqlite files, the file of the one view, "
                          "or postgresql://... (default: <data dir>/views)."),
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="Server log level: critical, error, warning, info, debug or trace.")
    ] = "info",
    log_format: Annotated[
        str, typer.Option(help="Log lines as text or json (one object per line, access log "
                               "included; API keys masked).")
    ] = "text",
    auth: Annotated[
        bool, typer.Option("--auth/--no-auth",
                           help="Require an API key (eventml keys create) on every request but /docs.")
    ] = False,
    keys: Annotated[
        str | None,
        typer.Option("--keys", "-k", envvar="EVENTML_KEYS", show_default=False,
                     help="The key store for --auth (default: <data dir>/keys.sqlite, or $EVENTML_KEYS)."),
    ] = None,
    rate_limit: Annotated[
        float | None,
        typer.Option("--rate-limit", min=0.001, show_default=False,
                     help="With --auth: requests a second per key (bursts of twice that); 429 above."),
    ] = None,
    models: Annotated[
        str | None,
        typer.Option("--models", envvar=MODELS_ENV_VAR, show_default=False,
                     help="The model registry served under /v1/models (default: <data dir>/models, "
                          f"or ${MODELS_ENV_VAR}; never created by the server)."),
    ] = None,
    tls_cert: Annotated[
        str | None, typer.Option("--tls-cert", show_default=False,
                                 help="Serve HTTPS with this certificate chain (PEM); with --tls-key.")
    ] = None,
    tls_key: Annotated[
        str | None, typer.Option("--tls-key", show_default=False,
                                 help="The certificate's private key (PEM).")
    ] = None,
    jwt_issuer: Annotated[
        str | None, typer.Option("--jwt-issuer", show_default=False,
                                 help="Accept bearer JWTs from this issuer (iss) as well as API keys.")
    ] = None,
    jwt_audience: Annotated[
        str | None, typer.Option("--jwt-audience", show_default=False,
                                 help="The audience (aud) every JWT must name: this service.")
    ] = None,
    jwt_key: Annotated[
        str | None, typer.Option("--jwt-key", show_default=False,
                                 help="The issuer's public key (PEM file) for RS/PS/ES/EdDSA tokens; "
                                      "an HS* secret comes from $EVENTML_JWT_SECRET.")
    ] = None,
    jwt_algorithm: Annotated[
        list[str] | None, typer.Option("--jwt-algorithm", show_default=False,
                                       help="Pinned signature algorithm (repeat for several; "
                                            "default RS256). 'none' is never accepted.")
    ] = None,
    predict_worker: Annotated[
        bool, typer.Option("--predict-worker/--no-predict-worker",
                           help="Score /v1/predict/MODEL/async requests in this process (else "
                                "'eventml run' an app made by eventml.api.predict.worker_app).")
    ] = True,
    worker_metrics: Annotated[
        list[str] | None, typer.Option("--worker-metrics", show_default=False,
                                       help="A worker's metrics URL (as 'eventml run --metrics-port' "
                                            "prints it; repeat for each worker): the dashboard "
                                            "shows their processing and model latency.")
    ] = None,
) -> None:
    """Serve the schema registry (Confluent-compatible REST API) kept in the log's _schemas
    topic; with --app, the app's online features; with --views, read models."""
    level = log_level.lower()
    if level not in LOG_LEVELS:
        fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    if log_format not in ("json", "text"):
        fail(f"--log-format must be json or text, got {log_format!r}")
    _tracing_from_env()
    if views_db is not None and views_spec is None:
        fail("--views-db needs --views (the read models to serve)")
    from eventml.observe.scrape import metrics_url

    try:
        scraped = [metrics_url(u) for u in worker_metrics or []]
    except ValueError as e:
        fail(f"--worker-metrics: {e}")
    try:
        import uvicorn

        from eventml.api import create_app, online_stores
        from eventml.api.auth import RateLimit
    except ImportError as e:
        fail(f"eventml serve needs FastAPI and uvicorn ({e}): pip install 'eventml[serve]'")
    app = _load_app(app_spec) if app_spec is not None else None
    views = _load_views(views_spec) if views_spec is not None else None
    url_of_log = broker or (app.broker if app is not None else os.environ.get(ENV_VAR) or DEFAULT_URL)
    files = _view_files(views, views_db, url_of_log) if views is not None else {}
    key_store = None
    if auth:
        from eventml.cli.keys import key_store_path
        from eventml.security import KeyStore

        key_store = KeyStore(key_store_path(keys, url_of_log))
        if not key_store.list():
            fail(f"--auth: no API keys in {key_store.path}: create one first with "
                 "'eventml keys create NAME --scope read:*'")
    elif keys is not None or (rate_limit is not None and jwt_issuer is None):
        fail("--rate-limit and --keys apply to --auth (or JWTs, --jwt-issuer): add --auth")
    from eventml.cli._jwt import jwt_verifier

    verifier = jwt_verifier(jwt_issuer, jwt_audience, jwt_key, jwt_algorithm)
    tls = _tls(tls_cert, tls_key)
    model_registry = ModelRegistry(models or default_registry_path(url_of_log))
    if models is not None and not model_registry.exists:
        fail(f"--models {models}: no model registry there (the first 'eventml models register "
             "--registry DIR' creates one)")
    sock = _listen(host, port)
    with sock, connect(url_of_log) as log:
        try:
            registry = SchemaRegistry(log)
        except SchemaError as e:
            fail(f"cannot open the schema registry on {url_of_log}: {e}")
        from eventml.features import materialized

        features = online_stores(log, materialized(app)) if app is not None else {}
        served = _served_views(views, files, log) if views is not None else []
        url = _url(sock, "https" if tls else "http")
        typer.echo(f"eventml: schema registry at {url} (API docs: {url}/docs), log {url_of_log}")
        for name, store in features.items():
            typer.echo(f"eventml: features {name!r} at {url}/v1/features/{name}?keys=KEY "
                       f"(app {app.name if app else ''}, topic {store.topic})")
        for v in served:
            name = v.projection.name
            ready = "" if _has_table(v) else ", no table yet: run 'eventml views run'"
            typer.echo(f"eventml: view {name!r} at {url}/v1/views/{name}/rows/KEY "
                       f"(table {v.location}{ready})")
        if verifier is not None:
            typer.echo(f"eventml: bearer JWTs accepted (iss {verifier.settings.issuer!r}, aud "
                       f"{verifier.settings.audience!r}, {', '.join(verifier.algorithms)}; scopes "
                       "from the scope claim)")
        if key_store is not None or verifier is not None:
            limit = None if rate_limit is None else RateLimit(rate_limit, max(1, round(2 * rate_limit)))
            if key_store is not None:
                typer.echo(f"eventml: API keys required (store {key_store.path}"
                           f"{f', {rate_limit:g} requests/s per key' if limit else ''})")
            typer.echo(f"eventml: ingest at {url}/v1/topics/TOPIC/events "
                       "(Authorization: Bearer eml_..., a produce:TOPIC key)")
        else:
            limit = None
            typer.echo("eventml: no authentication (--no-auth): anyone who reaches "
                       f"{host}:{sock.getsockname()[1]} may read and register schemas and read "
                       "topics, dead letters and models; ingest, dead-letter replays and alias "
                       "changes need --auth")
        there = "" if model_registry.exists else ", none yet: 'eventml models register' creates it"
        shown = f"app {app.name!r}: topology, lag, alerts" if app is not None else "no --app"
        typer.echo(f"eventml: dashboard at {url}/ ({shown}; data at {url}/v1/dashboard/snapshot)")
        if scraped:
            typer.echo(f"eventml: dashboard latency from the workers' metrics at {', '.join(scraped)}")
        typer.echo(f"eventml: topics, lag and dead letters at {url}/v1/topics, models at "
                   f"{url}/v1/models (registry {model_registry.root}{there})")
        scored = "scored here" if predict_worker else "scored by a worker_app under 'eventml run'"
        typer.echo(f"eventml: predictions at {url}/v1/predict/MODEL (sync) and "
                   f"{url}/v1/predict/MODEL/async ({scored}; results at {url}/v1/results/ID)")
        config = uvicorn.Config(
            create_app(registry=registry, features=features, views=served, freeze_gc=True,
                       keys=key_store, jwt=verifier, rate_limit=limit, log=log, models=model_registry,
                       predict_worker=predict_worker, pipeline=app, worker_metrics=scraped),
            log_level=level, log_config=_log_config(level, log_format), server_header=False,
            http=_found("httptools", "h11"), loop=_found("uvloop", "asyncio"), **tls,  # type: ignore[arg-type]
        )
        uvicorn.Server(config).run(sockets=[sock])
