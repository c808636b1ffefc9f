"""Device selectors: a small query language over the registry, used by dynamic
groups, continuous and dynamic jobs and Alibaba's version filters.

Faces parse their own syntax (AWS fleet-index queries, Alibaba SrcVersion lists)
into these nodes; the store compiles them into one SQL predicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from otahub.domain.errors import InvalidRequest

# Fields a Match may name:
#   "name", "type", "product"            the device's own columns
#   "attr:<key>"                         an attribute value
#   "group"                              member of the named group (or its children)
#   "connected"                          "true" / "false"
#   "version:<module>"                   installed version of a module
FIELD_PREFIXES = ("attr:", "version:")
PLAIN_FIELDS = frozenset({"name", "type", "product", "group", "connected"})


@dataclass(frozen=True)
class Match:
    field: str
    value: str
    prefix: bool = False  # value is a prefix ("abc*")

    def __post_init__(self) -> None:
        if self.field not in PLAIN_FIELDS and not self.field.startswith(FIELD_PREFIXES):
            raise InvalidRequest(f"unknown selector field {self.field!r}")


@dataclass(frozen=True)
class AnyOf:
    field: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Range:
    """Numeric range over an attribute; None bounds are open."""

    field: str
    low: float | None = None
    high: float | None = None
    include_low: bool = True
    include_high: bool = True


@dataclass(frozen=True)
class And:
    items: tuple[Selector, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Selector, ...]


@dataclass(frozen=True)
class Not:
    item: Selector


@dataclass(frozen=True)
class Everything:
    """Every device of the tenant (or of the job's product)."""


Selector = Union[Match, AnyOf, Range, And, Or, Not, Everything]  # noqa: UP007


def to_json(sel: Selector) -> dict[str, Any]:
    match sel:
        case Match(field, value, prefix):
            return {"match": [field, value, prefix]}
        case AnyOf(field, values):
            return {"any": [field, list(values)]}
        case Range(field, low, high, il, ih):
            return {"range": [field, low, high, il, ih]}
        case And(items):
            return {"and": [to_json(i) for i in items]}
        case Or(items):
            return {"or": [to_json(i) for i in items]}
        case Not(item):
            return {"not": to_json(item)}
        case Everything():
            return {"all": True}
    raise TypeError(sel)


def from_json(data: dict[str, Any]) -> Selector:
    ((kind, arg),) = data.items()
    if kind == "match":
        return Match(arg[0], arg[1], bool(arg[2]))
    if kind == "any":
        return AnyOf(arg[0], tuple(arg[1]))
    if kind == "range":
        return Range(*arg)
    if kind == "and":
        return And(tuple(from_json(i) for i in arg))
    if kind == "or":
        return Or(tuple(from_json(i) for i in arg))
    if kind == "not":
        return Not(from_json(arg))
    if kind == "all":
        return Everything()
    raise InvalidRequest(f"unknown selector {kind!r}")
