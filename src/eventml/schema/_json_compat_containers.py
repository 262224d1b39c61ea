"""Compatibility of objects and arrays: content models, required properties, items.

Objects hinge on the content model. A property name the writer may carry gets, in each
writer part, the schema of ``properties`` for it, else of every matching
``patternProperties``, else ``additionalProperties`` (``false``: the name cannot appear).
The reader then needs, for every name the writer can produce, that the writer's value
schemas fit the reader's. A *closed* writer produces only its declared names, so a reader
may add optional properties; an *open* writer produces any name, so a reader adding a
property whose schema is narrower than the writer's ``additionalProperties`` is
incompatible (``PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL``). Whether two different regular
expressions overlap is not decided: such cases are reported (``PATTERN_PROPERTIES_CHANGED``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from eventml.schema._json_compat_model import Alt, At, Loc, matches
from eventml.schema.errors import Incompatibility

if TYPE_CHECKING:
    from eventml.schema._json_compat import Checker

Found = list[Incompatibility]


def _names(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


# -- the writer's objects ---------------------------------------------------------------


def writer_required(alt: Alt) -> set[str]:
    return {name for part in alt.parts for name in _names(part.get("required"))}


def writer_declared(alt: Alt) -> set[str]:
    return {name for part in alt.parts for name in part.schema_map("properties")}


def writer_property(alt: Alt, name: str) -> list[At] | None:
    """The writer's schemas for a property's value (``None``: the writer never writes it)."""
    out: list[At] = []
    for part in alt.parts:
        declared = part.schema_map("properties").get(name)
        if declared is not None:
            if declared.node is False:
                return None
            out.append(declared)
            continue
        settled = False
        for pattern, schema in part.schema_map("patternProperties").items():
            hit = matches(pattern, name)
            settled = settled or hit is not False  # unknown: additionalProperties may not apply
            if hit:
                if schema.node is False:
                    return None
                out.append(schema)
        if not settled and part.has("additionalProperties"):
            extra = part.child(part.node["additionalProperties"])
            if extra.node is False:
                return None
            out.append(extra)
    return out


def writer_open(alt: Alt) -> list[At] | None:
    """Value schemas for names the writer neither declares nor patterns (``None``: closed)."""
    out: list[At] = []
    for part in alt.parts:
        if part.has("additionalProperties"):
            extra = part.child(part.node["additionalProperties"])
            if extra.node is False:
                return None
            out.append(extra)
    return out


def writer_patterns(alt: Alt) -> list[tuple[str, At]]:
    return [
        (pattern, schema)
        for part in alt.parts
        for pattern, schema in part.schema_map("patternProperties").items()
        if schema.node is not False
    ]


def _dependencies(at: At) -> tuple[dict[str, list[str]], dict[str, At], str, str]:
    """(dependent required names, dependent schemas, and the keywords they came from)."""
    names: dict[str, list[str]] = {}
    schemas: dict[str, At] = {}
    for key, value in (at.get("dependentRequired") or {}).items():
        names[key] = _names(value)
    schemas.update(at.schema_map("dependentSchemas"))
    legacy = at.get("dependencies") or {}
    for key, value in legacy.items():
        if isinstance(value, list):
            names[key] = _names(value)
        elif isinstance(value, dict | bool):
            schemas[key] = at.child(value)
    if legacy:
        return names, schemas, "dependencies", "dependencies"
    return names, schemas, "dependentRequired", "dependentSchemas"


# -- objects ----------------------------------------------------------------------------


def check_objects(ck: Checker, reader: At, alt: Alt, loc: Loc) -> Found:
    props = reader.schema_map("properties")
    patterns = reader.schema_map("patternProperties")
    extra = (
        reader.child(reader.node["additionalProperties"])
        if reader.has("additionalProperties")
        else None
    )
    declared = writer_declared(alt)
    found: Found = _required(reader, alt, declared, loc)
    for name, schema in props.items():
        writers = writer_property(alt, name)
        if writers is None:
            continue  # the writer never writes it: the reader may say anything about it
        here = loc.prop(name)
        nested = ck.sub(schema, writers, here)
        if not nested or name in declared:
            found += nested
            continue
        partial = any(matches(p, name) is not False for p, _ in writer_patterns(alt))
        model = "patternProperties" if partial else "open content model"
        rule = (
            "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
            if partial
            else "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"
        )
        found.append(
            here.incompatible(
                rule,
                f"the reader adds it, but the writer's {model} lets documents carry it with values the reader rejects ({nested[0].rule})",
            )
        )
    for name in sorted(declared - props.keys()):
        writers = writer_property(alt, name)
        if writers is not None:
            found += _removed(ck, patterns, extra, name, writers, loc)
    open_values = writer_open(alt)
    if open_values is not None:
        found += _open_writer(ck, patterns, extra, open_values, loc)
    for pattern, schema in writer_patterns(alt):
        found += _pattern_writer(ck, patterns, extra, pattern, schema, loc)
    found += _sizes(reader, alt, declared, loc)
    found += _property_names(ck, reader, alt, declared, loc)
    found += _dependency_checks(ck, reader, alt, loc)
    found += _unevaluated(ck, reader, alt, declared, loc)
    return found


def _required(reader: At, alt: Alt, declared: set[str], loc: Loc) -> Found:
    found: Found = []
    required = writer_required(alt)
    for name in _names(reader.get("required")):
        if name in required:
            continue
        here = loc.prop(name)
        if writer_property(alt, name) is None:
            found.append(
                here.incompatible(
                    "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
                    "the reader requires it, the writer's closed content model never carries it",
                )
            )
        elif name in declared:
            found.append(
                here.incompatible(
                    "REQUIRED_ATTRIBUTE_ADDED",
                    "the reader requires it, the writer declares it optional",
                )
            )
        else:
            found.append(
                here.incompatible(
                    "REQUIRED_PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                    "the reader requires it, the writer does not declare it",
                )
            )
    return found


def _removed(
    ck: Checker, patterns: dict[str, At], extra: At | None, name: str, writers: list[At], loc: Loc
) -> Found:
    """A property the writer declares and the reader does not."""
    found: Found = []
    settled = False
    for pattern, schema in patterns.items():
        hit = matches(pattern, name)
        if hit is False:
            continue
        settled = settled or bool(hit)
        if ck.sub(schema, writers, loc.named(name, "patternProperties", pattern)):
            found.append(
                loc.named(name, "patternProperties", pattern).incompatible(
                    "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                    f"the reader no longer declares it and its patternProperties {pattern!r} rejects values the writer allows",
                )
            )
    if settled or extra is None:
        return found
    here = loc.named(name, "additionalProperties")
    if extra.node is False:
        found.append(
            here.incompatible(
                "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                "the writer declares it, the reader's closed content model rejects documents carrying it",
            )
        )
    elif ck.sub(extra, writers, here):
        found.append(
            here.incompatible(
                "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
                "the reader no longer declares it and its additionalProperties rejects values the writer allows",
            )
        )
    return found


def _open_writer(
    ck: Checker, patterns: dict[str, At], extra: At | None, values: list[At], loc: Loc
) -> Found:
    """Names neither side declares, which an open writer may produce."""
    found: Found = []
    for pattern, schema in patterns.items():
        if not ck.fits(schema, values):
            found.append(
                loc.pattern(pattern).incompatible(
                    "ADDITIONAL_PROPERTIES_NARROWED",
                    "the writer allows undeclared properties, and the reader constrains those matching this pattern",
                )
            )
    if extra is None:
        return found
    here = loc.at("additionalProperties")
    if extra.node is False:
        found.append(
            here.incompatible(
                "ADDITIONAL_PROPERTIES_NARROWED",
                "the writer's content model is open (undeclared properties allowed), the reader's is closed",
            )
        )
    elif not ck.fits(extra, values):
        found.append(
            here.incompatible(
                "ADDITIONAL_PROPERTIES_NARROWED",
                "the reader's additionalProperties is narrower than the writer's",
            )
        )
    return found


def _pattern_writer(
    ck: Checker, patterns: dict[str, At], extra: At | None, pattern: str, schema: At, loc: Loc
) -> Found:
    """Names matching one of the writer's patternProperties."""
    found: Found = []
    for theirs, reader_schema in patterns.items():
        if theirs == pattern:
            found += ck.sub(reader_schema, [schema], loc.pattern(pattern))
        elif not ck.fits(reader_schema, [schema]):
            found.append(
                loc.pattern(theirs).incompatible(
                    "PATTERN_PROPERTIES_CHANGED",
                    f"names matching the writer's pattern {pattern!r} may also match this one, whose schema is narrower (regular expressions are not compared)",
                )
            )
    if pattern not in patterns and extra is not None and not ck.fits(extra, [schema]):
        found.append(
            loc.at("additionalProperties").incompatible(
                "PATTERN_PROPERTIES_CHANGED" if patterns else "ADDITIONAL_PROPERTIES_NARROWED",
                f"the writer allows properties matching {pattern!r}, which the reader has no pattern for and its additionalProperties rejects",
            )
        )
    return found


def _sizes(reader: At, alt: Alt, declared: set[str], loc: Loc) -> Found:
    found: Found = []
    least = reader.number("minProperties")
    if least:
        theirs = alt.numbers("minProperties")
        if max([*theirs, len(writer_required(alt))]) < least:
            rule = "MIN_PROPERTIES_INCREASED" if theirs else "MIN_PROPERTIES_ADDED"
            found.append(
                loc.incompatible(
                    rule,
                    f"the reader needs at least {least} properties, writer objects may have fewer",
                )
            )
    most = reader.number("maxProperties")
    if most is not None:
        bounds = alt.numbers("maxProperties")
        if writer_open(alt) is None and not writer_patterns(alt):
            bounds.append(sum(1 for n in declared if writer_property(alt, n) is not None))
        if not bounds or min(bounds) > most:
            rule = (
                "MAX_PROPERTIES_DECREASED"
                if alt.numbers("maxProperties")
                else "MAX_PROPERTIES_ADDED"
            )
            found.append(
                loc.incompatible(
                    rule,
                    f"the reader allows at most {most} properties, writer objects may have more",
                )
            )
    return found


def _property_names(ck: Checker, reader: At, alt: Alt, declared: set[str], loc: Loc) -> Found:
    if not reader.has("propertyNames"):
        return []
    names = reader.child(reader.node["propertyNames"])
    if names.accepts_all():
        return []
    here = loc.at("propertyNames")
    found: Found = [
        loc.named(n, "propertyNames").incompatible(
            "PROPERTY_NAMES_NARROWED",
            "the writer declares this name, the reader's propertyNames rejects it",
        )
        for n in sorted(declared)
        if writer_property(alt, n) is not None and ck.valid(names, n) is not True
    ]
    if writer_open(alt) is not None or writer_patterns(alt):
        theirs = [p.child(p.node["propertyNames"]) for p in alt.parts if p.has("propertyNames")]
        if not ck.fits(names, theirs, Alt(atoms=frozenset({"string"}))):
            rule = "PROPERTY_NAMES_NARROWED" if theirs else "PROPERTY_NAMES_ADDED"
            found.append(
                here.incompatible(
                    rule, "the writer allows property names the reader's propertyNames rejects"
                )
            )
    return found


def _dependency_checks(ck: Checker, reader: At, alt: Alt, loc: Loc) -> Found:
    found: Found = []
    names, schemas, names_kw, schemas_kw = _dependencies(reader)
    if not names and not schemas:
        return found
    required = writer_required(alt)
    theirs = [_dependencies(p) for p in alt.parts]
    for name, needs in names.items():
        if writer_property(alt, name) is None:
            continue
        implied = {n for deps in theirs for n in deps[0].get(name, [])}
        missing = [n for n in needs if n not in required and n not in implied]
        if missing:
            rule = "DEPENDENCY_ARRAY_EXTENDED" if implied else "DEPENDENCY_ARRAY_ADDED"
            found.append(
                loc.named(name, names_kw, name).incompatible(
                    rule,
                    f"the reader needs {missing} whenever it is present, the writer does not ensure that",
                )
            )
    for name, schema in schemas.items():
        if writer_property(alt, name) is None:
            continue
        here = loc.named(name, schemas_kw, name)
        if name in required:
            found += ck.sub_alt(schema, alt, here)
            continue
        conditions = [deps[1][name] for deps in theirs if name in deps[1]]
        if not ck.fits(schema, conditions, alt):
            rule = "DEPENDENCY_SCHEMA_CHANGED" if conditions else "DEPENDENCY_SCHEMA_ADDED"
            found.append(
                here.incompatible(
                    rule, "writer objects carrying it may fail the reader's dependent schema"
                )
            )
    return found


def _evaluated(at: At, hops: int = 0) -> tuple[set[str], set[str]] | None:
    """Names and patterns the node evaluates for unevaluatedProperties (``None``: all)."""
    if at.has("additionalProperties"):
        return None
    if hops > 16:
        return set(), set()
    names, patterns = set(at.schema_map("properties")), set(at.schema_map("patternProperties"))
    target = at.ref()
    for sub in [*at.schemas("allOf"), *([target] if target is not None else [])]:
        more = _evaluated(sub, hops + 1)
        if more is None:
            return None
        names |= more[0]
        patterns |= more[1]
    return names, patterns


def _unevaluated(ck: Checker, reader: At, alt: Alt, declared: set[str], loc: Loc) -> Found:
    """unevaluatedProperties, counting only properties the reader evaluates for certain
    (its own, its allOf's and $ref's; those of anyOf/oneOf/if branches are not counted)."""
    if not reader.has("unevaluatedProperties"):
        return []
    rest = reader.child(reader.node["unevaluatedProperties"])
    evaluated = _evaluated(reader)
    if rest.accepts_all() or evaluated is None:
        return []
    names, patterns = evaluated
    found: Found = []
    for name in sorted(declared - names):
        writers = writer_property(alt, name)
        if writers is None or any(matches(p, name) for p in patterns):
            continue
        here = loc.named(name, "unevaluatedProperties")
        if ck.sub(rest, writers, here):
            rule = (
                "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"
                if rest.node is False
                else "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
            )
            found.append(
                here.incompatible(
                    rule,
                    "the writer declares it, the reader's unevaluatedProperties rejects values it allows",
                )
            )
    open_values = writer_open(alt)
    if open_values is not None and not ck.fits(rest, open_values):
        found.append(
            loc.at("unevaluatedProperties").incompatible(
                "ADDITIONAL_PROPERTIES_NARROWED",
                "the writer allows undeclared properties, the reader's unevaluatedProperties rejects them",
            )
        )
    for pattern, schema in writer_patterns(alt):
        if pattern not in patterns and not ck.fits(rest, [schema]):
            found.append(
                loc.at("unevaluatedProperties").incompatible(
                    "PATTERN_PROPERTIES_CHANGED",
                    f"the writer allows properties matching {pattern!r}, the reader's unevaluatedProperties may reject them",
                )
            )
    return found


# -- arrays -----------------------------------------------------------------------------


def shape(at: At) -> tuple[list[At], At | None, str, str]:
    """(tuple item schemas, schema for the items after them, their two keywords)."""
    node = at.node
    if at.dialect.prefix_items:
        rest = (
            at.child(node["items"])
            if at.has("items") and isinstance(node["items"], dict | bool)
            else None
        )
        return at.schemas("prefixItems"), rest, "prefixItems", "items"
    items = node.get("items") if at.has("items") else None
    if isinstance(items, list):
        extra = at.child(node["additionalItems"]) if at.has("additionalItems") else None
        return [at.child(s) for s in items], extra, "items", "additionalItems"
    return [], (at.child(items) if isinstance(items, dict | bool) else None), "items", "items"


def writer_item(alt: Alt, index: int) -> list[At] | None:
    """The writer's schemas for the item at ``index`` (``None``: arrays never get that long)."""
    out: list[At] = []
    for part in alt.parts:
        prefix, rest, _, _ = shape(part)
        schema = prefix[index] if index < len(prefix) else rest
        if schema is None:
            continue
        if schema.node is False:
            return None
        out.append(schema)
    return out


def writer_max_items(alt: Alt) -> int | None:
    bounds = [int(n) for n in alt.numbers("maxItems")]
    for part in alt.parts:
        prefix, rest, _, _ = shape(part)
        if rest is not None and rest.node is False:
            bounds.append(len(prefix))
    return min(bounds) if bounds else None


def _positions(
    ck: Checker, alt: Alt, width: int, reader_item: Callable[[int], tuple[At, Loc] | None]
) -> Found:
    """Each item position the writer may fill against the reader's schema for it; position
    ``width`` stands for all positions from there on (both sides' tuples are behind)."""
    found: Found = []
    most = writer_max_items(alt)
    width = max([width] + [len(shape(p)[0]) for p in alt.parts])
    for index in range(width + 1):
        if most is not None and index >= most:
            break
        writers = writer_item(alt, index)
        if writers is None:
            break
        hit = reader_item(index)
        if hit is None:
            continue
        schema, here = hit
        if schema.node is False:
            found.append(
                here.incompatible(
                    "ITEMS_CHANGED",
                    f"the reader allows at most {index} item(s), writer arrays may be longer",
                )
            )
        else:
            found += ck.sub(schema, writers, here)
    return found


def _evaluated_items(at: At, hops: int = 0) -> int | None:
    """How many leading items the node evaluates for unevaluatedItems (``None``: all)."""
    prefix, rest, _, _ = shape(at)
    if rest is not None:
        return None
    if hops > 16:
        return 0
    width = len(prefix)
    target = at.ref()
    for sub in [*at.schemas("allOf"), *([target] if target is not None else [])]:
        more = _evaluated_items(sub, hops + 1)
        if more is None:
            return None
        width = max(width, more)
    return width


def check_arrays(ck: Checker, reader: At, alt: Alt, loc: Loc) -> Found:
    prefix, rest, prefix_kw, rest_kw = shape(reader)

    def item(index: int) -> tuple[At, Loc] | None:
        if index < len(prefix):
            return prefix[index], loc.item(prefix_kw, str(index))
        return (rest, loc.item(rest_kw)) if rest is not None else None

    found = _positions(ck, alt, len(prefix), item)
    if reader.has("unevaluatedItems"):
        unevaluated = reader.child(reader.node["unevaluatedItems"])
        evaluated = _evaluated_items(reader)
        if evaluated is not None and not unevaluated.accepts_all():
            here = loc.item("unevaluatedItems")
            found += _positions(
                ck, alt, evaluated, lambda i: (unevaluated, here) if i >= evaluated else None
            )
    return found + _array_sizes(ck, reader, alt, loc)


def _array_sizes(ck: Checker, reader: At, alt: Alt, loc: Loc) -> Found:
    found: Found = []
    theirs_min = alt.numbers("minItems")
    writer_min = max(theirs_min, default=0)
    least = reader.number("minItems")
    if least and writer_min < least:
        rule = "MIN_ITEMS_INCREASED" if theirs_min else "MIN_ITEMS_ADDED"
        found.append(
            loc.incompatible(
                rule,
                f"the reader needs at least {least} items, writer arrays may have {writer_min}",
            )
        )
    writer_max = writer_max_items(alt)
    most = reader.number("maxItems")
    if most is not None and (writer_max is None or writer_max > most):
        rule = "MAX_ITEMS_DECREASED" if writer_max is not None else "MAX_ITEMS_ADDED"
        found.append(
            loc.incompatible(
                rule, f"the reader allows at most {most} items, writer arrays may have more"
            )
        )
    unique = any(p.get("uniqueItems") is True for p in alt.parts)
    if reader.get("uniqueItems") is True and not unique and (writer_max is None or writer_max > 1):
        found.append(
            loc.incompatible(
                "UNIQUE_ITEMS_ADDED", "the reader needs unique items, the writer allows repeats"
            )
        )
    if reader.has("contains"):
        found += _contains(ck, reader, alt, loc, writer_min, writer_max)
    return found


def _contains(
    ck: Checker, reader: At, alt: Alt, loc: Loc, writer_min: int | float, writer_max: int | None
) -> Found:
    found: Found = []
    wanted = reader.child(reader.node["contains"])
    least = reader.number("minContains")
    least = 1 if least is None else least
    theirs = [p for p in alt.parts if p.has("contains")]
    if least > 0:
        covered = wanted.accepts_all() and writer_min >= least
        for part in theirs:
            count = part.number("minContains")
            count = 1 if count is None else count
            if count >= least and ck.fits(wanted, [part.child(part.node["contains"])]):
                covered = True
        if not covered:
            rule = "CONTAINS_CHANGED" if theirs else "CONTAINS_ADDED"
            found.append(
                loc.at("contains").incompatible(
                    rule,
                    f"the reader needs at least {least} matching item(s), the writer does not ensure them",
                )
            )
    most = reader.number("maxContains")
    if most is not None and (writer_max is None or writer_max > most):
        found.append(
            loc.at("maxContains").incompatible(
                "MAX_CONTAINS_ADDED",
                f"the reader allows at most {most} matching items, writer arrays may have more",
            )
        )
    return found
