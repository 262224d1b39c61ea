"""eventml schemas: the schema registry kept on the log, from the command line.

The registry lives in the _schemas topic of --broker (default: the embedded
log in ./.eventml), the same registry that workers and eventml serve use.

  register SUBJECT FILE       FILE, '-' for stdin, or --schema TEXT
  list                        subjects: latest version, id, type
  show SUBJECT [VERSION]      or: show --id ID
  check SUBJECT FILE          exit 0 compatible, 1 incompatible
  compat [SUBJECT] [LEVEL]    the global level: compat --global LEVEL
  delete SUBJECT [VERSION]    soft; then --permanent removes for good
  mode [SUBJECT] [MODE]       the global mode: mode --global MODE

Without --type, a schema is JSON Schema when its document is a JSON object
without Avro's "fields" key that has a "properties" key, "type": "object"
or a key starting with "$" ($schema, $id, $ref...); otherwise it is Avro.

Errors are one line on stderr, "eventml: error: (CODE) message" with the
Confluent error code (42201 invalid schema, 40401 unknown subject, ...).
Exit 2 for bad input (a schema that does not parse, an unknown subject or
version, a read-only subject), 1 for an incompatible schema or a registry
log that cannot be read or written.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import orjson
import typer

from eventml.cli._common import DEFAULT_BROKER, BrokerOption, connect, fail
from eventml.schema import compat as compat_levels
from eventml.schema.core import MODES, SchemaVersion, StoredSchema, parse_version
from eventml.schema.errors import (
    CompatibilityNotConfigured,
    IncompatibleSchema,
    ModeNotConfigured,
    OperationNotPermitted,
    SchemaError,
    SubjectNotFound,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    VersionNotSoftDeleted,
)
from eventml.schema.registry import SchemaRegistry
from eventml.schema.types import Reference, SchemaType

schemas_app = typer.Typer(
    help=__doc__,
    short_help="Register, show and check schemas (the registry kept on the log).",
    no_args_is_help=True,
)

SubjectArgument = Annotated[
    str, typer.Argument(help="The subject, e.g. TOPIC-value.", show_default=False)
]
FileArgument = Annotated[
    str | None,
    typer.Argument(help="File holding the schema; '-' reads stdin.", show_default=False),
]
SchemaOption = Annotated[
    str | None, typer.Option("--schema", "-s", help="The schema text itself instead of FILE.")
]
TypeOption = Annotated[
    str | None,
    typer.Option(
        "--type", "-t", help="AVRO or JSON (JSON Schema); guessed from the document when omitted."
    ),
]
ReferenceOption = Annotated[
    list[str] | None,
    typer.Option(
        "--reference",
        "-r",
        help="A referenced schema NAME=SUBJECT:VERSION (VERSION may be 'latest'); repeatable.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="JSON on stdout.")]


# -- plumbing -----------------------------------------------------------------------


@contextmanager
def _registry(broker: str) -> Iterator[SchemaRegistry]:
    """The registry on ``broker``'s log; a :class:`SchemaError` becomes one line and an exit."""
    with connect(broker) as log:
        try:
            yield SchemaRegistry(log)
        except SchemaError as e:
            _fail_schema(e)


_HINTS: dict[type[SchemaError], str] = {
    SubjectNotSoftDeleted: " (delete it without --permanent first)",
    VersionNotSoftDeleted: " (delete it without --permanent first)",
    SubjectSoftDeleted: " (use --permanent to remove it for good)",
}


def _fail_schema(e: SchemaError) -> NoReturn:
    """``eventml: error: (CODE) message``: exit 1 for an incompatible schema or a 5xx, else 2."""
    message = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    if isinstance(e, OperationNotPermitted) and "force=true" in message:
        message = message.replace("set force=true", "use --force")
    hint = _HINTS.get(type(e), "")
    code = 1 if isinstance(e, IncompatibleSchema) or e.status >= 500 else 2
    fail(f"({e.code}) {_printable(message)}{hint}", code=code)


def _read_schema(file: str | None, schema: str | None) -> str:
    """The schema text from ``--schema``, a file or stdin (``-``), stripped; or one-line failure."""
    if file is not None and schema is not None:
        fail("give the schema as FILE or as --schema TEXT, not both")
    if schema is not None:
        text, where = schema, "--schema"
    elif file is None:
        fail("no schema given: pass FILE, '-' to read stdin, or --schema TEXT")
    elif file == "-":
        where = "stdin"
        if sys.stdin is None:
            fail("cannot read the schema from stdin: there is no stdin")
        try:
            text = sys.stdin.read()
        except (OSError, ValueError) as e:  # UnicodeDecodeError is a ValueError
            fail(f"cannot read the schema from stdin: {e}")
    else:
        where = file
        try:
            text = Path(file).read_text(encoding="utf-8")
        except FileNotFoundError:
            fail(f"cannot read {file}: no such file")
        except UnicodeDecodeError:
            fail(f"cannot read {file}: not UTF-8 text")
        except OSError as e:
            fail(f"cannot read {file}: {e.strerror or e}")
    text = text.strip()
    if not text:
        fail(f"the schema from {where} is empty")
    return text


def guess_type(text: str) -> SchemaType:
    """JSON for a JSON Schema object (see the module docstring), AVRO for anything else.

    >>> guess_type('{"type": "object", "properties": {"a": {"type": "string"}}}')
    'JSON'
    >>> guess_type('{"type": "record", "name": "R", "fields": []}')
    'AVRO'
    """
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "AVRO"
    if not isinstance(doc, dict) or "fields" in doc:
        return "AVRO"
    if "properties" in doc or doc.get("type") == "object" or any(k.startswith("$") for k in doc):
        return "JSON"
    return "AVRO"


def _schema_type(given: str | None, text: str) -> SchemaType:
    if given is None:
        return guess_type(text)
    kind = given.upper()
    if kind not in ("AVRO", "JSON"):
        fail(f"--type must be AVRO or JSON, got {given!r}")
    return "AVRO" if kind == "AVRO" else "JSON"


def _references(items: list[str] | None, registry: SchemaRegistry) -> list[Reference]:
    refs = []
    for item in items or []:
        name, eq, target = item.rpartition("=")
        subject, colon, version = target.rpartition(":")
        if not eq or not name or not colon or not subject or not version:
            fail(f"--reference takes NAME=SUBJECT:VERSION, got {item!r}")
        if version == "latest":
            number = registry.version(subject, "latest").version
        else:
            parsed = parse_version(version, allow_latest=False)
            assert parsed is not None
            number = parsed
        refs.append(Reference(name, subject, number))
    return refs


def _echo_json(value: Any) -> None:
    typer.echo(orjson.dumps(value).decode())


def _printable(text: str) -> str:
    """``text`` with control characters escaped, safe to print on a terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _pretty(schema: StoredSchema) -> str:
    """The schema text indented (keys in their registered order), or as registered if not JSON."""
    try:
        return orjson.dumps(orjson.loads(schema.schema), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return schema.schema


def _refs_text(refs: tuple[Reference, ...]) -> str:
    return ", ".join(f"{r.name}={r.subject}:{r.version}" for r in refs)


def _plural(n: int, word: str) -> str:
    return f"{word}{'s' if n != 1 else ''}"


# -- commands -----------------------------------------------------------------------


@schemas_app.command("register")
def register(
    subject: SubjectArgument,
    file: FileArgument = None,
    schema: SchemaOption = None,
    schema_type: TypeOption = None,
    reference: ReferenceOption = None,
    json: JsonOption = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Register a schema under SUBJECT: prints its version and global id.

    Registering a schema the subject already holds changes nothing and says
    'already registered'. A schema that breaks the subject's compatibility
    level is refused (exit 1) with the reasons: see 'check' to try first.
    Without --type the type is guessed (see 'eventml schemas --help').

    Examples:
      eventml schemas register payments-value payment.avsc
      cat payment.json | eventml schemas register payments-value - -t JSON
      eventml schemas register orders-value order.avsc \\
          --reference com.acme.Address=address-value:1
    """
    if not subject:
        fail("SUBJECT must not be empty")
    text = _read_schema(file, schema)
    kind = _schema_type(schema_type, text)
    with _registry(broker) as registry:
        refs = _references(reference, registry)
        try:
            before = {v.version for v in registry.versions(subject)}
        except SubjectNotFound:
            before = set()
        registered = registry.register(subject, text, kind, refs)
    if json:
        _echo_json(registered.to_json())
        return
    said = "already registered" if registered.version in before else "registered"
    typer.echo(f"{said} {_printable(subject)} version {registered.version} id {registered.id}")


@schemas_app.command("list")
def list_(
    deleted: Annotated[
        bool, typer.Option("--deleted", help="Include soft-deleted subjects and versions.")
    ] = False,
    prefix: Annotated[str, typer.Option("--prefix", help="Only subjects starting so.")] = "",
    json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """One line per subject: its latest version, that version's id and type.

    With --deleted, soft-deleted subjects are listed too, marked 'deleted'
    (with their last version), and --json's "versions" include deleted ones.
    """
    with _registry(broker) as registry:
        rows: list[tuple[SchemaVersion, list[SchemaVersion]]] = []
        for subject in registry.subjects(deleted=deleted, prefix=prefix):
            versions = registry.versions(subject, deleted=deleted)
            live = [v for v in versions if not v.deleted]
            rows.append(((live or versions)[-1], versions))
    if json:
        _echo_json(
            [
                {
                    "subject": latest.subject,
                    "version": latest.version,
                    "id": latest.id,
                    "schemaType": latest.schema.schema_type,
                    "versions": [v.version for v in versions],
                    "deleted": latest.deleted,
                }
                for latest, versions in rows
            ]
        )
        return
    width = max((len(_printable(latest.subject)) for latest, _ in rows), default=0)
    for latest, _ in rows:
        typer.echo(
            f"{_printable(latest.subject):<{width}}  version {latest.version}  id {latest.id}  "
            f"{latest.schema.schema_type}" + ("  deleted" if latest.deleted else "")
        )


@schemas_app.command("show")
def show(
    subject: Annotated[
        str | None, typer.Argument(help="The subject (or use --id).", show_default=False)
    ] = None,
    version: Annotated[str, typer.Argument(help="A version number or 'latest'.")] = "latest",
    schema_id: Annotated[
        int | None, typer.Option("--id", help="Show the schema with this global id instead.")
    ] = None,
    deleted: Annotated[
        bool, typer.Option("--deleted", help="Soft-deleted versions can be shown too.")
    ] = False,
    json: Annotated[
        bool, typer.Option("--json", help="The registry's JSON for it, on one line.")
    ] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Only the schema text as registered.")] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Show a version of SUBJECT (the latest by default), or a schema by --id.

    A header (subject, version, id, type, references) precedes the schema,
    indented. --raw prints the schema text alone, to pipe into 'register' or
    'check'; --json prints the registry's JSON for it.
    """
    if json and raw:
        fail("--json and --raw do not go together")
    if (subject is None) == (schema_id is None):
        fail("give SUBJECT [VERSION] or --id ID" + (", not both" if subject is not None else ""))
    with _registry(broker) as registry:
        if schema_id is not None:
            stored = registry.schema_by_id(schema_id)
            used = registry.usages(schema_id, deleted=True)
            found: SchemaVersion | None = None
            versions: list[SchemaVersion] = []
        else:
            assert subject is not None
            found = registry.version(subject, version, deleted=deleted)
            stored = found.schema
            versions = registry.versions(subject, deleted=deleted)
    if raw:
        typer.echo(stored.schema)
        return
    if json:
        _echo_json(found.to_json() if found else {"id": schema_id, **stored.to_json()})
        return
    if found is not None:
        rows = [
            ("subject", _printable(found.subject)),
            ("version", str(found.version) + (" (deleted)" if found.deleted else "")),
            ("versions", ", ".join(str(v.version) for v in versions)),
            ("id", str(found.id)),
        ]
    else:
        where = ", ".join(
            f"{_printable(v.subject)} version {v.version}" + (" (deleted)" if v.deleted else "")
            for v in used
        )
        rows = [("id", str(schema_id)), ("used by", where or "(nothing)")]
    rows.append(("type", stored.schema_type))
    if stored.references:
        rows.append(("references", _printable(_refs_text(stored.references))))
    for label, shown in rows:
        typer.echo(f"{label + ':':<12} {shown}")
    typer.echo("")
    typer.echo(_pretty(stored))


@schemas_app.command("check")
def check(
    subject: SubjectArgument,
    file: FileArgument = None,
    schema: SchemaOption = None,
    schema_type: TypeOption = None,
    reference: ReferenceOption = None,
    version: Annotated[
        str,
        typer.Option(
            "--version",
            help="Check against this version only (the level, made non-transitive).",
        ),
    ] = "latest",
    json: Annotated[
        bool, typer.Option("--json", help='{"is_compatible": ..., "messages": [...]} on stdout.')
    ] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Would SUBJECT accept this schema? A dry run of 'register'.

    Checks against the subject's compatibility level and prints 'compatible'
    (exit 0), or 'incompatible' and one reason per line: the rule broken,
    where, and which field (exit 1). Nothing is written.

    Example:
      eventml schemas check payments-value v2.avsc \\
          && eventml schemas register payments-value v2.avsc
    """
    text = _read_schema(file, schema)
    kind = _schema_type(schema_type, text)
    with _registry(broker) as registry:
        refs = _references(reference, registry)
        level = registry.compatibility(subject)
        reasons = registry.check(subject, text, kind, refs, version)
        try:
            existing = registry.versions(subject)
        except SubjectNotFound:
            existing = []
        if version not in ("latest", "-1"):
            target = registry.version(subject, version)
            against = f"{_printable(subject)} version {target.version}"
            level = compat_levels.parse_level(level.replace("_TRANSITIVE", ""))
        elif not existing:
            against = f"nothing: {_printable(subject)} has no versions yet"
        elif level.endswith("_TRANSITIVE") and len(existing) > 1:
            against = f"{_printable(subject)} versions {existing[0].version}-{existing[-1].version}"
        else:
            against = f"{_printable(subject)} version {existing[-1].version}"
    if json:
        _echo_json({"is_compatible": not reasons, "messages": reasons, "compatibilityLevel": level})
    elif not reasons:
        typer.echo(f"compatible ({level}, checked against {against})")
    else:
        typer.echo(f"incompatible ({level}, checked against {against}):")
        for reason in reasons:
            typer.echo(f"  {_printable(reason)}")
    if reasons:
        raise typer.Exit(1)


@schemas_app.command("compat")
def compat(
    subject: Annotated[
        str | None,
        typer.Argument(help="The subject; none for the global level.", show_default=False),
    ] = None,
    level: Annotated[
        str | None,
        typer.Argument(
            help=f"Set the subject's level: {', '.join(compat_levels.LEVELS)}.", show_default=False
        ),
    ] = None,
    global_level: Annotated[
        str | None,
        typer.Option("--global", metavar="LEVEL", help="Set the global (default) level."),
    ] = None,
    delete: Annotated[
        bool,
        typer.Option("--delete", help="Drop SUBJECT's own level: it follows the global one again."),
    ] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Get or set a compatibility level: a subject's, or with --global the default.

    Levels: BACKWARD (the default), BACKWARD_TRANSITIVE, FORWARD,
    FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, NONE.

    Examples:
      eventml schemas compat                        # the global level
      eventml schemas compat payments-value         # payments-value's level
      eventml schemas compat payments-value FULL    # set it for payments-value
      eventml schemas compat --global NONE          # set the global level
      eventml schemas compat payments-value --delete
    """
    if global_level is not None and (subject is not None or delete):
        fail("--global LEVEL sets the global level: give no SUBJECT (and no --delete)")
    if delete and (subject is None or level is not None):
        fail("--delete takes SUBJECT and no LEVEL")
    with _registry(broker) as registry:
        if global_level is not None:
            typer.echo(f"global compatibility set to {registry.set_compatibility(global_level)}")
        elif subject is None:
            typer.echo(f"global: {registry.compatibility()}")
        elif delete:
            dropped = registry.delete_compatibility(subject)
            typer.echo(
                f"dropped {_printable(subject)}'s compatibility {dropped}: it follows the "
                f"global level {registry.compatibility()} now"
            )
        elif level is not None:
            set_to = registry.set_compatibility(level, subject)
            typer.echo(f"compatibility of {_printable(subject)} set to {set_to}")
        else:
            try:
                own = registry.compatibility(subject, default_to_global=False)
                typer.echo(f"{_printable(subject)}: {own}")
            except CompatibilityNotConfigured:
                typer.echo(f"{_printable(subject)}: {registry.compatibility()} (the global level)")


@schemas_app.command("delete")
def delete(
    subject: SubjectArgument,
    version: Annotated[
        str | None,
        typer.Argument(
            help="One version (or 'latest'); all of them when omitted.", show_default=False
        ),
    ] = None,
    permanent: Annotated[
        bool,
        typer.Option("--permanent", help="Remove soft-deleted versions for good (ids too)."),
    ] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Delete SUBJECT (every version) or one VERSION of it.

    A soft delete hides versions from list, show and register while their ids
    still resolve, so data written with them stays readable. --permanent then
    removes what was soft-deleted (as in Confluent: soft-delete first).

    Examples:
      eventml schemas delete payments-value 2
      eventml schemas delete payments-value
      eventml schemas delete payments-value --permanent
    """
    with _registry(broker) as registry:
        if version is None:
            gone = registry.delete_subject(subject, permanent)
        else:
            gone = [registry.delete_version(subject, version, permanent)]
    how = "permanently deleted" if permanent else "soft-deleted"
    numbers = ", ".join(str(n) for n in gone)
    its = "their ids still resolve" if len(gone) > 1 else "its id still resolves"
    tail = "" if permanent else f" ({its}; --permanent removes for good)"
    typer.echo(f"{how} {_printable(subject)} {_plural(len(gone), 'version')} {numbers}{tail}")


@schemas_app.command("mode")
def mode_(
    subject: Annotated[
        str | None,
        typer.Argument(help="The subject; none for the global mode.", show_default=False),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Argument(help=f"Set the subject's mode: {', '.join(MODES)}.", show_default=False),
    ] = None,
    global_mode: Annotated[
        str | None,
        typer.Option("--global", metavar="MODE", help="Set the global (default) mode."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Switch to IMPORT even though subjects exist.")
    ] = False,
    delete: Annotated[
        bool,
        typer.Option("--delete", help="Drop SUBJECT's own mode: it follows the global one again."),
    ] = False,
    broker: BrokerOption = DEFAULT_BROKER,
) -> None:
    """Get or set a mode: a subject's, or with --global the default.

    Modes: READWRITE (the default), READONLY and READONLY_OVERRIDE (refuse
    writes), IMPORT (register with given ids; --force if subjects exist).

    Examples:
      eventml schemas mode                          # the global mode
      eventml schemas mode payments-value READONLY  # freeze one subject
      eventml schemas mode --global READWRITE
      eventml schemas mode payments-value --delete
    """
    if global_mode is not None and (subject is not None or delete):
        fail("--global MODE sets the global mode: give no SUBJECT (and no --delete)")
    if delete and (subject is None or mode is not None):
        fail("--delete takes SUBJECT and no MODE")
    with _registry(broker) as registry:
        if global_mode is not None:
            typer.echo(f"global mode set to {registry.set_mode(global_mode, force=force)}")
        elif subject is None:
            typer.echo(f"global: {registry.mode()}")
        elif delete:
            dropped = registry.delete_mode(subject)
            typer.echo(
                f"dropped {_printable(subject)}'s mode {dropped}: it follows the global mode "
                f"{registry.mode()} now"
            )
        elif mode is not None:
            set_to = registry.set_mode(mode, subject, force=force)
            typer.echo(f"mode of {_printable(subject)} set to {set_to}")
        else:
            try:
                typer.echo(
                    f"{_printable(subject)}: {registry.mode(subject, default_to_global=False)}"
                )
            except ModeNotConfigured:
                typer.echo(f"{_printable(subject)}: {registry.mode()} (the global mode)")


__all__ = ["guess_type", "schemas_app"]
