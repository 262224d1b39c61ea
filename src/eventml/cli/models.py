"""eventml models: the model registry (versions, aliases, metadata).

The registry is a directory: --registry DIR, else $EVENTML_MODELS, else
<data dir>/models (the embedded log's directory, else ./.eventml); only
register and import create it. A model is named NAME (its latest version),
NAME/VERSION or NAME@ALIAS; models:/NAME@ALIAS and models:/NAME/VERSION name a
version in MLflow's registry (--tracking-uri, else $MLFLOW_TRACKING_URI).

  list                          the models: latest version, versions, aliases
  show NAME\\[@ALIAS|/VERSION]    one version's metadata (also models:/... from MLflow)
  register NAME ARTIFACT        add a version (a .skops/.onnx/River pickle file, or
                                module:function for --flavor callable)
  alias NAME ALIAS VERSION      point NAME@ALIAS at VERSION
  promote NAME VERSION          the same for --alias (champion), printing the previous holder
                                (alias and promote also announce the change on the --broker
                                log, so running workers switch: --no-publish to skip)
  explain EVENT_ID              re-score an event's logged predictions (--predictions TOPIC)
  evaluate NAME                 champion vs challenger on labelled predictions: the promotion
                                policy's verdict (--auto: promote when it says so)
  import models:/NAME@ALIAS     copy an MLflow version (scikit-learn) as the next version
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, fail
from eventml.clock import system_clock_ms
from eventml.log import Log, LogError, open_log
from eventml.log.registry import parse_broker_url
from eventml.ml.control import publish_alias_change
from eventml.ml.flavors import FlavorError, flavor_names
from eventml.ml.predlog import DEFAULT_TOPIC as DEFAULT_PREDICTIONS
from eventml.ml.records import CONTROL_TOPIC, AliasChange
from eventml.ml.registry import (
    ENV_VAR,
    MLFLOW_PREFIX,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    TrainingRange,
    default_registry_path,
)

models_app = typer.Typer(
    help=__doc__,
    short_help="Model registry: list, show, register, alias and promote models.",
    no_args_is_help=True,
)

RegistryOption = Annotated[
    str | None,
    typer.Option("--registry", "-r", envvar=ENV_VAR,
                 help="The registry directory (default: <data dir>/models, or $EVENTML_MODELS)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
TrackingUriOption = Annotated[
    str | None,
    typer.Option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
                 help="MLflow tracking URI for models:/ references (default: $MLFLOW_TRACKING_URI)."),
]
NameArgument = Annotated[str, typer.Argument(help="The model's name.", show_default=False)]
VersionArgument = Annotated[int, typer.Argument(help="The version number.", show_default=False)]


def _error(e: Exception) -> NoReturn:
    fail(str(e), 1 if isinstance(e, LookupError) else 2)


def _open(registry: str | None, broker: str) -> ModelRegistry:
    """The registry (not created here: only a registration creates it)."""
    return ModelRegistry(registry or default_registry_path(broker))


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="seconds")


def _print_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@models_app.command("list")
def list_models(
    registry: RegistryOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
) -> None:
    """The models: latest version, number of versions, aliases."""
    opened = _open(registry, broker)
    if not opened.exists and not as_json:  # a read: say so, create nothing
        typer.echo(f"no model registry at {opened.root} (the first 'eventml models register' "
                   "creates it)")
        return
    models = opened.list_models()
    if as_json:
        _print_json([m.to_dict() for m in models])
        return
    if not models:
        typer.echo("no models")
        return
    width = max(len(m.name) for m in models)
    typer.echo(f"{'NAME':<{width}}  LATEST  VERSIONS  ALIASES")
    for m in models:
        aliases = ", ".join(f"{a}={v}" for a, v in m.aliases.items()) or "-"
        typer.echo(f"{m.name:<{width}}  {m.latest_version:>6}  {m.versions:>8}  {aliases}")


def _describe(v: ModelVersion) -> list[str]:
    mlflow = v.flavor.startswith("mlflow:")
    lines = [
        f"{MLFLOW_PREFIX if mlflow else ''}{v.ref}  ({v.flavor})",
        f"  created       {_time(v.created_ms)}",
        f"  aliases       {', '.join(v.aliases) or '-'}",
        f"  features      {', '.join(v.features) or '-'}",
        f"  metrics       {', '.join(f'{k}={x:g}' for k, x in v.metrics.items()) or '-'}",
        f"  code version  {v.code_version or '-'}",
        f"  files         {', '.join(v.files)}  (sha256 {v.sha256[:12]})" if v.sha256 else
        f"  source        {v.options.get('source', '-')}  (run {v.options.get('run_id') or '-'})",
    ]
    if v.training is not None:
        t = v.training
        spans = ", ".join(f"p{p} {t.start_offsets.get(p, 0)}..{end}"
                          for p, end in sorted(t.end_offsets.items()))
        parts = [f"topic {t.topic}" if t.topic else "",
                 f"offsets {spans} (end exclusive)" if spans else "",
                 f"time {_time(t.start_ms) if t.start_ms is not None else '...'}.."
                 f"{_time(t.end_ms) if t.end_ms is not None else '...'}"
                 if t.start_ms is not None or t.end_ms is not None else ""]
        lines.append(f"  training      {'; '.join(p for p in parts if p) or '-'}")
    if v.description:
        lines.append(f"  description   {v.description}")
    return lines


@models_app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME (latest), NAME/VERSION or NAME@ALIAS.",
                                       show_default=False)],
    registry: RegistryOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
    tracking_uri: TrackingUriOption = None,
    as_json: JsonOption = False,
) -> None:
    """One version's metadata: flavor, features, metrics, training data, aliases."""
    try:
        if ref.startswith(MLFLOW_PREFIX):
            from eventml.ml.mlflow_registry import MlflowRegistry

            v = MlflowRegistry(tracking_uri).resolve(ref)
        else:
            v = _open(registry, broker).resolve(ref)
    except (RegistryError, ImportError) as e:
        _error(e)
    if as_json:
        _print_json(v.to_dict())
    else:
        typer.echo("\n".join(_describe(v)))


def _metrics(pairs: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep or not key:
                raise ValueError
            out[key] = float(value)
        except ValueError:
            fail(f"--metric takes KEY=NUMBER, got {pair!r}")
    return out


def _offsets(text: str) -> tuple[dict[int, int], dict[int, int]]:
    """``0:0-1000,1:5-990`` (PARTITION:START-END, end exclusive) as start and end offsets."""
    start: dict[int, int] = {}
    end: dict[int, int] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        partition, _, span = item.partition(":")
        first, _, last = span.partition("-")
        if not (partition.isdigit() and first.isdigit() and last.isdigit()) or int(first) > int(last):
            fail(f"--training-offsets takes PARTITION:START-END,... (START <= END), got {item!r}")
        start[int(partition)], end[int(partition)] = int(first), int(last)
    return start, end


def _training(topic: str | None, offsets: str, start: str | None, end: str | None
              ) -> TrainingRange | None:
    if topic is None and not offsets and start is None and end is None:
        return None
    from eventml.replay import parse_time

    now = system_clock_ms()
    try:
        start_ms = None if start is None else parse_time(start, now)
        end_ms = None if end is None else parse_time(end, now)
    except ValueError as e:
        fail(str(e))
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        fail(f"--training-from ({start}) is after --training-to ({end})")
    first, last = _offsets(offsets)
    return TrainingRange(topic, first, last, start_ms, end_ms)


@models_app.command("register")
def register(
    name: NameArgument,
    artifact: Annotated[str, typer.Argument(
        help="The artifact file, or module:function for --flavor callable.", show_default=False)],
    flavor: Annotated[str, typer.Option("--flavor", "-f",
                                        help="sklearn (.skops), onnx, river (pickle) or callable.",
                                        show_default=False)],
    features: Annotated[str, typer.Option("--features", help="Feature names, comma-separated.")] = "",
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m",
                                                     help="KEY=NUMBER (repeatable).")] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    code_version: Annotated[str | None, typer.Option("--code-version",
                                                     help="e.g. a git commit.")] = None,
    training_topic: Annotated[str | None, typer.Option(
        "--training-topic", help="The topic the training data came from.")] = None,
    training_offsets: Annotated[str, typer.Option(
        "--training-offsets", help="Its log range: PARTITION:START-END,... (end exclusive).")] = "",
    training_from: Annotated[str | None, typer.Option(
        "--training-from", help="Its event-time start: ISO-8601, epoch ms or -7d.")] = None,
    training_to: Annotated[str | None, typer.Option(
        "--training-to", help="Its event-time end: ISO-8601, epoch ms or -1h.")] = None,
    registry: RegistryOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
) -> None:
    """Add the next version of NAME from an artifact file (checked by loading it)."""
    if flavor not in flavor_names():
        fail(f"unknown flavor {flavor!r} (known: {', '.join(flavor_names())})")
    source: object = artifact if flavor == "callable" else Path(artifact)
    if isinstance(source, Path) and not source.is_file():
        fail(f"no artifact file at {artifact}")
    names = [f.strip() for f in features.split(",") if f.strip()]
    training = _training(training_topic, training_offsets, training_from, training_to)
    try:
        v = _open(registry, broker).register(
            name, source, flavor=flavor, features=names, metrics=_metrics(metric or []),
            training=training, code_version=code_version, description=description,
        )
    except (RegistryError, FlavorError, ImportError) as e:
        _error(e)
    except OSError as e:
        fail(f"cannot write the model registry: {e}")
    if as_json:
        _print_json(v.to_dict())
    else:
        typer.echo(f"registered {v.ref} ({v.flavor}, sha256 {v.sha256[:12]})")


@models_app.command("import")
def import_model(
    ref: Annotated[str, typer.Argument(help="models:/NAME@ALIAS or models:/NAME/VERSION.",
                                       show_default=False)],
    name: Annotated[str | None, typer.Option("--name", "-n",
                                             help="The eventml name (default: MLflow's).")] = None,
    tracking_uri: TrackingUriOption = None,
    registry: RegistryOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
) -> None:
    """Copy an MLflow version (scikit-learn) into the registry as the next version, with its
    features, metrics and code version."""
    from eventml.ml.mlflow_registry import import_from_mlflow

    try:
        v = import_from_mlflow(_open(registry, broker), ref, name=name, tracking_uri=tracking_uri)
    except (RegistryError, FlavorError, ImportError) as e:
        _error(e)
    except OSError as e:
        fail(f"cannot write the model registry: {e}")
    if as_json:
        _print_json(v.to_dict())
    else:
        typer.echo(f"registered {v.ref} ({v.flavor}, sha256 {v.sha256[:12]}) "
                   f"from {ref}")


PublishOption = Annotated[
    bool,
    typer.Option("--publish/--no-publish",
                 help="Also announce the change on the --broker log (topic _models), so running "
                      "workers scoring NAME@ALIAS switch at their next batch."),
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why, recorded with the change.")]


def _existing_log(broker: str) -> Log | None:
    """The log at ``broker``; None for an embedded log that does not exist (never created here)."""
    parsed = parse_broker_url(broker)
    if parsed.scheme == "embedded" and not (Path(parsed.location) / "log.db").is_file():
        return None
    return open_log(broker)


def _move_alias(registry: ModelRegistry, name: str, alias: str, version: int, *,
                broker: str, publish: bool, reason: str) -> None:
    try:
        previous = registry.set_alias(name, alias, version)
    except RegistryError as e:
        _error(e)
    was = "none" if previous is None else str(previous)
    typer.echo(f"{name}@{alias} -> {version} (was {was})")
    if not publish:
        return
    change = AliasChange(name, alias, version, previous, reason, system_clock_ms())
    try:
        log = _existing_log(broker)
        if log is None:
            typer.echo(f"eventml: no log at {broker}: the change is in the registry only "
                       "(workers pick it up when they start)", err=True)
            return
        with log:
            publish_alias_change(log, change)
    except (LogError, OSError) as e:
        typer.echo(f"eventml: warning: the change is in the registry, but announcing it on "
                   f"{broker} failed ({e}): running workers keep their version until restarted",
                   err=True)
        return
    typer.echo(f"announced on {broker} ({CONTROL_TOPIC})", err=True)


@models_app.command("alias")
def alias(
    name: NameArgument,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. champion.",
                                              show_default=False)],
    version: VersionArgument,
    registry: RegistryOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
    publish: PublishOption = True,
    reason: ReasonOption = "",
) -> None:
    """Point NAME@ALIAS at VERSION (and announce it to running workers)."""
    _move_alias(_open(registry, broker), name, alias_name, version,
                broker=broker, publish=publish, reason=reason)


@models_app.command("promote")
def promote(
    name: NameArgument,
    version: VersionArgument,
    to: Annotated[str, typer.Option("--alias", help="The alias to move.")] = "champion",
    registry: RegistryOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
    publish: PublishOption = True,
    reason: ReasonOption = "",
) -> None:
    """Make VERSION the holder of --alias (champion), printing the previous holder."""
    _move_alias(_open(registry, broker), name, to, version,
                broker=broker, publish=publish, reason=reason)


@models_app.command("explain")
def explain(
    event_id: Annotated[str, typer.Argument(help="The scored event's id (its CloudEvents id).",
                                            show_default=False)],
    predictions: Annotated[str, typer.Option(
        "--predictions", "-p", help="The prediction log's topic.")] = DEFAULT_PREDICTIONS,
    registry: RegistryOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
) -> None:
    """Re-score an event's logged predictions with their recorded versions and features, and
    say whether the scores are the ones recorded (exit 1 if not)."""
    from eventml.ml.predlog import PredictionLogError
    from eventml.ml.predlog import explain as explain_event

    try:
        log = _existing_log(broker)
    except LogError as e:
        fail(str(e))
    if log is None:
        fail(f"no log at {broker}: name the log that holds the prediction log with --broker")
    try:
        with log:
            found = explain_event(log, _open(registry, broker), event_id, topic=predictions)
    except PredictionLogError as e:
        fail(str(e), 1)
    bad = [r for r in found if not r.same]
    if as_json:
        _print_json([r.to_dict() for r in found])
    else:
        typer.echo("\n".join(_explained(event_id, predictions, found)))
    if bad:
        raise typer.Exit(1)


def _explained(event_id: str, topic: str, found: list[Any]) -> list[str]:
    lines = [f"event {event_id}: {len(found)} prediction(s) on {topic}"]
    for r in found:
        p = r.prediction
        version = "?" if p.version is None else str(p.version)
        if r.rescored is None:
            verdict = f"NOT RE-SCORED: {r.problem}"
        elif r.identical:
            verdict = "identical"
        elif r.same:
            verdict = f"same up to float rounding (differs by {r.difference:.3g})"
        else:
            verdict = f"DIFFERENT by {r.difference:.6g}"
        rescored = "-" if r.rescored is None else repr(r.rescored)
        lines.append(f"  {p.role:<8} {p.model}/{version}  recorded {p.score!r}  "
                     f"re-scored {rescored}  {verdict}")
        decision = "" if p.decision is None else f"  decision {p.decision}"
        features = ", ".join(f"{k}={v}" for k, v in p.features.items())
        lines.append(f"           key {p.key}  time {_time(p.time_ms)}{decision}  features {features}")
    bad = sum(1 for r in found if not r.same)
    lines.append("every recorded score reproduced" if not bad else
                 f"{bad} of {len(found)} recorded score(s) NOT reproduced")
    return lines


@models_app.command("evaluate")
def evaluate(
    name: NameArgument,
    labelled: Annotated[str | None, typer.Option(
        "--labelled", help="A topic of labelled predictions (as the online label join writes).",
        show_default=False)] = None,
    predictions: Annotated[str, typer.Option(
        "--predictions", "-p", help="Or: the prediction log's topic, joined to --labels.")] = DEFAULT_PREDICTIONS,
    labels: Annotated[str | None, typer.Option(
        "--labels", help="The labels topic (data.event_id or subject; data.label, default 1).",
        show_default=False)] = None,
    unlabelled: Annotated[float | None, typer.Option(
        "--unlabelled", help="With --labels: the label of a prediction that has none after "
                             "--label-wait-ms (e.g. 0 on a topic of positives).", show_default=False)] = None,
    label_wait_ms: Annotated[int, typer.Option("--label-wait-ms", min=0)] = 0,
    window: Annotated[int, typer.Option("--window", help="The last K paired labelled events.")] = 2000,
    min_events: Annotated[int, typer.Option("--min-events")] = 200,
    min_per_class: Annotated[int, typer.Option("--min-per-class")] = 10,
    alpha: Annotated[float, typer.Option("--alpha", help="The significance level.")] = 0.05,
    margin: Annotated[float, typer.Option(
        "--margin", help="Minimum relative log-loss improvement (0.01 = 1 %).")] = 0.01,
    auto: Annotated[bool, typer.Option(
        "--auto", help="Promote when the verdict says so (announced on --broker).")] = False,
    registry: RegistryOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
    as_json: JsonOption = False,
) -> None:
    """The promotion policy's verdict on NAME@challenger vs NAME@champion: a paired
    sign-flip test on per-event log loss over the last --window events both scored and
    that have a label. Prints the promote command for a human, or with --auto runs it."""
    from eventml.ml.promotion import (
        PromotionPolicy,
        labelled_predictions,
        read_labelled,
        run_promotion,
    )

    if labelled is None and labels is None:
        fail("name the evidence: --labelled TOPIC, or --labels TOPIC (joined to --predictions)")
    try:
        policy = PromotionPolicy(window=window, min_events=min_events, min_per_class=min_per_class,
                                 alpha=alpha, margin=margin)
    except ValueError as e:
        fail(str(e))
    try:
        log = _existing_log(broker)
    except LogError as e:
        fail(str(e))
    if log is None:
        fail(f"no log at {broker}: name the log that holds the predictions with --broker")
    try:
        with log:
            evidence = (read_labelled(log, labelled) if labelled is not None else
                        labelled_predictions(log, predictions, str(labels), unlabelled=unlabelled,
                                             label_wait_ms=label_wait_ms))
            outcome = run_promotion(_open(registry, broker), evidence, name, policy=policy,
                                    mode="auto" if auto else "manual", log=log)
    except (ValueError, RegistryError) as e:
        fail(str(e))
    if as_json:
        _print_json(outcome.to_dict())
        return
    v = outcome.verdict
    typer.echo(f"{v.decision.upper()}: {v.reason}")
    for model, stats in (v.alerts or {}).items():
        typer.echo(f"  {model}: {stats['alerts']} alerts, recall {stats['recall']}, "
                   f"precision {stats['precision']} (at its own decisions)")
    if outcome.alias_change is not None:
        c = outcome.alias_change
        typer.echo(f"{c.model}@{c.alias} -> {c.version} (was {c.previous}), announced on {broker}")
    elif outcome.command is not None:
        where = (f" --registry {registry}" if registry else "") + (
            f" --broker {broker}" if broker != DEFAULT_BROKER else "")
        typer.echo(f"to promote: {outcome.command}{where}")
