"""What otahub accepts from outside, whatever the protocol.

Every face and device topic decodes untrusted bytes through these checks, so that
nothing the store cannot hold (NUL, lone surrogates, integers past 64 bits) and
nothing the engine cannot compute (NaN, infinities) gets past the wire, and no
nesting deep enough to exhaust the stack is ever walked by a recursive function.
Each caller turns `Refused` into its own protocol's error shape."""

from __future__ import annotations

import json
import math
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

# Deeper than any document or request a real client sends, shallow enough that a
# recursive validator or serializer walking it stays far from the recursion limit.
MAX_JSON_DEPTH = 64


class Refused(ValueError):
    """The input breaks one of these limits; `str(exc)` says which, safe to show."""


def check_text(value: str, where: str = "value") -> str:
    """A string the store can hold: no NUL and no lone surrogate (neither PostgreSQL's
    text nor UTF-8 can carry them)."""
    if "\x00" in value:
        raise Refused(f"{where} contains a NUL character")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise Refused(f"{where} is not valid Unicode text") from None
    return value


def check_int(value: int, where: str = "value", low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    if not low <= value <= high:
        raise Refused(f"{where} is out of range ({low} to {high})")
    return value


def check_float(value: float, where: str = "value") -> float:
    if not math.isfinite(value):
        raise Refused(f"{where} must be a finite number")
    return value


def parse_int(text: str, where: str = "value", low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    """An integer written in decimal, within [low, high]; `Refused` otherwise."""
    stripped = text.strip()
    # Python's int() accepts underscores and Unicode digits; a wire integer is ASCII.
    body = stripped[1:] if stripped[:1] in "+-" else stripped
    if not body.isascii() or not body.isdigit() or len(body) > 25:
        raise Refused(f"{where}: {text[:40]!r} is not an integer")
    return check_int(int(stripped), where, low, high)


def _refuse_constant(name: str) -> Any:
    raise Refused(f"{name} is not a number JSON allows")


def _json_int(text: str) -> int:
    if len(text) > 20:  # more digits than any 64-bit integer has
        raise Refused("a number is out of the 64-bit range")
    return check_int(int(text), "a number")


def _json_float(text: str) -> float:
    return check_float(float(text), "a number")


_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_int=_json_int, parse_float=_json_float
)


def loads_json(data: bytes | str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON from outside: at most `max_depth` containers deep, every number finite and
    within 64 bits, every string (keys too) text the store can hold. Raises `Refused`
    for all of these and for text that is not JSON (or not UTF-8) at all."""
    if isinstance(data, bytes | bytearray):
        try:
            text = bytes(data).decode()
        except UnicodeDecodeError:
            raise Refused("the JSON is not UTF-8") from None
    else:
        text = data
    try:
        value = _DECODER.decode(text)
    except Refused:
        raise
    except RecursionError:
        raise Refused(f"the JSON is nested more than {max_depth} deep") from None
    except ValueError as exc:
        raise Refused(f"not valid JSON: {exc}") from None
    # The walk costs a pass over the value; most payloads need neither half of it.
    deep = text.count("{") + text.count("[") > max_depth
    escaped = "\\u" in text or "\x00" in text or "\\U" in text
    if deep or escaped:
        _walk(value, max_depth, escaped)
    return value


def _walk(value: Any, max_depth: int, strings: bool) -> None:
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth >= max_depth:
                raise Refused(f"the JSON is nested more than {max_depth} deep")
            for k, v in item.items():
                if strings:
                    check_text(k, "a JSON key")
                stack.append((v, depth + 1))
        elif isinstance(item, list):
            if depth >= max_depth:
                raise Refused(f"the JSON is nested more than {max_depth} deep")
            stack.extend((v, depth + 1) for v in item)
        elif strings and isinstance(item, str):
            check_text(item, "a JSON string")


def json_depth(value: Any) -> int:
    """How many containers deep a decoded value goes (0 for a scalar), without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            depth += 1
            stack.extend((v, depth) for v in item.values())
        elif isinstance(item, list):
            depth += 1
            stack.extend((v, depth) for v in item)
        deepest = max(deepest, depth)
    return deepest
