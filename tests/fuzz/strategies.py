"""Hypothesis strategies of the fuzz suite: valid values mixed with hostile ones, for
botocore's shapes (AWS), the Alibaba parameter table and the device topics; and the
oracle that says which generated inputs a server must refuse.

Values stay Python objects until they are written out, so that one generated input
can go as JSON, a query string, a header or CBOR. `Raw` is JSON text written
verbatim: what `json.dumps` cannot produce (1e309, a 5,000-deep array)."""

from __future__ import annotations

import base64
import functools
import json
import math
import urllib.parse
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import botocore.model
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from otahub.domain.limits import INT64_MAX, INT64_MIN, MAX_JSON_DEPTH, Refused, check_text


class Raw(str):
    """JSON text written as it is."""


DEEP = 5_000  # containers deep: far past any limit, and past Python's recursion limit
NON_FINITE = [Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e309"), Raw("-1e309")]
HUGE_INTS = [2**63, -(2**63) - 1, 2**64, 10**30, -(10**40)]
HOSTILE_TEXT = [
    "\x00",
    "fz\x00thing",
    "\ud800",
    "fz\udfffx",
    "A" * 5_000,
    "",
    " ",
    "%00",
    "../../etc/passwd",
    "\u202e\ufeff",
    "\U0001f600" * 3,
    "\\\"'<>&;",
    "a" * 70,
]
# Names and ids of what the world fixture creates; `@NAME@` is filled in at send time.
PLACEHOLDERS = ("@ACCOUNT@", "@PK@", "@FID@", "@JOBID@", "@IOTID@", "@THINGARN@", "@GROUPARN@")


def deep_array(depth: int = DEEP) -> Raw:
    return Raw("[" * depth + "]" * depth)


def deep_object(depth: int = DEEP) -> Raw:
    return Raw('{"a":' * depth + "1" + "}" * depth)


HOSTILE_JSON_VALUES: list[Any] = [*NON_FINITE, *HUGE_INTS, deep_array(), deep_object(), None]


# -- writing values out ---------------------------------------------------------------------


def to_json(value: Any) -> str:
    """JSON text of a generated value; `Raw` verbatim; lone surrogates escaped."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, bytes):
        return json.dumps(base64.b64encode(value).decode())
    return json.dumps(value)


def to_text(value: Any) -> str:
    """A generated value as one query, label or header value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Raw):
        return str(value)[:DEEP]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity"
    if isinstance(value, dict | list):
        return to_json(value)
    if value is None:
        return ""
    return str(value)


def fill(value: Any, names: Mapping[str, str]) -> Any:
    """The value with every `@NAME@` placeholder replaced by the world's name for it."""
    if isinstance(value, Raw):
        return value
    if isinstance(value, str):
        for key, name in names.items():
            if key in value:
                value = value.replace(key, name)
        return value
    if isinstance(value, dict):
        return {fill(k, names): fill(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, names) for v in value]
    return value


# -- drawing examples -----------------------------------------------------------------------


def examples(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """`count` examples of a strategy, the same ones on every run (derandomized, no
    database, no shrinking: the suite reports inputs, it does not minimise them)."""
    found: list[Any] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found[:count]


# -- scalars ---------------------------------------------------------------------------------

SAFE_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-_"


def plain_text(low: int = 1, high: int = 20) -> st.SearchStrategy[str]:
    return st.text(SAFE_ALPHABET, min_size=max(low, 1), max_size=max(min(high, 20), low, 1))


def hostile_text() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(HOSTILE_TEXT),
        st.text(max_size=12),  # any code point, lone surrogates included
        st.sampled_from([*NON_FINITE, 12, True, None, [], {}]),  # not text at all
    )


def hostile_int() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from([*HUGE_INTS, *NON_FINITE, -1, 0, 2**31, 2**53 + 1]),
        st.sampled_from(["5", "1.5", "0x10", "", True, None, 1.5, [1]]),
    )


def text_is_bad(value: str) -> bool:
    try:
        check_text(value)
    except Refused:
        return True
    return False


# -- AWS: botocore shapes ------------------------------------------------------------------------

KNOWN_NAMES = [
    "fz-thing",
    "fz-job",
    "fz-stream",
    "fz-group",
    "fzprofile",
    "fz-bucket",
    "fw.bin",
    "@THINGARN@",
    "@GROUPARN@",
]
JSON_TEXT_MEMBERS = frozenset({"document"})  # strings that carry a JSON document


def aws_value(shape: botocore.model.Shape, name: str, hostile: bool, depth: int = 0) -> Any:
    """A strategy for a value of `shape`; with `hostile`, mixed with values its model
    or otahub's limits forbid."""
    valid = _valid(shape, name, hostile, depth)
    if not hostile:
        return valid
    return st.one_of(valid, _hostile(shape, name))


def _valid(shape: botocore.model.Shape, name: str, hostile: bool, depth: int) -> Any:
    t = shape.type_name
    meta = shape.metadata
    if t == "structure":
        members = shape.members
        required = set(shape.required_members)
        if depth >= 4:  # recursive shapes: only what must be there
            members = {k: v for k, v in members.items() if k in required}
        return st.fixed_dictionaries(
            {k: aws_value(v, k, hostile, depth + 1) for k, v in members.items() if k in required},
            optional={
                k: aws_value(v, k, hostile, depth + 1)
                for k, v in members.items()
                if k not in required
            },
        )
    if t == "list":
        return st.lists(aws_value(shape.member, name, hostile, depth + 1), max_size=3)
    if t == "map":
        return st.dictionaries(
            _valid(shape.key, name, False, depth + 1),
            aws_value(shape.value, name, hostile, depth + 1),
            max_size=3,
        )
    if t == "string":
        if shape.enum:
            return st.sampled_from(list(shape.enum))
        if name in JSON_TEXT_MEMBERS:
            return st.sampled_from(['{"operation":"update"}', '{"a":[1,2,{"b":null}]}'])
        return st.one_of(
            st.sampled_from(KNOWN_NAMES), plain_text(meta.get("min", 1), meta.get("max", 20))
        )
    if t in ("integer", "long"):
        low = int(meta.get("min", 0))
        high = int(meta.get("max", max(low, 1000)))
        return st.integers(low, high)
    if t in ("float", "double"):
        low = float(meta.get("min", 0.0))
        high = float(meta.get("max", max(low, 1000.0)))
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if t == "boolean":
        return st.booleans()
    if t == "timestamp":
        return st.integers(1_700_000_000, 1_900_000_000)
    if t == "blob":
        return st.binary(max_size=24)
    return st.none()


def _hostile(shape: botocore.model.Shape, name: str) -> Any:
    t = shape.type_name
    if t in ("structure", "map"):
        return st.sampled_from(["x", [], 5, deep_object(), deep_array(), {"\x00": 1}])
    if t == "list":
        return st.sampled_from([[None], "x", {}, deep_array(), [deep_array()]])
    if t == "string":
        if name in JSON_TEXT_MEMBERS:
            return st.sampled_from(
                [
                    "[" * DEEP + "]" * DEEP,
                    '{"a":' * 100 + "1" + "}" * 100,
                    '{"n":NaN,"i":1e309}',
                    '{"big":' + "9" * 40 + "}",
                    "{",
                    '{"nul":"\\u0000"}',
                    "x" * 40_000,
                ]
            )
        return hostile_text()
    if t in ("integer", "long", "float", "double"):
        return hostile_int()
    if t == "boolean":
        return st.sampled_from(["true", 1, None, Raw("NaN")])
    if t == "timestamp":
        return st.sampled_from(
            ["9999-99-99", "garbage", 10**20, Raw("1e309"), Raw("NaN"), -(10**18)]
        )
    if t == "blob":
        return st.sampled_from(["!!!notbase64", "====", "\x00", "A" * 10_001])
    return st.none()


def aws_input(op: botocore.model.OperationModel) -> st.SearchStrategy[dict[str, Any]]:
    """Inputs of one operation: a third all-valid, the rest mixed with hostile values."""
    shape = op.input_shape
    if shape is None:
        return st.just({})
    return st.one_of(
        _valid(shape, "", False, 0), _valid(shape, "", True, 0), _valid(shape, "", True, 0)
    )


# -- AWS: one fault at a time, at every member of an input ---------------------------------

# Valid values for members whose name says what they refer to: the world's resources.
NAME_HINTS = {
    "thingName": "fz-thing",
    "jobId": "fz-job",
    "streamId": "fz-stream",
    "thingGroupName": "fz-group",
    "profileName": "fzprofile",
    "bucket": "fz-bucket",
    "key": "fw.bin",
    "roleArn": "arn:aws:iam::@ACCOUNT@:role/fz",
    "targets": "@THINGARN@",
    "resourceArn": "@THINGARN@",
    "thingGroupArn": "@GROUPARN@",
    "thingArn": "@THINGARN@",
    "platformId": "AmazonFreeRTOS-Default",
    "document": '{"operation":"update"}',
    "otaUpdateId": "fz-ota",
    "Bucket": "fz-bucket",
    "Key": "fw.bin",
    "PartNumber": "1",
}
NEW = "@NEW@"  # a name no resource has yet: filled in fresh for each request
JOB_ARN = "arn:aws:iot:us-east-1:@ACCOUNT@:job/fz-job"
S3_FILE = {"bucket": "fz-bucket", "key": "fw.bin"}
# What an operation's smallest valid input needs beyond its model's required members
# (rules the handlers check), so that each fault after it reaches the handler.
BASE_EXTRAS: dict[str, dict[str, Any]] = {
    "AddThingToThingGroup": {"thingGroupName": "fz-group", "thingName": "fz-thing"},
    "RemoveThingFromThingGroup": {"thingGroupName": "fz-group", "thingName": "fz-thing"},
    "CreateDynamicThingGroup": {"queryString": "thingName:fz*"},
    "CreateJob": {"document": '{"operation":"update"}'},
    "CreateOTAUpdate": {"files": [{"fileName": "fw.bin", "fileLocation": {"s3Location": S3_FILE}}]},
    "CreateStream": {"files": [{"fileId": 0, "s3Location": S3_FILE}]},
    "TagResource": {"resourceArn": JOB_ARN, "tags": [{"Key": "k", "Value": "v"}]},
    "UntagResource": {"resourceArn": JOB_ARN},
    "ListTagsForResource": {"resourceArn": JOB_ARN},
    "UpdateJobExecution": {"status": "IN_PROGRESS"},
    "StartSigningJob": {
        "source": {"s3": {"bucketName": "fz-bucket", "key": "fw.bin", "version": "null"}},
        "destination": {"s3": {"bucketName": "fz-bucket"}},
    },
}
Path = tuple[str | int, ...]


def minimal(shape: botocore.model.Shape, name: str = "", fresh_label: str | None = None) -> Any:
    """The smallest valid value of a shape: its required members, each the simplest value
    its model allows (the world's names where the member's name says what it refers to)."""
    t = shape.type_name
    if t == "structure":
        return {
            k: NEW if k == fresh_label else minimal(shape.members[k], k)
            for k in shape.required_members
        }
    if t == "list":
        return [minimal(shape.member, name)]
    if t == "map":
        return {}
    if t == "string":
        if shape.enum:
            return shape.enum[0]
        low = shape.metadata.get("min", 1)
        return NAME_HINTS.get(name, "fz" + "x" * max(0, low - 2))
    if t in ("integer", "long"):
        return int(shape.metadata.get("min", 1))
    if t in ("float", "double"):
        return float(shape.metadata.get("min", 1.0))
    if t == "boolean":
        return True
    if t == "timestamp":
        return 1_800_000_000
    if t == "blob":
        return b"fz"
    return None


def fresh_label(op: botocore.model.OperationModel) -> str | None:
    """The uri label a Create/Put/Start operation names its new resource by."""
    if not op.name.startswith(("Create", "Put", "Start", "Register")) or op.input_shape is None:
        return None
    for name, member in op.input_shape.members.items():
        if member.serialization.get("location") == "uri":
            return name
    return None


def leaf_paths(shape: botocore.model.Shape, depth: int = 0) -> list[tuple[Path, Any]]:
    """Every member of an input, nested ones too, with its shape: where a fault can go."""
    if depth > 6:
        return []
    t = shape.type_name
    found: list[tuple[Path, Any]] = []
    if t == "structure":
        for key, member in shape.members.items():
            found.append(((key,), member))
            found += [((key, *p), s) for p, s in leaf_paths(member, depth + 1)]
    elif t == "list":
        found += [((0, *p), s) for p, s in leaf_paths(shape.member, depth + 1)]
    elif t == "map":
        found += [(("k", *p), s) for p, s in leaf_paths(shape.value, depth + 1)]
    return found


def with_fault(base: Any, root: botocore.model.Shape, path: Path, value: Any) -> Any:
    """A copy of `base` with `value` at `path`, the containers on the way made minimal."""
    if not path:
        return value
    step, rest = path[0], path[1:]
    if root.type_name == "structure":
        out = dict(base) if isinstance(base, dict) else {}
        child = root.members[step]
        out[step] = with_fault(out.get(step, minimal(child, str(step))), child, rest, value)
        return out
    if root.type_name == "list":
        items = list(base) if isinstance(base, list) and base else [minimal(root.member)]
        items[0] = with_fault(items[0], root.member, rest, value)
        return items
    out = dict(base) if isinstance(base, dict) else {}
    out["k"] = with_fault(out.get("k", minimal(root.value)), root.value, rest, value)
    return out


# What each kind of member always gets, whatever else Hypothesis draws for it: the
# values behind issue 18's worst cases (an engine stalled by NaN, 500s on NUL).
ALWAYS: dict[str, list[Any]] = {
    "integer": [Raw("NaN"), Raw("Infinity"), 2**64],
    "long": [Raw("NaN"), Raw("Infinity"), 2**64],
    "float": [Raw("NaN"), Raw("1e309"), 2**64],
    "double": [Raw("NaN"), Raw("1e309"), 2**64],
    "string": ["fz\x00thing"],
}


def hostile_values(shape: botocore.model.Shape, name: str, count: int) -> list[Any]:
    """The member's ALWAYS values and `count` more drawn by Hypothesis (kept per kind of
    shape, rotated by the member's name so that members of one kind get different ones)."""
    always = [] if name in JSON_TEXT_MEMBERS else ALWAYS.get(shape.type_name, [])
    pool = _hostile_pool((shape.type_name, name in JSON_TEXT_MEMBERS))
    start = zlib.crc32(name.encode()) % len(pool) if pool else 0
    drawn = [pool[(start + i) % len(pool)] for i in range(min(count, len(pool)))]
    return always + [v for v in drawn if not any(v is a or v == a for a in always)]


@functools.cache
def _hostile_pool(kind: tuple[str, bool]) -> tuple[Any, ...]:
    type_name, is_document = kind
    shape = botocore.model.Shape("Fz", {"type": type_name})
    found = examples(_hostile(shape, "document" if is_document else ""), 24)
    unique: list[Any] = []
    for value in found:
        if not any(type(value) is type(u) and value == u for u in unique):
            unique.append(value)
    return tuple(unique)


def aws_base(op: botocore.model.OperationModel, fresh: str | None) -> dict[str, Any]:
    """The operation's smallest valid input (`fresh`: the member naming a new resource)."""
    if op.input_shape is None:
        return {}
    return {**minimal(op.input_shape, fresh_label=fresh), **BASE_EXTRAS.get(op.name, {})}


@functools.cache
def random_inputs(op: botocore.model.OperationModel, count: int) -> tuple[Any, ...]:
    return tuple(examples(aws_input(op), count))


def aws_inputs(
    op: botocore.model.OperationModel, faults: int, count: int, fresh: str | None
) -> list[Any]:
    """The smallest valid input (`fresh`: the member naming a resource to create); then
    `faults` hostile values at each member in turn, the rest valid, so that each fault
    reaches as deep as it can; then `count` of Hypothesis's own mixes."""
    shape = op.input_shape
    if shape is None:
        return [{}]
    base = aws_base(op, fresh)
    faulty = [
        with_fault(base, shape, path, value)
        for path, member in leaf_paths(shape)
        for value in hostile_values(member, str(path[-1]), faults)
    ]
    return [base, *faulty, *random_inputs(op, count)]


def aws_violation(shape: botocore.model.Shape | None, value: Any) -> str | None:
    """Why the model (or otahub's limits) forbids `value`, if it certainly does."""
    if shape is None:
        return None
    found = next(_violations(shape, value, shape.name, top=True), None)
    return found


def _violations(
    shape: botocore.model.Shape, value: Any, where: str, top: bool = False
) -> Iterator[str]:
    t = shape.type_name
    meta = shape.metadata
    if value is None:
        return
    if isinstance(value, Raw):
        yield f"{where}: {str(value)[:12]} is not a value JSON allows"
        return
    if t == "structure":
        if not isinstance(value, dict):
            yield f"{where}: not an object"
            return
        for req in shape.required_members:
            if req not in value:
                yield f"{where}: {req} missing"
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                continue
            location = member.serialization.get("location")
            if top and key == shape.serialization.get("payload") and member.type_name == "blob":
                continue  # a raw body: any bytes
            if top and location in ("uri", "querystring", "header"):
                items = item if member.type_name == "list" and isinstance(item, list) else [item]
                scalar = member.member if member.type_name == "list" else member
                for one in items:
                    sent = wire_text(location, one)
                    yield from _text_violations(scalar, sent, f"{where}.{key}")
            else:
                yield from _violations(member, item, f"{where}.{key}")
        return
    if t == "list":
        if not isinstance(value, list):
            yield f"{where}: not a list"
            return
        for item in value:
            yield from _violations(shape.member, item, f"{where}[]")
        return
    if t == "map":
        if not isinstance(value, dict):
            yield f"{where}: not a map"
            return
        for key, item in value.items():
            if isinstance(key, str) and text_is_bad(key):
                yield f"{where}: key {key[:12]!r} has NUL or a lone surrogate"
            yield from _violations(shape.value, item, f"{where}.{key}")
        return
    if t == "string":
        if not isinstance(value, str):
            yield f"{where}: not a string"
        elif text_is_bad(value):
            yield f"{where}: NUL or lone surrogate"
        elif shape.enum and value not in shape.enum:
            yield f"{where}: {value[:20]!r} is not one of the enum"
        elif "max" in meta and len(value) > meta["max"]:
            yield f"{where}: longer than {meta['max']}"
        elif "min" in meta and len(value) < meta["min"]:
            yield f"{where}: shorter than {meta['min']}"
        elif shape.name and value[:1] in "[{" and _json_depth_of(value) > MAX_JSON_DEPTH:
            yield f"{where}: a JSON document nested past {MAX_JSON_DEPTH}"
        return
    if t in ("integer", "long", "float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            yield f"{where}: not a number"
        elif isinstance(value, float) and not math.isfinite(value):
            yield f"{where}: not finite"
        elif not INT64_MIN <= value <= INT64_MAX:
            yield f"{where}: beyond 64 bits"
        elif "min" in meta and value < meta["min"]:
            yield f"{where}: below {meta['min']}"
        elif "max" in meta and value > meta["max"]:
            yield f"{where}: above {meta['max']}"
        elif t in ("integer", "long") and isinstance(value, float):
            yield f"{where}: not an integer"
        return
    if t == "boolean" and not isinstance(value, bool):
        yield f"{where}: not a boolean"
    if t == "blob" and isinstance(value, str):
        try:
            base64.b64decode(value, validate=True)
        except ValueError:
            yield f"{where}: not base64"


def _text_violations(shape: botocore.model.Shape, text: str, where: str) -> Iterator[str]:
    """A member that travels as text (uri, querystring, header), judged as sent."""
    t = shape.type_name
    if text_is_bad(text):
        yield f"{where}: NUL or lone surrogate"
    elif t in ("integer", "long"):
        body = text[1:] if text[:1] == "-" else text
        if not (body.isascii() and body.isdigit()):
            yield f"{where}: {text[:20]!r} is not an integer"
        else:
            yield from _violations(shape, int(text), where)
    elif t == "boolean" and text not in ("true", "false"):
        yield f"{where}: {text[:20]!r} is not a boolean"
    elif t == "string":
        yield from _violations(shape, text, where)


def _json_depth_of(text: str) -> int:
    depth = deepest = 0
    for ch in text[: 4 * MAX_JSON_DEPTH + 8]:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


# -- AWS: the request on the wire (restJson; restXml members in uri, query, headers) ----------


@dataclass(frozen=True)
class WireRequest:
    method: str
    target: str
    headers: dict[str, str | bytes]
    body: bytes


def quote_label(value: Any, greedy: bool) -> str:
    text = to_text(value).encode("utf-8", "surrogatepass")
    return urllib.parse.quote(text, safe="/~" if greedy else "~")


def rest_request(
    op: botocore.model.OperationModel,
    params: Mapping[str, Any],
    payload: Callable[[str, Any], bytes] | None = None,
) -> WireRequest:
    """The raw request for `params`, where each member travels as its model says; what
    boto3 would refuse to send (wrong types, NUL, non-finite numbers) goes as it is."""
    uri = op.http["requestUri"]
    path, _, static_query = uri.partition("?")
    query: list[tuple[str, str]] = []
    if static_query:
        query += [(k, v) for k, _, v in (p.partition("=") for p in static_query.split("&"))]
    headers: dict[str, str | bytes] = {}
    body: dict[str, Any] = {}
    shape = op.input_shape
    members = shape.members if shape is not None else {}
    payload_name = shape.serialization.get("payload") if shape is not None else None
    raw_body: bytes | None = None
    for name, value in params.items():
        member = members.get(name)
        if member is None:
            continue
        wire = member.serialization.get("name", name)
        location = member.serialization.get("location")
        if location == "uri":
            for token, greedy in ((f"{{{wire}+}}", True), (f"{{{wire}}}", False)):
                path = path.replace(token, quote_label(value, greedy))
        elif location == "querystring":
            if member.type_name == "map" and isinstance(value, dict):
                query += [(to_text(k), to_text(v)) for k, v in value.items()]
            elif member.type_name == "list" and isinstance(value, list):
                query += [(wire, to_text(v)) for v in value]
            else:
                query.append((wire, to_text(value)))
        elif location == "header":
            if member.type_name != "map":
                headers[wire] = header_value(value)
        elif name == payload_name:
            raw_body = payload(name, value) if payload else _payload_bytes(member, value)
        else:
            body[wire] = value
    path = _unfilled_labels(path)
    target = path + ("?" + encode_query(query) if query else "")
    json_body = body or (shape is not None and op.http["method"] in ("POST", "PUT"))
    if raw_body is None and json_body and op.metadata["protocol"] == "rest-json":
        raw_body = to_json(body).encode("utf-8", "surrogatepass")
        headers["content-type"] = "application/json"
    return WireRequest(op.http["method"], target, headers, raw_body or b"")


def _payload_bytes(member: botocore.model.Shape, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if member.type_name == "structure":
        return to_json(value).encode("utf-8", "surrogatepass")
    return to_text(value).encode("utf-8", "surrogatepass")


def _unfilled_labels(path: str) -> str:
    """A label the input left out goes empty, as a client that forgot it would send."""
    out, depth = [], 0
    for ch in path:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def encode_query(pairs: list[tuple[str, str]]) -> str:
    def enc(text: str) -> str:
        return urllib.parse.quote(text.encode("utf-8", "surrogatepass"), safe="-_.~")

    return "&".join(f"{enc(k)}={enc(v)}" if v or k else "" for k, v in pairs)


def header_value(value: Any) -> bytes:
    return wire_text("header", value).encode("utf-8", "surrogatepass")


def wire_text(location: str, value: Any) -> str:
    """A member's value as its location carries it. Header values carry no CR, LF or
    NUL on any real wire (those become `?`) and no more than 8,000 characters."""
    text = to_text(value)
    if location != "header":
        return text
    for ch in "\r\n\x00":
        text = text.replace(ch, "?")
    return text[:8_000]


def hostile_bodies() -> list[tuple[str, bytes]]:
    """Whole bodies that no JSON operation may accept."""
    return [
        ("5,000-deep array", deep_array().encode()),
        ("5,000-deep object", deep_object().encode()),
        ("truncated JSON", b'{"a": [1, 2'),
        ("not UTF-8", b'{"a": "\xff\xfe"}'),
    ]


# -- S3 ----------------------------------------------------------------------------------------

BUCKET_NAMES = ["fz-bucket", "fz-new-bucket", "fz-other"]
HOSTILE_BUCKETS = ["192.168.1.1", "A..B", "ab", "b" * 64, "fz\x00b", "-start", "fz_bucket", "%00"]
OBJECT_KEYS = ["fw.bin", "dir/fw.bin", "new.bin"]
HOSTILE_KEYS = ["\x00", "a\x00b", "\ud800", "k" * 1025, "../x", "%00", " ", "\U0001f600"]
XML_BODIES = [
    (None, b""),
    (None, b"<VersioningConfiguration><Status>Enabled</Status></VersioningConfiguration>"),
    ("truncated XML", b"<VersioningConfiguration><Status>Ena"),
    ("truncated XML", b"<CompleteMultipartUpload><Part><PartNumber>1</Part>"),
    ("not XML", b"\xff\xfe\x00garbage"),
    ("entities", b'<!DOCTYPE a [<!ENTITY x "xxxxxxxxxx">]><a>&x;&x;&x;</a>'),
    ("deep XML", b"<a>" * 3000 + b"</a>" * 3000),
    (
        None,
        b"<CompleteMultipartUpload><Part><PartNumber>99999999999999999999</PartNumber>"
        b"<ETag>x</ETag></Part></CompleteMultipartUpload>",
    ),
]


def to_xml(root: str, value: Any) -> bytes:
    """A structure payload as S3 XML (text escaped, nothing else filtered)."""

    def element(name: str, item: Any) -> str:
        if isinstance(item, dict):
            inner = "".join(element(str(k), v) for k, v in item.items())
        elif isinstance(item, list):
            return "".join(element(name, v) for v in item)
        else:
            inner = xml_escape(to_text(item))
        return f"<{name}>{inner}</{name}>"

    return element(root, value).encode("utf-8", "surrogatepass")


def xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def s3_overrides(op_name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Bucket and key names for an S3 input: mostly real ones, some hostile."""
    buckets = st.one_of(st.sampled_from(BUCKET_NAMES), st.sampled_from(HOSTILE_BUCKETS))
    keys = st.one_of(st.sampled_from(OBJECT_KEYS), st.sampled_from(HOSTILE_KEYS))
    return st.fixed_dictionaries({"Bucket": buckets, "Key": keys})


def s3_violation(op: botocore.model.OperationModel, params: Mapping[str, Any]) -> str | None:
    """What the S3 endpoint must refuse whatever it serves: text the store cannot hold in
    any member as sent, integer query values that are not 64-bit integers, bucket names
    S3 does not allow. (Headers it does not serve, it may ignore, as it does.)"""
    shape = op.input_shape
    if shape is None:
        return None
    for name, value in params.items():
        member = shape.members.get(name)
        location = member.serialization.get("location") if member is not None else None
        if member is None or location is None:
            continue
        items = value if member.type_name == "list" and isinstance(value, list) else [value]
        scalar = member.member if member.type_name == "list" else member
        for item in items:
            sent = wire_text(location, item)
            if text_is_bad(sent):
                return f"{name}: NUL or lone surrogate"
            if location == "querystring" and scalar.type_name in ("integer", "long"):
                body = sent[1:] if sent[:1] == "-" else sent
                if not (body.isascii() and body.isdigit()) or not INT64_MIN <= int(sent) <= (
                    INT64_MAX
                ):
                    return f"{name}={sent[:20]!r} is not a 64-bit integer"
    return s3_bucket_violation(op.name, params.get("Bucket"))


def s3_bucket_violation(op_name: str, bucket: Any) -> str | None:
    if not isinstance(bucket, str):
        return None
    if op_name == "CreateBucket" and bucket in HOSTILE_BUCKETS:
        return f"bucket name {bucket[:20]!r} is not one S3 allows"
    if text_is_bad(bucket):
        return "bucket name with NUL or a lone surrogate"
    return None


# -- Alibaba: the parameter table and its rules ---------------------------------------------------

ALIYUN_KNOWN = ["@PK@", "@FID@", "@JOBID@", "@IOTID@", "fzdevice01", "fzdevice02", "default"]
HOSTILE_INT_TEXT = [
    "9223372036854775808",
    "-9223372036854775809",
    "1" + "0" * 40,
    "1e309",
    "NaN",
    "Infinity",
    "1.5",
    "-1",
    "0x10",
    "1_000",
    "\uff11",  # a full-width digit: int() takes it, no wire integer is one
    "",
    "\x00",
]


def aliyun_value(rule: Any, hostile: bool) -> st.SearchStrategy[str]:
    """One parameter's text as its rule types it; with `hostile`, mixed with bad text."""
    if rule.type == "int":
        if rule.choices:
            valid: st.SearchStrategy[str] = st.sampled_from(sorted(str(c) for c in rule.choices))
        else:
            low = rule.min if rule.min is not None else 0
            high = rule.max if rule.max is not None else max(low, 1000)
            valid = st.integers(low, high).map(str)
    elif rule.type == "bool":
        valid = st.sampled_from(["true", "false"])
    elif rule.choices:
        valid = st.sampled_from(sorted(str(c) for c in rule.choices))
    else:
        low = rule.min_len or 1
        high = rule.max_len or 20
        valid = st.one_of(st.sampled_from(ALIYUN_KNOWN), plain_text(low, high))
    if not hostile:
        return valid
    bad = HOSTILE_INT_TEXT if rule.type == "int" else [t for t in HOSTILE_TEXT if t]
    return st.one_of(valid, st.sampled_from(bad), st.text(max_size=10))


def aliyun_params(action: Any, rules: Callable[[str, str], Any]) -> st.SearchStrategy[Any]:
    """Flat RPC parameters (`Name`, `Name.1`, `Name.1.Field`) for one action of the table."""

    def params(hostile: bool) -> st.SearchStrategy[dict[str, str]]:
        parts: dict[str, st.SearchStrategy[Any]] = {}
        for name, spec in action.params.items():
            rule = rules(action.name, name)
            if spec.kind == "scalar":
                parts[name] = aliyun_value(rule, hostile)
            elif spec.kind == "repeat":
                parts[name] = st.lists(aliyun_value(rule, hostile), max_size=3)
            else:
                fields = {f: aliyun_value(rules_field(rule, f), hostile) for f in spec.fields}
                parts[name] = st.lists(st.fixed_dictionaries(fields), max_size=2)
        required = {n for n in parts if rules(action.name, n).required}
        return st.fixed_dictionaries(
            {n: s for n, s in parts.items() if n in required},
            optional={n: s for n, s in parts.items() if n not in required},
        ).map(flatten_aliyun)

    return st.one_of(params(False), params(True), params(True))


ALIYUN_HINTS = {
    "ProductKey": "@PK@",
    "FirmwareId": "@FID@",
    "JobId": "@JOBID@",
    "IotId": "@IOTID@",
    "DeviceName": "fzdevice01",
    "TargetDeviceName": "fzdevice02",
    "ModuleName": "default",
    "DestVersion": "3.0.0",
    "SrcVersion": "2.0.0",
    "TaskId": "fztask",
    "GroupId": "fzgroup",
    "FirmwareUrl": "http://otahub.test/oss/missing.bin",
}


def aliyun_minimal(action: Any, rules: Callable[[str, str], Any]) -> dict[str, str]:
    """The action's required parameters, each with the simplest value its rule allows
    (the world's ids where the parameter names one)."""
    flat: dict[str, str] = {}
    for name, spec in action.params.items():
        rule = rules(action.name, name)
        if not rule.required:
            continue
        value = aliyun_simple(name, rule)
        if spec.kind == "scalar":
            flat[name] = value
        elif spec.kind == "repeat":
            flat[f"{name}.1"] = value
        else:
            for f in spec.fields:
                flat[f"{name}.1.{f}"] = aliyun_simple(f, rules_field(rule, f))
    return flat


def aliyun_simple(name: str, rule: Any) -> str:
    if name in ALIYUN_HINTS:
        return ALIYUN_HINTS[name]
    if rule.choices:
        return str(sorted(str(c) for c in rule.choices)[0])
    if rule.type == "int":
        return str(rule.min if rule.min is not None else 1)
    if rule.type == "bool":
        return "true"
    return "fz" + "x" * max(0, (rule.min_len or 1) - 2)


def aliyun_faults(
    action: Any, rules: Callable[[str, str], Any], count: int
) -> list[dict[str, str]]:
    """One hostile value at each parameter in turn (a list's first item, a struct list's
    first item's fields), the required rest valid."""
    base = aliyun_minimal(action, rules)
    out: list[dict[str, str]] = []
    for name, spec in action.params.items():
        rule = rules(action.name, name)
        if spec.kind == "scalar":
            slots = [(name, rule)]
        elif spec.kind == "repeat":
            slots = [(f"{name}.1", rule)]
        else:
            slots = [(f"{name}.1.{f}", rules_field(rule, f)) for f in spec.fields]
        for slot, slot_rule in slots:
            is_int = slot_rule.type == "int"
            pool = HOSTILE_INT_TEXT if is_int else [t for t in HOSTILE_TEXT if t]
            start = zlib.crc32(slot.encode()) % len(pool)
            drawn = [pool[(start + i) % len(pool)] for i in range(min(count, len(pool)))]
            always = ["9223372036854775808", "NaN"] if is_int else ["fz\x00x"]
            for value in always + [v for v in drawn if v not in always]:
                out.append({**base, slot: value})
    return out


def rules_field(rule: Any, field_name: str) -> Any:
    fields = rule.fields or {}
    return fields.get(field_name, type(rule)())


def flatten_aliyun(values: Mapping[str, Any]) -> dict[str, str]:
    flat: dict[str, str] = {}
    for name, value in values.items():
        if isinstance(value, list):
            for i, item in enumerate(value, 1):
                if isinstance(item, dict):
                    flat.update({f"{name}.{i}.{k}": v for k, v in item.items()})
                else:
                    flat[f"{name}.{i}"] = item
        else:
            flat[name] = value
    return flat


def aliyun_violation(
    action: str, flat: Mapping[str, str], rules: Callable[[str, str], Any]
) -> str | None:
    """Why the table's rules (or otahub's limits) forbid these parameters, if they do."""
    for name, value in flat.items():
        if text_is_bad(name) or text_is_bad(value):
            return f"{name}: NUL or lone surrogate"
        base = name.split(".", 1)[0]
        rule = rules(action, base)
        if name.count(".") == 2:
            rule = rules_field(rule, name.rsplit(".", 1)[1])
        if rule.type == "int" and value in HOSTILE_INT_TEXT and value not in ("-1", ""):
            return f"{name}={value[:20]!r} is not a 64-bit integer"
        if rule.type == "int" and value == "-1" and rule.min is not None and rule.min >= 0:
            return f"{name}=-1 is below {rule.min}"
        if rule.type == "bool" and value not in ("true", "false", "True", "False"):
            return f"{name}={value[:20]!r} is not a boolean"
    return None


# -- device topics ---------------------------------------------------------------------------

GARBAGE_PAYLOADS: list[tuple[str | None, bytes]] = [
    (None, b""),
    (None, b"null"),
    (None, b"[]"),
    (None, b"{"),
    (None, b"\xff\xfe\x00"),
    ("5,000-deep JSON", deep_array().encode()),
    ("5,000-deep JSON", deep_object().encode()),
    (None, b"\xbf" * 2_000),  # CBOR: indefinite maps opened and never closed
    (None, b"\x9f" * 20_000),  # CBOR: 20,000 nested indefinite arrays
    (None, b"\xd9\xd9\xf7" * 500),  # CBOR: tags on tags
    (None, b"\x1b\xff\xff\xff\xff\xff\xff\xff\xff"),  # CBOR: 2**64-1
    (None, b"\x00" * 20_000),
]


def jobs_request() -> st.SearchStrategy[dict[str, Any]]:
    """A Jobs MQTT request body: the fields the topics read, valid or hostile."""
    bad_number = st.sampled_from([*HUGE_INTS, *NON_FINITE, "1e309", 1.5])
    details = st.one_of(
        st.dictionaries(plain_text(1, 8), plain_text(0, 8), max_size=2),
        st.sampled_from(
            [{"k": "\x00"}, {"\x00": "v"}, {"k": "\ud800"}, deep_object(), {"k": deep_array()}]
        ),
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "clientToken": st.one_of(plain_text(1, 8), st.sampled_from(HOSTILE_TEXT)),
            "status": st.sampled_from(["IN_PROGRESS", "SUCCEEDED", "FAILED", "\x00", 5]),
            "statusDetails": details,
            "expectedVersion": st.one_of(st.integers(0, 5), bad_number),
            "executionNumber": st.one_of(st.integers(0, 5), bad_number),
            "stepTimeoutInMinutes": st.one_of(st.integers(1, 60), bad_number),
            "includeJobExecutionState": st.sampled_from([True, False, "yes", Raw("NaN")]),
            "includeJobDocument": st.sampled_from([True, False, 2]),
        },
    )


def jobs_fields(topic: str) -> tuple[str, ...]:
    """The request fields a Jobs topic reads."""
    if topic.endswith("/update"):
        return ("expectedVersion", "executionNumber", "stepTimeoutInMinutes", "statusDetails")
    if topic.endswith("/start-next"):
        return ("stepTimeoutInMinutes", "statusDetails")
    if topic.endswith("/get") and not topic.endswith("/jobs/get"):
        return ("executionNumber",)
    return ()


def jobs_violation(topic: str, request: Mapping[str, Any]) -> str | None:
    """Why a Jobs request must be refused on `topic`, if a field it reads is hostile."""
    if not isinstance(request, Mapping):
        return None
    fields = jobs_fields(topic)
    for key in ("expectedVersion", "executionNumber", "stepTimeoutInMinutes"):
        if key not in fields:
            continue
        value = request.get(key)
        if isinstance(value, Raw) or (
            isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX
        ):
            return f"{key} {str(value)[:12]} is not a 64-bit integer"
    details = request.get("statusDetails") if "statusDetails" in fields else None
    if isinstance(details, Raw):
        return "statusDetails nested 5,000 deep"
    if isinstance(details, dict) and any(
        isinstance(v, Raw) or (isinstance(v, str) and text_is_bad(v)) or text_is_bad(k)
        for k, v in details.items()
    ):
        return "statusDetails with NUL, a lone surrogate or deep nesting"
    return None


def stream_request() -> st.SearchStrategy[dict[str, Any]]:
    number = st.one_of(
        st.integers(0, 4), st.sampled_from([*HUGE_INTS, *NON_FINITE, -1, 2**31, "1", None])
    )
    return st.fixed_dictionaries(
        {},
        optional={
            "c": st.one_of(plain_text(1, 8), st.sampled_from(["\x00", "x" * 300])),
            "s": number,
            "f": number,
            "l": st.one_of(st.sampled_from([256, 1024, 4096]), number),
            "o": number,
            "n": number,
            "b": st.one_of(st.binary(max_size=8), st.sampled_from(["AA==", "!!!", 5])),
        },
    )


def stream_violation(topic: str, request: Mapping[str, Any]) -> str | None:
    """Why a stream request must be refused: a number it reads that is not a
    non-negative 64-bit integer (a description reads only the stream version)."""
    if not isinstance(request, Mapping):
        return None
    fields = ("s",) if "/describe/" in topic else ("s", "f", "l", "o", "n")
    for key in fields:
        value = request.get(key)
        if isinstance(value, Raw) or (
            isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= INT64_MAX
        ):
            return f"{key}={str(value)[:12]} is not a non-negative 64-bit integer"
    return None


def aliyun_device_message() -> st.SearchStrategy[dict[str, Any]]:
    text = st.one_of(st.sampled_from(["1.0.0", "2.0.0", "default"]), st.sampled_from(HOSTILE_TEXT))
    step = st.one_of(
        st.sampled_from(["10", "100", "-1", 50]),
        st.sampled_from([*HUGE_INTS, *NON_FINITE, "1e309", "NaN", "9" * 30]),
    )
    params = st.fixed_dictionaries(
        {},
        optional={
            "version": text,
            "module": text,
            "step": step,
            "desc": text,
            "fileToken": text,
            "fileInfo": st.sampled_from([{"fileId": "@FID@"}, {"streamId": 2**70}, None]),
            "fileBlock": st.sampled_from(
                [{"size": 256, "offset": 0}, {"size": 2**70, "offset": -1}, {"size": Raw("NaN")}]
            ),
        },
    )
    ident = st.one_of(st.integers(0, 99).map(str), st.sampled_from([2**70, Raw("NaN"), "\x00"]))
    return st.fixed_dictionaries(
        {"id": ident, "params": st.one_of(params, st.sampled_from([deep_object(), "x", []]))}
    )


def aliyun_device_violation(topic: str, message: Mapping[str, Any]) -> str | None:
    """Why an Alibaba device message must be refused: a version or module the store
    cannot hold, or a progress step outside -4..100."""
    params = message.get("params") if isinstance(message, Mapping) else None
    if not isinstance(params, dict):
        return None
    for key in ("version", "module"):
        value = params.get(key)
        if isinstance(value, str) and text_is_bad(value):
            return f"params.{key} with NUL or a lone surrogate"
    step = params.get("step") if "/progress/" in topic else None
    if isinstance(step, Raw) or (isinstance(step, int) and not -4 <= step <= 100):
        return f"params.step {str(step)[:12]} outside -4..100"
    return None
