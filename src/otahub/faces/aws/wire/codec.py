"""Requests to input dicts and output dicts to responses, as each operation's
shapes say; and validation of every constraint the model states."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import botocore.model

from otahub.faces.aws.wire.errors import AwsError
from otahub.faces.aws.wire.javaregex import compile_java


def _invalid(service: str, message: str) -> AwsError:
    code = "ValidationException" if service == "signer" else "InvalidRequestException"
    return AwsError(code, message)


# -- parsing ------------------------------------------------------------------------


def _scalar(shape: botocore.model.Shape, text: str, name: str, service: str) -> Any:
    t = shape.type_name
    try:
        if t in ("integer", "long"):
            return int(text)
        if t in ("float", "double"):
            return float(text)
        if t == "boolean":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            return text.lower() == "true"
        if t == "timestamp":
            return _timestamp(text)
    except ValueError:
        raise _invalid(service, f"{name}: {text!r} is not a valid {t}") from None
    return text


def _timestamp(value: Any) -> datetime:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    text = str(value)
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _from_json(shape: botocore.model.Shape, value: Any) -> Any:
    t = shape.type_name
    if value is None:
        return None
    if t == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: _from_json(members[k], v) if k in members else v for k, v in value.items()}
    if t == "list" and isinstance(value, list):
        return [_from_json(shape.member, v) for v in value]
    if t == "map" and isinstance(value, dict):
        return {k: _from_json(shape.value, v) for k, v in value.items()}
    if t == "blob" and isinstance(value, str):
        return base64.b64decode(value)
    if t == "timestamp":
        return _timestamp(value)
    return value


def parse_input(
    service: str,
    op: botocore.model.OperationModel,
    labels: Mapping[str, str],
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
) -> dict[str, Any]:
    shape = op.input_shape
    if shape is None:
        return {}
    query = parse_qsl(raw_query, keep_blank_values=True)
    out: dict[str, Any] = {}
    body_members = {}
    for name, member in shape.members.items():
        loc = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if loc == "uri":
            if wire in labels:
                out[name] = _scalar(member, labels[wire], name, service)
        elif loc == "querystring":
            if member.type_name == "list":
                vals = [v for k, v in query if k == wire]
                if vals:
                    out[name] = [_scalar(member.member, v, name, service) for v in vals]
            elif member.type_name == "map":
                out[name] = dict(query)
            else:
                vals = [v for k, v in query if k == wire]
                if vals:
                    out[name] = _scalar(member, vals[-1], name, service)
        elif loc == "header":
            if wire.lower() in headers:
                out[name] = _scalar(member, headers[wire.lower()], name, service)
        else:
            body_members[wire] = (name, member)
    if body_members and body.strip():
        try:
            data = json.loads(body)
        except ValueError:
            raise _invalid(service, "the request body is not JSON") from None
        if not isinstance(data, dict):
            raise _invalid(service, "the request body must be a JSON object")
        for wire, value in data.items():
            if wire in body_members:
                name, member = body_members[wire]
                out[name] = _from_json(member, value)
    return out


# -- validation ---------------------------------------------------------------------


def validate(service: str, shape: botocore.model.Shape | None, value: Any, path: str = "") -> None:
    if shape is None or value is None:
        return
    meta = shape.metadata
    t = shape.type_name
    where = path or shape.name
    if t == "structure":
        if not isinstance(value, dict):
            raise _invalid(service, f"{where} must be an object")
        members = shape.members
        for req in shape.required_members:
            if value.get(req) is None:
                raise _invalid(service, f"{_join(path, req)} is required")
        for k, v in value.items():
            if k in members:
                validate(service, members[k], v, _join(path, k))
        return
    if t == "list":
        if not isinstance(value, list):
            raise _invalid(service, f"{where} must be a list")
        _size(service, meta, len(value), where, "items")
        for i, item in enumerate(value):
            validate(service, shape.member, item, f"{where}[{i}]")
        return
    if t == "map":
        if not isinstance(value, dict):
            raise _invalid(service, f"{where} must be a map")
        _size(service, meta, len(value), where, "entries")
        for k, v in value.items():
            validate(service, shape.key, k, f"{where} key")
            validate(service, shape.value, v, f"{where}.{k}")
        return
    if t == "string":
        if not isinstance(value, str):
            raise _invalid(service, f"{where} must be a string")
        _size(service, meta, len(value), where, "characters")
        enum = meta.get("enum")
        if enum and value not in enum:
            raise _invalid(service, f"{where} must be one of {', '.join(enum)}")
        if "pattern" in meta and not compile_java(meta["pattern"]).fullmatch(value):
            raise _invalid(service, f"{where} {value!r} does not match {meta['pattern']}")
        return
    if t in ("integer", "long", "float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _invalid(service, f"{where} must be a number")
        if "min" in meta and value < meta["min"]:
            raise _invalid(service, f"{where} must be at least {meta['min']}")
        if "max" in meta and value > meta["max"]:
            raise _invalid(service, f"{where} must be at most {meta['max']}")
        return
    if t == "boolean" and not isinstance(value, bool):
        raise _invalid(service, f"{where} must be true or false")
    if t == "blob" and not isinstance(value, bytes | bytearray):
        raise _invalid(service, f"{where} must be base64 data")


def _size(service: str, meta: Mapping[str, Any], n: int, where: str, unit: str) -> None:
    if "min" in meta and n < meta["min"]:
        raise _invalid(service, f"{where} must have at least {meta['min']} {unit}")
    if "max" in meta and n > meta["max"]:
        raise _invalid(service, f"{where} must have at most {meta['max']} {unit}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# -- serialization ------------------------------------------------------------------


def _to_json(shape: botocore.model.Shape, value: Any) -> Any:
    t = shape.type_name
    if t == "structure" and isinstance(value, dict):
        # Only modeled members go out: clients parse by the model.
        members = shape.members
        return {
            k: _to_json(members[k], v) for k, v in value.items() if v is not None and k in members
        }
    if t == "list" and isinstance(value, list):
        return [_to_json(shape.member, v) for v in value]
    if t == "map" and isinstance(value, dict):
        return {k: _to_json(shape.value, v) for k, v in value.items() if v is not None}
    if t == "timestamp" and isinstance(value, datetime):
        return round(value.timestamp(), 3)
    if t == "blob" and isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return value


def serialize_output(
    op: botocore.model.OperationModel, output: Mapping[str, Any]
) -> tuple[int, dict[str, str], bytes]:
    shape = op.output_shape
    status = 200
    headers: dict[str, str] = {}
    body: dict[str, Any] = {}
    if shape is not None:
        for name, member in shape.members.items():
            value = output.get(name)
            if value is None:
                continue
            loc = member.serialization.get("location")
            if loc == "header":
                headers[member.serialization.get("name", name)] = str(value)
            elif loc == "statusCode":
                status = int(value)
            else:
                body[member.serialization.get("name", name)] = _to_json(member, value)
    return status, headers, json.dumps(body, separators=(",", ":")).encode()


def error_status(service: str, code: str) -> int:
    """The HTTP status the model gives an error shape (400 when it is not modeled)."""
    from otahub.faces.aws.wire.model import service_model

    try:
        shape = service_model(service).shape_for(code)
    except Exception:
        return 400
    status = shape.metadata.get("error", {}).get("httpStatusCode")
    return int(status) if status else 400
