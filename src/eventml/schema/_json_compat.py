"""JSON Schema compatibility: can a reader schema accept everything a writer schema accepts?

``check(reader, writer)`` answers with the reasons it cannot (an empty list: compatible). The
check is sound where it says "compatible": every finding it omits is one it has proven
impossible; where it cannot decide (two different regular expressions, say) it reports an
incompatibility and says why. It works on the writer as a union of conjunctions
(:class:`~eventml.schema._json_compat_model.Alt`) and the reader node by node:

* a writer whose values are a small finite set (``enum``, ``const``, ``boolean``/``null``,
  a bounded integer range) is checked exactly, value by value, with jsonschema;
* otherwise keyword by keyword: ``type`` (``integer`` fits ``number``, not the reverse),
  numeric and length bounds, ``pattern``, ``multipleOf``, ``enum``/``const``, objects and
  arrays (:mod:`eventml.schema._json_compat_containers`), and the combinators ``allOf``,
  ``anyOf``, ``oneOf``, ``not``, ``if``/``then``/``else`` and ``$ref`` (recursion included).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

from eventml.schema._json_compat_containers import (
    check_arrays,
    check_objects,
    writer_property,
    writer_required,
)
from eventml.schema._json_compat_model import NUMERIC, Alt, At, Loc, kind_of, type_names
from eventml.schema._json_walk import Bundle, json_equal, recoverable, subschemas
from eventml.schema.errors import Incompatibility

MAX_ALTERNATIVES = 256  # writer anyOf/oneOf combinations checked one by one
MAX_NESTING = 200  # reader/writer pairs open at once (deeper: reported, not recursed)
MAX_FINITE = 256  # a bounded integer range up to this size is checked value by value
_NONE = 1 << 30  # no assumption made

Bound = tuple[int | float, bool]  # (value, exclusive)


def check(reader: Bundle, writer: Bundle) -> list[Incompatibility]:
    """Why documents valid under ``writer`` may be invalid under ``reader`` (empty: none)."""
    checker = Checker()
    try:
        return checker.sub(
            At(reader.document, reader.resolver, reader),
            [At(writer.document, writer.resolver, writer)],
            Loc(),
        )
    except RecursionError:
        return [Loc().incompatible("SCHEMA_TOO_COMPLEX", "the schemas nest too deeply to compare")]
    except BaseException as exc:  # never a crash in the registry: say so, conservatively
        if not recoverable(exc):
            raise
        text = f"the check failed ({type(exc).__name__}: {exc}), so compatibility is not proven"
        return [Loc().incompatible("CHECK_FAILED", text)]


def _dedupe(found: Iterable[Incompatibility]) -> list[Incompatibility]:
    return list(dict.fromkeys(found))


class Checker:
    """One compatibility check (it remembers the reader/writer pairs being compared)."""

    def __init__(self) -> None:
        self._open: dict[Any, int] = {}  # pairs being compared -> their depth
        self._memo: dict[Any, list[Incompatibility]] = {}
        self._provisional: dict[Any, int] = {}  # successes resting on an open pair -> serial
        self._low = _NONE  # the shallowest open pair the current comparison assumed
        self._serial = 0

    # -- entry points ------------------------------------------------------------------

    def sub(
        self, reader: At, writers: Sequence[At], loc: Loc, base: Alt | None = None
    ) -> list[Incompatibility]:
        """Findings for "the conjunction of ``writers`` is within ``reader``"."""
        if reader.accepts_all():
            return []
        if base is None and len(writers) == 1 and self.same(reader, writers[0]):
            return []
        alternatives = self.expand(writers, base or Alt())
        if alternatives is None:
            return [
                loc.incompatible(
                    "SCHEMA_TOO_COMPLEX",
                    "the writer has too many anyOf/oneOf combinations to compare",
                )
            ]
        found: list[Incompatibility] = []
        for alt in alternatives:
            found.extend(self.sub_alt(reader, alt, loc))
        return _dedupe(found)

    def fits(self, reader: At, writers: Sequence[At], base: Alt | None = None) -> bool:
        return not self.sub(reader, writers, Loc(), base)

    def sub_alt(self, reader: At, alt: Alt, loc: Loc) -> list[Incompatibility]:
        """Findings for "values of the writer alternative ``alt`` are valid under ``reader``".

        Results are remembered, so a schema reached along many routes (recursive
        definitions) is compared once. A pair met again while it is still being compared
        (a cycle through ``$ref``) is assumed compatible, as in subtyping recursive types;
        a success that leaned on such an assumption is kept only provisionally, and dropped
        when the pair it assumed turns out incompatible. Findings are kept for good: the
        assumptions only ever add successes.
        """
        if not alt.types():
            return []  # the alternative admits no value
        key = (
            id(reader.node),
            tuple(id(p.node) for p in alt.parts),
            alt.atoms,
            tuple((id(owner.node), index) for owner, index in alt.choices),
            loc.where,
        )
        done = self._memo.get(key)
        if done is not None:
            return done
        if key in self._provisional:
            return []
        depth = self._open.get(key)
        if depth is not None:
            self._low = min(self._low, depth)
            return []  # a cycle through $ref: assume what is being proven
        if len(self._open) >= MAX_NESTING:
            return [
                loc.incompatible("SCHEMA_TOO_COMPLEX", "the schemas nest too deeply to compare")
            ]
        depth = self._open[key] = len(self._open)
        outer_low, self._low = self._low, _NONE
        start = self._serial = self._serial + 1
        try:
            found = self._sub_alt(reader, alt, loc)
        finally:
            del self._open[key]
            used = self._low
            self._low = min(outer_low, used if used < depth else _NONE)
        self._serial += 1
        if found:
            self._memo[key] = found
            stale = [k for k, serial in self._provisional.items() if serial > start]
            for k in stale:
                del self._provisional[k]
        elif used >= depth:
            self._memo[key] = found
        else:
            self._provisional[key] = self._serial
        return found

    def _sub_alt(self, reader: At, alt: Alt, loc: Loc) -> list[Incompatibility]:
        node = reader.node
        if node is True or reader.accepts_all():
            return []
        if node is False:
            return [
                loc.incompatible(
                    "TYPE_NARROWED",
                    "the reader schema is false and accepts nothing the writer produces",
                )
            ]
        if not isinstance(node, dict):
            return []
        finite = self.finite(alt)
        if finite is None:
            return self.structural(reader, alt, loc, None)
        rejected = [v for v in finite if self.valid(reader, v) is not True]
        if not rejected:
            return []
        alt = alt.restrict(frozenset(kind_of(v) for v in rejected))  # explain these values
        return self.structural(reader, alt, loc, rejected) or [
            loc.incompatible(
                "ENUM_ARRAY_NARROWED", f"the reader rejects the writer's value(s) {_show(rejected)}"
            )
        ]

    # -- the writer as alternatives ---------------------------------------------------

    def expand(self, writers: Iterable[At], base: Alt) -> list[Alt] | None:
        alts: list[Alt] | None = [base]
        for at in writers:
            alts = self._conjoin(alts, at, 0) if alts is not None else None
        return alts

    def _conjoin(self, alts: list[Alt], at: At, hops: int) -> list[Alt] | None:
        node = at.node
        if node is False:
            return []
        if not isinstance(node, dict) or hops > 32:
            return alts  # dropping a writer constraint only widens the writer: still sound
        target = at.ref()
        if target is not None:
            conjoined = self._conjoin(alts, target, hops + 1)
            if conjoined is None or at.dialect.legacy_ref:
                return conjoined
            alts = conjoined
        nots = (at.child(node["not"]),) if at.has("not") else ()
        conds = (at,) if at.has("if") else ()
        extended = (
            replace(a, parts=(*a.parts, at), nots=a.nots + nots, conds=a.conds + conds)
            for a in alts
        )
        out: list[Alt] | None = [a for a in extended if a.types()]
        for sub in at.schemas("allOf"):
            out = self._conjoin(out, sub, hops + 1) if out is not None else None
        for keyword in ("anyOf", "oneOf"):
            branches = at.schemas(keyword)
            if not branches or out is None:
                continue
            union: list[Alt] = []
            for index, branch in enumerate(branches):
                taken = out
                if keyword == "oneOf":
                    taken = [replace(a, choices=(*a.choices, (at, index))) for a in out]
                got = self._conjoin(taken, branch, hops + 1)
                if got is None or len(union) + len(got) > MAX_ALTERNATIVES:
                    return None
                union.extend(got)
            out = union
        return out

    def finite(self, alt: Alt) -> list[Any] | None:
        """The writer alternative's values if they are few and known, else ``None``."""
        values: list[Any] | None = None
        for part in alt.parts:
            allowed = [part.node["const"]] if part.has("const") else part.get("enum")
            if isinstance(allowed, list):
                values = (
                    allowed
                    if values is None
                    else [v for v in values if any(json_equal(v, a) for a in allowed)]
                )
        types = alt.types()
        if values is None:
            if types <= {"null", "boolean"}:
                values = ([None] if "null" in types else []) + (
                    [True, False] if "boolean" in types else []
                )
            elif types == {"integer"}:
                low, high = self.lower(alt, True), self.upper(alt, True)
                if low is None or high is None or high[0] - low[0] > MAX_FINITE:
                    return None
                values = list(range(int(low[0]), int(high[0]) + 1))
            else:
                return None
        return [
            v
            for v in values
            if kind_of(v) in types and all(self.valid(p, v) is not False for p in alt.parts)
        ]

    # -- tools ------------------------------------------------------------------------

    @staticmethod
    def valid(at: At, value: Any) -> bool | None:
        """Whether ``value`` is valid under the node (``None``: could not tell)."""
        try:
            validator = at.dialect.validator_class(
                at.node, registry=at.side.registry, _resolver=at.resolver
            )
            return bool(validator.is_valid(value))
        except BaseException as exc:
            if not recoverable(exc):
                raise
            return None

    def same(self, a: At, b: At, seen: set[tuple[int, int]] | None = None) -> bool:
        """Whether two nodes are the same schema (structurally, ``$ref`` targets included)."""
        x, y = a.node, b.node
        if a.dialect is not b.dialect:
            return False
        if not (isinstance(x, dict) and isinstance(y, dict)):
            return json_equal(x, y)
        if x.keys() != y.keys():
            return False
        seen = set() if seen is None else seen
        ra, rb = a.ref(), b.ref()
        if ra is not None and rb is not None:
            pair = (id(ra.node), id(rb.node))
            if pair not in seen:
                seen.add(pair)
                if not self.same(ra, rb, seen):
                    return False
        xs, ys = dict(subschemas(x)), dict(subschemas(y))
        if xs.keys() != ys.keys():
            return False
        nested = {parts[0] for parts in xs}
        for key in x:
            if key == "dependencies":  # schemas (compared below) mixed with name lists
                equal = _equal_outside_schemas(x[key], y[key])
            elif key in nested or key in ("$ref", "$dynamicRef", "$recursiveRef"):
                continue
            else:
                equal = json_equal(x[key], y[key])
            if not equal:
                return False
        return all(self.same(a.child(xs[p]), b.child(ys[p]), seen) for p in xs)

    def disjoint(self, alt: Alt, reader: At) -> bool:
        """Whether no value of the writer alternative is valid under ``reader`` (if provable)."""
        if reader.node is False:
            return True
        if not isinstance(reader.node, dict):
            return False
        target = reader.ref()
        if target is not None and reader.dialect.legacy_ref:
            return self.disjoint(alt, target)
        finite = self.finite(alt)
        if finite is not None:
            return all(self.valid(reader, v) is False for v in finite)
        if not alt.types() & reader.atoms():
            return True
        allowed = [reader.node["const"]] if reader.has("const") else reader.get("enum")
        if isinstance(allowed, list) and all(
            any(self.valid(p, v) is False for p in alt.parts) for v in allowed
        ):
            return True
        if "object" in alt.types() and not alt.types() - {"object"}:
            return self._disjoint_object(alt, reader)
        return False

    def _disjoint_object(self, alt: Alt, reader: At) -> bool:
        required = writer_required(alt)
        for name in reader.get("required") or []:
            if isinstance(name, str) and writer_property(alt, name) is None:
                return True  # the reader needs a property the writer never writes
        for name, schema in reader.schema_map("properties").items():
            if name not in required:
                continue
            target = schema.ref() if schema.dialect.legacy_ref else None
            schema = target or schema
            allowed = [schema.node["const"]] if schema.has("const") else schema.get("enum")
            writers = writer_property(alt, name)
            if writers is None or not isinstance(allowed, list):
                continue
            if all(any(self.valid(w, v) is False for w in writers) for v in allowed):
                return True  # a discriminator: the writer's values for it are not the reader's
        return False

    # -- keyword by keyword -------------------------------------------------------------

    def structural(
        self, reader: At, alt: Alt, loc: Loc, rejected: list[Any] | None
    ) -> list[Incompatibility]:
        found: list[Incompatibility] = []
        target = reader.ref()
        if target is not None:
            found += self.sub_alt(target, alt, loc.follow(reader.ref_uri() or ""))
            if reader.dialect.legacy_ref:
                return found
        writer_types, reader_types = alt.types(), reader.atoms()
        extra = writer_types - reader_types
        if extra:
            rule = "TYPE_NARROWED" if writer_types & reader_types else "TYPE_CHANGED"
            found.append(
                loc.incompatible(
                    rule,
                    f"the writer produces {type_names(writer_types)} values, the reader accepts {type_names(reader_types)}",
                )
            )
        common = writer_types & reader_types
        constants = self.constants(reader, loc, rejected)
        found += constants
        if rejected is not None and constants:
            return found  # a finite writer: the enum/const explains the rejected values
        if "string" in common:
            found += self.strings(reader, alt, loc)
        if common & NUMERIC:
            found += self.numbers(reader, alt, loc)
        if "object" in common:
            found += check_objects(self, reader, alt, loc)
        if "array" in common:
            found += check_arrays(self, reader, alt, loc)
        for i, sub in enumerate(reader.schemas("allOf")):
            found += self.sub_alt(sub, alt, loc.at("allOf", str(i)))
        for keyword in ("anyOf", "oneOf"):
            if reader.has(keyword):
                found += self.union(reader, keyword, alt, loc)
        if reader.has("not"):
            found += self.negation(reader, alt, loc)
        if reader.has("if"):
            found += self.conditional(reader, alt, loc)
        if rejected and not found:
            found.append(
                loc.incompatible(
                    "ENUM_ARRAY_NARROWED",
                    f"the reader rejects the writer's value(s) {_show(rejected)}",
                )
            )
        return found

    def constants(self, reader: At, loc: Loc, rejected: list[Any] | None) -> list[Incompatibility]:
        if reader.has("const"):
            const = reader.node["const"]
            if rejected is None:
                return [
                    loc.at("const").incompatible(
                        "CONST_CHANGED",
                        f"the reader only accepts {_show([const])}, the writer is not limited to it",
                    )
                ]
            bad = [v for v in rejected if not json_equal(v, const)]
            if bad:
                return [
                    loc.at("const").incompatible(
                        "CONST_CHANGED",
                        f"the reader only accepts {_show([const])}, the writer also produces {_show(bad)}",
                    )
                ]
        enum = reader.get("enum")
        if isinstance(enum, list):
            if rejected is None:
                return [
                    loc.at("enum").incompatible(
                        "ENUM_ARRAY_NARROWED",
                        "the reader limits values to an enum, the writer does not",
                    )
                ]
            bad = [v for v in rejected if not any(json_equal(v, e) for e in enum)]
            if bad:
                return [
                    loc.at("enum").incompatible(
                        "ENUM_ARRAY_NARROWED",
                        f"the reader's enum lacks the writer's value(s) {_show(bad)}",
                    )
                ]
        return []

    def strings(self, reader: At, alt: Alt, loc: Loc) -> list[Incompatibility]:
        found: list[Incompatibility] = []
        most = reader.number("maxLength")
        if most is not None:
            theirs = alt.numbers("maxLength")
            if not theirs:
                found.append(
                    loc.incompatible(
                        "MAX_LENGTH_ADDED",
                        f"the reader allows at most {most} characters, the writer has no maxLength",
                    )
                )
            elif min(theirs) > most:
                found.append(
                    loc.incompatible(
                        "MAX_LENGTH_DECREASED",
                        f"the reader's maxLength {most} is below the writer's {min(theirs)}",
                    )
                )
        least = reader.number("minLength")
        if least:
            theirs = alt.numbers("minLength")
            if not theirs:
                found.append(
                    loc.incompatible(
                        "MIN_LENGTH_ADDED",
                        f"the reader needs at least {least} characters, the writer has no minLength",
                    )
                )
            elif max(theirs) < least:
                found.append(
                    loc.incompatible(
                        "MIN_LENGTH_INCREASED",
                        f"the reader's minLength {least} is above the writer's {max(theirs)}",
                    )
                )
        pattern = reader.get("pattern")
        if isinstance(pattern, str):
            patterns = alt.values("pattern")
            if pattern not in patterns:
                rule = "PATTERN_CHANGED" if patterns else "PATTERN_ADDED"
                was = f"the writer's is {patterns[0]!r}" if patterns else "the writer has none"
                found.append(
                    loc.incompatible(
                        rule,
                        f"the reader's pattern {pattern!r} differs and {was} (regular expressions are only compared for equality)",
                    )
                )
        return found

    def numbers(self, reader: At, alt: Alt, loc: Loc) -> list[Incompatibility]:
        found: list[Incompatibility] = []
        integers = "fraction" not in alt.types()
        upper, lower = self.upper(alt, integers), self.lower(alt, integers)
        for keyword, bound, legacy in _bounds(reader, "maximum", "exclusiveMaximum"):
            rule = "EXCLUSIVE_MAXIMUM" if keyword == "exclusiveMaximum" or legacy else "MAXIMUM"
            if upper is None:
                found.append(
                    loc.incompatible(
                        f"{rule}_ADDED",
                        f"the reader's {keyword} {bound[0]} is new, the writer has no upper bound",
                    )
                )
            elif not _below(upper, bound):
                found.append(
                    loc.incompatible(
                        f"{rule}_DECREASED",
                        f"the reader's {keyword} {bound[0]} is below the writer's upper bound {upper[0]}",
                    )
                )
        for keyword, bound, legacy in _bounds(reader, "minimum", "exclusiveMinimum"):
            rule = "EXCLUSIVE_MINIMUM" if keyword == "exclusiveMinimum" or legacy else "MINIMUM"
            if lower is None:
                found.append(
                    loc.incompatible(
                        f"{rule}_ADDED",
                        f"the reader's {keyword} {bound[0]} is new, the writer has no lower bound",
                    )
                )
            elif not _above(lower, bound):
                found.append(
                    loc.incompatible(
                        f"{rule}_INCREASED",
                        f"the reader's {keyword} {bound[0]} is above the writer's lower bound {lower[0]}",
                    )
                )
        step = reader.number("multipleOf")
        if step is not None:
            theirs = alt.numbers("multipleOf") + ([1] if integers else [])
            if not any(_multiple(w, step) for w in theirs):
                rule = "MULTIPLE_OF_CHANGED" if alt.numbers("multipleOf") else "MULTIPLE_OF_ADDED"
                found.append(
                    loc.incompatible(
                        rule,
                        f"writer values need not be multiples of the reader's multipleOf {step}",
                    )
                )
        return found

    def upper(self, alt: Alt, integers: bool) -> Bound | None:
        bounds = [b for p in alt.parts for _, b, _ in _bounds(p, "maximum", "exclusiveMaximum")]
        if not bounds:
            return None
        best = min(bounds, key=lambda b: (b[0], not b[1]))
        if integers:
            return (math.ceil(best[0]) - 1 if best[1] else math.floor(best[0])), False
        return best

    def lower(self, alt: Alt, integers: bool) -> Bound | None:
        bounds = [b for p in alt.parts for _, b, _ in _bounds(p, "minimum", "exclusiveMinimum")]
        if not bounds:
            return None
        best = max(bounds, key=lambda b: (b[0], b[1]))
        if integers:
            return (math.floor(best[0]) + 1 if best[1] else math.ceil(best[0])), False
        return best

    # -- combinators --------------------------------------------------------------------

    def union(self, reader: At, keyword: str, alt: Alt, loc: Loc) -> list[Incompatibility]:
        """``anyOf``/``oneOf`` in the reader: each writer value must match one branch (exactly
        one for ``oneOf``, shown by the other branches being disjoint from it)."""
        branches = reader.schemas(keyword)
        exclusive = keyword == "oneOf"
        if self._covered(alt, branches, exclusive) is not None:
            return []
        types = alt.types()
        pieces = [alt.restrict(frozenset({t})) for t in sorted(types)] if len(types) > 1 else [alt]
        missed: list[str] = []
        ambiguous: list[str] = []
        for piece in pieces:
            if self._covered(piece, branches, exclusive) is not None:
                continue
            fitting = exclusive and any(self.fits_alt(b, piece) for b in branches)
            (ambiguous if fitting else missed).append(type_names(piece.types()))
        here = loc.at(keyword)
        found = []
        if missed:
            found.append(
                here.incompatible(
                    "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                    f"writer {', '.join(missed)} values may match none of the reader's {keyword} branches",
                )
            )
        if ambiguous:
            found.append(
                here.incompatible(
                    "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                    f"writer {', '.join(ambiguous)} values may match more than one of the reader's oneOf branches",
                )
            )
        return found

    def fits_alt(self, reader: At, alt: Alt) -> bool:
        return not self.sub_alt(reader, alt, Loc())

    def _covered(self, piece: Alt, branches: list[At], exclusive: bool) -> int | None:
        for j, branch in enumerate(branches):
            if self.fits_alt(branch, piece) and (
                not exclusive
                or all(self._excluded(piece, other) for k, other in enumerate(branches) if k != j)
            ):
                return j
        return None

    def _excluded(self, alt: Alt, reader: At) -> bool:
        """No value of ``alt`` is valid under ``reader``: provably disjoint, or ``reader`` lies
        within another branch of a writer ``oneOf`` than the one ``alt`` took (a writer value
        matches exactly one branch of it)."""
        if self.disjoint(alt, reader):
            return True
        for owner, index in alt.choices:
            for m, branch in enumerate(owner.schemas("oneOf")):
                if m != index and self.fits(branch, [reader]):
                    return True
        return False

    def negation(self, reader: At, alt: Alt, loc: Loc) -> list[Incompatibility]:
        negated = reader.child(reader.node["not"])
        if any(self.fits(w, [negated]) for w in alt.nots) or self.disjoint(alt, negated):
            return []
        return [
            loc.at("not").incompatible(
                "NOT_CHANGED", 'writer values may match the reader\'s "not" schema'
            )
        ]

    def conditional(self, reader: At, alt: Alt, loc: Loc) -> list[Incompatibility]:
        node = reader.node
        test = reader.child(node["if"])
        then = reader.child(node["then"]) if reader.has("then") else None
        other = reader.child(node["else"]) if reader.has("else") else None

        def fits(branch: At | None, extra: Sequence[At] = ()) -> bool:
            return branch is None or self.fits(branch, extra, alt)

        for cond in alt.conds:
            mine = cond.node
            if self.same(cond.child(mine["if"]), test):
                then_w = [cond.child(mine["then"])] if cond.has("then") else []
                else_w = [cond.child(mine["else"])] if cond.has("else") else []
                if fits(then, then_w) and fits(other, else_w):
                    return []
        if (fits(then) and fits(other)) or (self.fits(test, (), alt) and fits(then)):
            return []
        if self.disjoint(alt, test) and fits(other):
            return []
        return [
            loc.at("if").incompatible(
                "CONDITIONAL_CHANGED", "writer values may fail the reader's if/then/else"
            )
        ]


def _equal_outside_schemas(a: Any, b: Any) -> bool:
    """JSON equality, except that ``dependencies``' schema values are compared by ``same``."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return all(isinstance(a[k], dict | bool) or json_equal(a[k], b[k]) for k in a)
    return json_equal(a, b)


def _bounds(at: At, inclusive: str, exclusive: str) -> list[tuple[str, Bound, bool]]:
    """The node's bounds on one side as (keyword, (value, exclusive), draft-4 style)."""
    out: list[tuple[str, Bound, bool]] = []
    value = at.number(inclusive)
    if value is not None:
        legacy = at.node.get(exclusive) is True and "exclusiveMaximum" not in at.dialect.keywords
        out.append((inclusive, (value, legacy), legacy))
    strict = at.number(exclusive)
    if strict is not None:
        out.append((exclusive, (strict, True), False))
    return out


def _below(writer: Bound, reader: Bound) -> bool:
    """Every number within the writer's upper bound is within the reader's."""
    return writer[0] < reader[0] or (writer[0] == reader[0] and (writer[1] or not reader[1]))


def _above(writer: Bound, reader: Bound) -> bool:
    return writer[0] > reader[0] or (writer[0] == reader[0] and (writer[1] or not reader[1]))


def _multiple(value: int | float, step: int | float) -> bool:
    try:
        quotient = Fraction(repr(value)) / Fraction(repr(step))
    except (ValueError, ZeroDivisionError, OverflowError):
        return False
    return quotient.denominator == 1


def _show(values: list[Any], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")
