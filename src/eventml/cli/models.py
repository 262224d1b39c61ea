"""eventml models: the model registry (versions, aliases, metadata).

The registry is a directory: --registry DIR, else $EVENTML_MODELS, else
<data dir>/models (the embedded log's directory, else ./.eventml). A model is
named NAME (its latest version), NAME/VERSION or NAME@ALIAS.

  list                          the models: latest version, versions, aliases
  show NAME\\[@ALIAS|/VERSION]    one version's metadata
  register NAME ARTIFACT        add a version (a .skops/.onnx/River pickle file, or
                                module:function for --flavor callable)
  alias NAME ALIAS VERSION      point NAME@ALIAS at VERSION
  promote NAME VERSION          the same for --alias (champion), printing the previous holder
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, fail
from eventml.ml.flavors import FlavorError, flavor_names
from eventml.ml.registry import (
    ENV_VAR,
    ModelRegistry,
    ModelVersion,
    RegistryError,
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
NameArgument = Annotated[str, typer.Argument(help="The model's name.", show_default=False)]
VersionArgument = Annotated[int, typer.Argument(help="The version number.", show_default=False)]


def _error(e: Exception) -> NoReturn:
    fail(str(e), 1 if isinstance(e, LookupError) else 2)


def _open(registry: str | None, broker: str) -> ModelRegistry:
    try:
        return ModelRegistry(registry or default_registry_path(broker))
    except OSError as e:
        fail(f"cannot open the model registry: {e}")


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
    models = _open(registry, broker).list_models()
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
    lines = [
        f"{v.ref}  ({v.flavor})",
        f"  created       {_time(v.created_ms)}",
        f"  aliases       {', '.join(v.aliases) or '-'}",
        f"  features      {', '.join(v.features) or '-'}",
        f"  metrics       {', '.join(f'{k}={x:g}' for k, x in v.metrics.items()) or '-'}",
        f"  code version  {v.code_version or '-'}",
        f"  files         {', '.join(v.files)}  (sha256 {v.sha256[:12]})",
    ]
    if v.training is not None:
        t = v.training
        parts = [f"topic {t.topic}" if t.topic else "",
                 f"offsets {dict(t.start_offsets)}..{dict(t.end_offsets)}" if t.end_offsets else "",
                 f"time {_time(t.start_ms)}..{_time(t.end_ms)}"
                 if t.start_ms is not None and t.end_ms is not None else ""]
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
    as_json: JsonOption = False,
) -> None:
    """One version's metadata: flavor, features, metrics, training data, aliases."""
    try:
        v = _open(registry, broker).resolve(ref)
    except RegistryError as e:
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
    try:
        v = _open(registry, broker).register(
            name, source, flavor=flavor, features=names, metrics=_metrics(metric or []),
            code_version=code_version, description=description,
        )
    except (RegistryError, FlavorError, ImportError) as e:
        _error(e)
    if as_json:
        _print_json(v.to_dict())
    else:
        typer.echo(f"registered {v.ref} ({v.flavor}, sha256 {v.sha256[:12]})")


def _move_alias(registry: ModelRegistry, name: str, alias: str, version: int) -> None:
    try:
        previous = registry.set_alias(name, alias, version)
    except RegistryError as e:
        _error(e)
    was = "none" if previous is None else str(previous)
    typer.echo(f"{name}@{alias} -> {version} (was {was})")


@models_app.command("alias")
def alias(
    name: NameArgument,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. champion.",
                                              show_default=False)],
    version: VersionArgument,
    registry: RegistryOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Point NAME@ALIAS at VERSION."""
    _move_alias(_open(registry, broker), name, alias_name, version)


@models_app.command("promote")
def promote(
    name: NameArgument,
    version: VersionArgument,
    to: Annotated[str, typer.Option("--alias", help="The alias to move.")] = "champion",
    registry: RegistryOption = None,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Make VERSION the holder of --alias (champion), printing the previous holder."""
    _move_alias(_open(registry, broker), name, to, version)
