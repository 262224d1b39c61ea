"""Finding projections by name: ``module:attribute`` as ``eventml run`` names apps.

The attribute may be a :class:`Projection`, a sequence or mapping of them, or any
object with a ``projections`` attribute holding one of those (e.g. a small
registry object of your own, or :class:`Views`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from eventml._spec import import_attribute
from eventml.views.projection import InvalidProjection, Projection


class Views:
    """A named set of projections: what ``eventml views --app module:attr`` looks up."""

    def __init__(self, *projections: Projection) -> None:
        self.projections: dict[str, Projection] = {}
        for p in projections:
            self.add(p)

    def add(self, projection: Projection) -> Projection:
        if projection.name in self.projections:
            raise InvalidProjection(f"two views are named {projection.name!r}")
        self.projections[projection.name] = projection
        return projection

    def __getitem__(self, name: str) -> Projection:
        try:
            return self.projections[name]
        except KeyError:
            known = ", ".join(sorted(self.projections)) or "none"
            raise InvalidProjection(f"no view named {name!r} (known: {known})") from None

    def __iter__(self) -> Iterator[Projection]:
        return iter(self.projections.values())

    def __len__(self) -> int:
        return len(self.projections)


def load_views(spec: str) -> Views:
    """The projections named by ``"module:attribute"`` (the current directory is importable).

    Raises :class:`InvalidProjection` with a one-line reason when it cannot.
    """
    try:
        obj = import_attribute(spec, "myviews:views")
    except ValueError as e:
        raise InvalidProjection(str(e)) from None
    return as_views(obj, spec)


def as_views(obj: object, where: str = "the object") -> Views:
    """``obj`` (a projection, a collection of them, or a holder of them) as :class:`Views`."""
    if isinstance(obj, Views):
        return obj
    if isinstance(obj, Projection):
        return Views(obj)
    held = getattr(obj, "projections", None)
    if held is not None and not isinstance(obj, Mapping | list | tuple):
        return as_views(held, where)
    items: Iterable[object]
    if isinstance(obj, Mapping):
        items = obj.values()
    elif isinstance(obj, list | tuple | set | frozenset):
        items = obj
    else:
        raise InvalidProjection(
            f"{where}: expected a Projection, a list or dict of them, or an object with a "
            f".projections attribute (got {type(obj).__name__})")
    views = Views()
    for item in items:
        if not isinstance(item, Projection):
            raise InvalidProjection(f"{where}: {item!r} is not a Projection")
        views.add(item)
    return views
