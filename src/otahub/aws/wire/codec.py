"""Requests to input dicts and output dicts to responses, as each operation's
shapes say; and validation of every constraint the model states.

The model is read once: each operation's members (where each travels, under which
name) and each shape's checks and output conversion are worked out on first use and
kept, so a request runs plain Python over its values rather than botocore's shape
objects."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import botocore.model

from otahub.aws.wire.errors import AwsError, as_declared
from otahub.aws.wire.javaregex import compile_java
from otahub.domain.limits import (
    INT32_MAX,
    INT32_MIN,
    INT64_MAX,
    INT64_MIN,
    Refused,
    check_float,
    check_text,
    loads_json,
    parse_int,
)


def _invalid(service: str, message: str) -> AwsError:
    code = "ValidationException" if service == "signer" else "InvalidRequestException"
    return AwsError(code, message)


# -- parsing ------------------------------------------------------------------------


def _scalar(shape: botocore.model.Shape, text: str, name: str, service: str) -> Any:
    """A value from the URI, the query string or a header, as its shape says."""
    t = shape.type_name
    try:
        check_text(text, name)
        if t in ("integer", "long"):
            return parse_int(text, name)  # the shape's own range is checked by validate
        if t in ("float", "double"):
            return check_float(float(text), name)
    except Refused as exc:
        raise _invalid(service, str(exc)) from None
    except ValueError:
        raise _invalid(service, f"{name}: {text[:40]!r} is not a valid {t}") from None
    if t == "boolean":
        if text.lower() not in ("true", "false"):
            raise _invalid(service, f"{name}: {text[:40]!r} is not a valid boolean")
        return text.lower() == "true"
    if t == "timestamp":
        return _timestamp(text, name, service)
    return text


def _timestamp(value: Any, name: str, service: str) -> datetime:
    """Epoch seconds or ISO 8601, as an aware UTC datetime; anything a datetime
    cannot hold (NaN, 1e309, year 10000) is the service's invalid-request error."""
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        text = str(value)
        try:
            return datetime.fromtimestamp(float(text), UTC)
        except ValueError:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        raise _invalid(service, f"{name}: {str(value)[:40]!r} is not a valid timestamp") from None


def _blob(value: str, name: str, service: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise _invalid(service, f"{name} is not valid base64") from None


def _from_json(shape: botocore.model.Shape, value: Any, name: str, service: str) -> Any:
    """Blobs and timestamps of a decoded body as Python values; the rest as it is
    (the body's nesting is bounded by `loads_json`, so is this recursion)."""
    t = shape.type_name
    if value is None:
        return None
    if t == "structure" and isinstance(value, dict):
        members = shape.members
        return {
            k: _from_json(members[k], v, k, service) if k in members else v
            for k, v in value.items()
        }
    if t == "list" and isinstance(value, list):
        return [_from_json(shape.member, v, name, service) for v in value]
    if t == "map" and isinstance(value, dict):
        return {k: _from_json(shape.value, v, name, service) for k, v in value.items()}
    if t == "blob" and isinstance(value, str):
        return _blob(value, name, service)
    if t == "timestamp":
        return _timestamp(value, name, service)
    return value


@dataclass(frozen=True)
class _InputMember:
    name: str
    wire: str
    location: str | None  # uri, querystring, header; None: the JSON body
    shape: botocore.model.Shape
    is_list: bool
    is_map: bool
    scalar: botocore.model.Shape  # the shape of one value (a list's item)


@functools.cache
def _input_members(op: botocore.model.OperationModel) -> tuple[_InputMember, ...]:
    shape = op.input_shape
    if shape is None:
        return ()
    found = []
    for name, member in shape.members.items():
        is_list = member.type_name == "list"
        found.append(
            _InputMember(
                name,
                member.serialization.get("name", name),
                member.serialization.get("location"),
                member,
                is_list,
                member.type_name == "map",
                member.member if is_list else member,
            )
        )
    return tuple(found)


def parse_input(
    service: str,
    op: botocore.model.OperationModel,
    labels: Mapping[str, str],
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    """The operation's input from the request; what the model cannot carry is
    refused in a code the operation declares."""
    try:
        return _parse_input(service, op, labels, raw_query, headers, body)
    except AwsError as err:
        raise as_declared(op, err) from None


def _parse_input(
    service: str,
    op: botocore.model.OperationModel,
    labels: Mapping[str, str],
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    members = _input_members(op)
    if not members:
        return {}
    query = parse_qsl(raw_query, keep_blank_values=True) if raw_query else []
    out: dict[str, Any] = {}
    body_members = {}
    for m in members:
        loc, wire, name = m.location, m.wire, m.name
        if loc == "uri":
            if wire in labels:
                out[name] = _scalar(m.scalar, labels[wire], name, service)
        elif loc == "querystring":
            if m.is_list:
                vals = [v for k, v in query if k == wire]
                if vals:
                    out[name] = [_scalar(m.scalar, v, name, service) for v in vals]
            elif m.is_map:
                out[name] = {
                    _scalar(m.shape.key, k, name, service): _scalar(m.shape.value, v, name, service)
                    for k, v in query
                }
            else:
                vals = [v for k, v in query if k == wire]
                if vals:
                    out[name] = _scalar(m.scalar, vals[-1], name, service)
        elif loc == "header":
            if wire.lower() in headers:
                out[name] = _scalar(m.scalar, headers[wire.lower()], name, service)
        else:
            body_members[wire] = (name, m.shape)
    if body_members and body.strip():
        try:
            data = loads_json(body)
        except Refused as exc:
            raise _invalid(service, f"the request body is not acceptable JSON: {exc}") from None
        if not isinstance(data, dict):
            raise _invalid(service, "the request body must be a JSON object")
        for wire, value in data.items():
            if wire in body_members:
                name, member = body_members[wire]
                out[name] = _from_json(member, value, name, service)
    return out


# -- validation ---------------------------------------------------------------------
#
# Each shape becomes a checking function once, per service (the code of a failure
# depends on it): the request path then runs plain Python over the value, not
# botocore's shape objects.

Validator = Callable[[Any, str], None]
_validators: dict[tuple[str, str], Validator] = {}


def validate(service: str, shape: botocore.model.Shape | None, value: Any, path: str = "") -> None:
    """Raise the first constraint of `shape` that `value` breaks, in a code the
    operation whose input `shape` is declares."""
    if shape is None:
        return
    try:
        validator(service, shape)(value, path)
    except AwsError as err:
        op = _operation_of_input(service).get(shape.name)
        raise (err if op is None else as_declared(op, err)) from None


@functools.cache
def _operation_of_input(service: str) -> dict[str, botocore.model.OperationModel]:
    """Each operation by the name of its input shape (one shape per operation)."""
    from otahub.aws.wire.model import service_model

    model = service_model(service)
    ops = (model.operation_model(name) for name in model.operation_names)
    return {op.input_shape.name: op for op in ops if op.input_shape is not None}


def validator(service: str, shape: botocore.model.Shape) -> Validator:
    """The checking function of a shape: raises the service's invalid-request error
    naming the first constraint the value breaks (None passes)."""
    key = (service, shape.name)
    found = _validators.get(key)
    if found is None:
        cell: list[Validator] = []
        _validators[key] = lambda value, path: cell[0](value, path)  # a recursive shape
        found = _compile_validator(service, shape)
        cell.append(found)
        _validators[key] = found
    return found


def _compile_validator(service: str, shape: botocore.model.Shape) -> Validator:
    meta = shape.metadata
    t = shape.type_name
    name = shape.name

    def size(n: int, where: str, unit: str) -> None:
        _size(service, meta, n, where, unit)

    if t == "structure":
        members = {k: validator(service, m) for k, m in shape.members.items()}
        required = list(shape.required_members)

        def check_structure(value: Any, path: str) -> None:
            if value is None:
                return
            if not isinstance(value, dict):
                raise _invalid(service, f"{path or name} must be an object")
            for req in required:
                if value.get(req) is None:
                    raise _invalid(service, f"{_join(path, req)} is required")
            for k, v in value.items():
                check = members.get(k)
                if check is not None:
                    check(v, _join(path, k))

        return check_structure
    if t == "list":
        item = validator(service, shape.member)

        def check_list(value: Any, path: str) -> None:
            if value is None:
                return
            where = path or name
            if not isinstance(value, list):
                raise _invalid(service, f"{where} must be a list")
            size(len(value), where, "items")
            for i, v in enumerate(value):
                if v is None:
                    raise _invalid(service, f"{where}[{i}] must not be null")
                item(v, f"{where}[{i}]")

        return check_list
    if t == "map":
        check_key = validator(service, shape.key)
        check_value = validator(service, shape.value)

        def check_map(value: Any, path: str) -> None:
            if value is None:
                return
            where = path or name
            if not isinstance(value, dict):
                raise _invalid(service, f"{where} must be a map")
            size(len(value), where, "entries")
            for k, v in value.items():
                check_key(k, f"{where} key")
                if v is None:
                    raise _invalid(service, f"{where}.{k} must not be null")
                check_value(v, f"{where}.{k}")

        return check_map
    if t == "string":
        enum = meta.get("enum")
        pattern = compile_java(meta["pattern"]) if "pattern" in meta else None
        sized = "min" in meta or "max" in meta

        def check_string(value: Any, path: str) -> None:
            if value is None:
                return
            where = path or name
            if not isinstance(value, str):
                raise _invalid(service, f"{where} must be a string")
            if sized:
                size(len(value), where, "characters")
            if enum and value not in enum:
                raise _invalid(service, f"{where} must be one of {', '.join(enum)}")
            if pattern is not None and not pattern.fullmatch(value):
                raise _invalid(service, f"{where} {value!r} does not match {meta['pattern']}")

        return check_string
    if t in ("integer", "long", "float", "double"):
        return _number_check(service, t, name, meta.get("min"), meta.get("max"))
    if t == "boolean":

        def check_boolean(value: Any, path: str) -> None:
            if value is not None and not isinstance(value, bool):
                raise _invalid(service, f"{path or name} must be true or false")

        return check_boolean
    if t == "blob":

        def check_blob(value: Any, path: str) -> None:
            if value is not None and not isinstance(value, bytes | bytearray):
                raise _invalid(service, f"{path or name} must be base64 data")

        return check_blob
    return _no_check


def _no_check(value: Any, path: str) -> None:
    return None


# Where the model bounds an integer shape not at all, the type does (Java's int and
# long, as on AWS; the store's columns hold them).
_TYPE_RANGE = {"integer": (INT32_MIN, INT32_MAX), "long": (INT64_MIN, INT64_MAX)}


def _number_check(
    service: str, t: str, name: str, low: float | None, high: float | None
) -> Validator:
    integral = t in _TYPE_RANGE
    type_low, type_high = _TYPE_RANGE.get(t, (None, None))
    low = type_low if low is None else low
    high = type_high if high is None else high

    def check_number(value: Any, path: str) -> None:
        if value is None:
            return
        where = path or name
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(service, f"{where} must be a number")
        if integral and not isinstance(value, int):
            raise _invalid(service, f"{where} must be a whole number")
        if not math.isfinite(value):
            raise _invalid(service, f"{where} must be a finite number")
        if low is not None and value < low:
            raise _invalid(service, f"{where} must be at least {low}")
        if high is not None and value > high:
            raise _invalid(service, f"{where} must be at most {high}")

    return check_number


def _size(service: str, meta: Mapping[str, Any], n: int, where: str, unit: str) -> None:
    if "min" in meta and n < meta["min"]:
        raise _invalid(service, f"{where} must have at least {meta['min']} {unit}")
    if "max" in meta and n > meta["max"]:
        raise _invalid(service, f"{where} must have at most {meta['max']} {unit}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# -- serialization ------------------------------------------------------------------
#
# Likewise each output shape becomes a converting function once; None stands for
# "as it is" (strings, numbers, booleans), which costs no call.

ToJson = Callable[[Any], Any]
_converters: dict[tuple[str, str], ToJson | None] = {}


def converter(service: str, shape: botocore.model.Shape) -> ToJson | None:
    """The function that turns an output value of the shape into JSON data."""
    key = (service, shape.name)
    if key in _converters:
        return _converters[key]
    cell: list[ToJson | None] = []

    def recursive(value: Any) -> Any:
        convert = cell[0]
        return value if convert is None else convert(value)

    _converters[key] = recursive
    found = _compile_converter(service, shape)
    cell.append(found)
    _converters[key] = found
    return found


def _compile_converter(service: str, shape: botocore.model.Shape) -> ToJson | None:
    t = shape.type_name
    if t == "structure":
        members = {k: converter(service, m) for k, m in shape.members.items()}

        def structure(value: Any) -> Any:
            if not isinstance(value, dict):
                return value
            # Only modeled members go out: clients parse by the model.
            out = {}
            for k, v in value.items():
                if v is None or k not in members:
                    continue
                convert = members[k]
                out[k] = v if convert is None else convert(v)
            return out

        return structure
    if t == "list":
        item = converter(service, shape.member)

        def list_(value: Any) -> Any:
            if not isinstance(value, list):
                return value
            return list(value) if item is None else [item(v) for v in value]

        return list_
    if t == "map":
        entry = converter(service, shape.value)

        def map_(value: Any) -> Any:
            if not isinstance(value, dict):
                return value
            return {k: v if entry is None else entry(v) for k, v in value.items() if v is not None}

        return map_
    if t == "timestamp":

        def timestamp(value: Any) -> Any:
            return round(value.timestamp(), 3) if isinstance(value, datetime) else value

        return timestamp
    if t == "blob":

        def blob(value: Any) -> Any:
            if isinstance(value, bytes | bytearray):
                return base64.b64encode(value).decode()
            return value

        return blob
    return None


_COMPACT = json.JSONEncoder(separators=(",", ":"))  # json.dumps's, made once


@dataclass(frozen=True)
class _OutputMember:
    name: str
    wire: str
    location: str | None
    convert: ToJson | None


@functools.cache
def _output_members(op: botocore.model.OperationModel) -> tuple[_OutputMember, ...]:
    shape = op.output_shape
    if shape is None:
        return ()
    return tuple(
        _OutputMember(
            name,
            member.serialization.get("name", name),
            member.serialization.get("location"),
            converter(op.service_model.service_name, member),
        )
        for name, member in shape.members.items()
    )


def serialize_output(
    op: botocore.model.OperationModel, output: Mapping[str, Any]
) -> tuple[int, dict[str, str], bytes]:
    status = 200
    headers: dict[str, str] = {}
    body: dict[str, Any] = {}
    for m in _output_members(op):
        value = output.get(m.name)
        if value is None:
            continue
        if m.location == "header":
            headers[m.wire] = str(value)
        elif m.location == "statusCode":
            status = int(value)
        else:
            body[m.wire] = value if m.convert is None else m.convert(value)
    return status, headers, _COMPACT.encode(body).encode()


def error_status(service: str, code: str) -> int:
    """The HTTP status the model gives an error shape (400 when it is not modeled)."""
    from otahub.aws.wire.model import service_model

    try:
        shape = service_model(service).shape_for(code)
    except Exception:
        return 400
    status = shape.metadata.get("error", {}).get("httpStatusCode")
    return int(status) if status else 400
