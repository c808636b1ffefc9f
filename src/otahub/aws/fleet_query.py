"""AWS fleet-indexing query strings (the subset dynamic thing groups use), parsed
into core selectors.

    thingName:sensor-*  AND  attributes.model:X1  AND NOT  thingTypeName:legacy
    attributes.rev:[2 TO 5]   attributes.rev>=3   connectivity.connected:true
    (thingGroupNames:lab OR thingGroupNames:field)

Terms with the same field joined by OR, AND, NOT and parentheses; `*` at the end of
a value matches a prefix. Anything else (shadow, device defender, ...) is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from otahub.domain.errors import InvalidRequest
from otahub.domain.limits import check_float
from otahub.domain.selectors import And, Match, Not, Or, Range, Selector

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) |
        (?P<op>AND\b|OR\b|NOT\b) |
        (?P<term>[A-Za-z][A-Za-z0-9_.]*\s*(?::|>=|<=|>|<)\s*
            (?:[\[{][^\]}]*[\]}]|"[^"]*"|[^\s()]+))
    )""",
    re.VERBOSE,
)
_RANGE = re.compile(r"^([\[{])\s*(\S+)\s+TO\s+(\S+)\s*([\]}])$")
# Parentheses and NOTs nest the parser's recursion: deeper than any real query,
# far from Python's recursion limit.
MAX_NESTING = 32


class InvalidQuery(InvalidRequest):
    """The query is not one otahub can evaluate (AWS: InvalidQueryException)."""


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str


def _tokens(query: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(query):
        if query[pos:].strip() == "":
            break
        m = _TOKEN.match(query, pos)
        if m is None or m.end() == pos:
            raise InvalidQuery(f"cannot parse the query at {query[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append(_Tok(kind, m.group(kind).strip()))
        pos = m.end()
    return out


def parse(query: str) -> Selector:
    tokens = _tokens(query)
    if not tokens:
        raise InvalidQuery("the query is empty")
    parser = _Parser(tokens)
    sel = parser.expr()
    if parser.pos != len(tokens):
        raise InvalidQuery(f"unexpected {tokens[parser.pos].text!r} in the query")
    return sel


class _Parser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def _peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def expr(self) -> Selector:
        items = [self.conj()]
        while (t := self._peek()) is not None and t.kind == "op" and t.text == "OR":
            self.pos += 1
            items.append(self.conj())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conj(self) -> Selector:
        items = [self.unary()]
        while (t := self._peek()) is not None and (
            (t.kind == "op" and t.text in ("AND", "NOT")) or t.kind in ("term", "lparen")
        ):
            if t.kind == "op" and t.text == "AND":
                self.pos += 1
            items.append(self.unary())
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self) -> Selector:
        t = self._peek()
        if t is None:
            raise InvalidQuery("the query ends too early")
        if t.kind == "op" and t.text == "NOT":
            self.pos += 1
            return Not(self._nested(self.unary))
        if t.kind == "lparen":
            self.pos += 1
            inner = self._nested(self.expr)
            close = self._peek()
            if close is None or close.kind != "rparen":
                raise InvalidQuery("a parenthesis is not closed")
            self.pos += 1
            return inner
        if t.kind == "term":
            self.pos += 1
            return _term(t.text)
        raise InvalidQuery(f"unexpected {t.text!r} in the query")

    def _nested(self, parse: Callable[[], Selector]) -> Selector:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise InvalidQuery(f"the query nests more than {MAX_NESTING} deep")
        try:
            return parse()
        finally:
            self.depth -= 1


def _field(name: str) -> str:
    if name == "thingName":
        return "name"
    if name == "thingTypeName":
        return "type"
    if name == "thingGroupNames":
        return "group"
    if name == "connectivity.connected":
        return "connected"
    if name.startswith("attributes.") and len(name) > len("attributes."):
        return "attr:" + name[len("attributes.") :]
    raise InvalidQuery(f"otahub cannot query the field {name!r}")


def _number(text: str) -> float | None:
    if text == "*":
        return None
    try:
        return check_float(float(text))
    except ValueError as exc:  # Refused is one: NaN and infinities are no bound
        raise InvalidQuery(f"{text[:40]!r} is not a number") from exc


def _term(text: str) -> Selector:
    m = re.match(r"^([A-Za-z][A-Za-z0-9_.]*)\s*(:|>=|<=|>|<)\s*(.+)$", text)
    if m is None:
        raise InvalidQuery(f"cannot parse {text!r}")
    name, op, value = m.groups()
    field = _field(name)
    if op != ":":
        if not field.startswith("attr:"):
            raise InvalidQuery(f"{name} cannot be compared with {op}")
        bound = _number(value)
        return Range(
            field,
            low=bound if op.startswith(">") else None,
            high=bound if op.startswith("<") else None,
            include_low=op == ">=",
            include_high=op == "<=",
        )
    r = _RANGE.match(value)
    if r is not None:
        if not field.startswith("attr:"):
            raise InvalidQuery(f"{name} takes no range")
        return Range(
            field,
            _number(r.group(2)),
            _number(r.group(3)),
            include_low=r.group(1) == "[",
            include_high=r.group(4) == "]",
        )
    if value.startswith('"') and value.endswith('"') and len(value) >= 2:
        return Match(field, value[1:-1])
    if field == "connected" and value.lower() not in ("true", "false"):
        raise InvalidQuery("connectivity.connected is true or false")
    if value.endswith("*"):
        return Match(field, value[:-1], prefix=True)
    return Match(field, value)
