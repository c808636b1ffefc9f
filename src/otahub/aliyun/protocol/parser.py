"""Raw query string and form body -> common parameters and typed action parameters.

Parsed values: `str`, `int`, `bool`; `Name.N` repeat lists become lists ordered by
N; `Name.N.Field` struct lists become lists of dicts. Absent parameters are left
out of the result (the literal text `None` and the empty string count as absent).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn, TypeVar

from otahub.aliyun.protocol.errors import (
    AliyunError,
    BusinessError,
    gateway,
    invalid,
    missing,
)
from otahub.aliyun.protocol.rules import STR, Rule, rule_for
from otahub.aliyun.protocol.table import ActionSpec, ParamSpec, api_version, load_table
from otahub.domain.limits import INT64_MAX, INT64_MIN, Refused, check_text, parse_int

Format = Literal["JSON", "XML"]
T = TypeVar("T")

COMMON_PARAMS = frozenset(
    {
        "Action",
        "Version",
        "Format",
        "RegionId",
        "AccessKeyId",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureType",
        "SignatureNonce",
        "Timestamp",
        "Signature",
        "SecurityToken",
    }
)
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_INDEX = re.compile(r"^[1-9][0-9]{0,5}$")


@dataclass(frozen=True)
class RpcCall:
    action: str
    method: str
    format: Format
    region_id: str | None
    params: dict[str, Any]
    raw: dict[str, str]


def merge_params(
    query_string: str, body: bytes | str = b"", content_type: str | None = None
) -> dict[str, str]:
    """Query plus form body as one mapping; a name given twice is refused."""
    pairs = urllib.parse.parse_qsl(query_string, keep_blank_values=True)
    if body and _is_form(content_type):
        text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
        pairs += urllib.parse.parse_qsl(text, keep_blank_values=True)
    merged: dict[str, str] = {}
    for key, value in pairs:
        if key in merged:
            raise invalid(key, "given more than once")
        merged[key] = value
    return merged


def _is_form(content_type: str | None) -> bool:
    if not content_type:
        return True
    return content_type.split(";", 1)[0].strip().lower() == FORM_CONTENT_TYPE


def response_format(raw: Mapping[str, str]) -> Format:
    """Anything but XML (any case) means JSON, including the `None` of `do_action()`."""
    return "XML" if raw.get("Format", "").strip().upper() == "XML" else "JSON"


def action_spec(raw: Mapping[str, str]) -> ActionSpec:
    action = raw.get("Action", "")
    if not action:
        raise missing("Action")
    spec = load_table().get(action)
    if spec is None:
        raise gateway("InvalidApi.NotFound")
    version = raw.get("Version", "")
    if not version:
        raise missing("Version")
    if version != api_version():
        raise gateway("InvalidVersion")
    return spec


def parse_call(method: str, raw: Mapping[str, str]) -> RpcCall:
    spec = action_spec(raw)
    check_storable(raw)
    region = raw.get("RegionId") or None
    return RpcCall(
        action=spec.name,
        method=method.upper(),
        format=response_format(raw),
        region_id=region,
        params=parse_params(spec, raw),
        raw=dict(raw),
    )


def check_storable(raw: Mapping[str, str]) -> None:
    """Every name and value, known to the action or not, is text the store can hold:
    `IotInstanceId` and unknown names reach the handlers through `RpcCall.raw`."""
    for key, value in raw.items():
        try:
            check_text(key, "the name")
        except Refused as exc:
            raise invalid(ascii(key)[1:-1], str(exc)) from None
        try:
            check_text(value, "the value")
        except Refused as exc:
            raise invalid(key, str(exc)) from None


def parse_params(spec: ActionSpec, raw: Mapping[str, str]) -> dict[str, Any]:
    grouped = _group(spec, raw)
    out: dict[str, Any] = {}
    for name, pspec in spec.params.items():
        rule = rule_for(spec.name, name)
        value = _convert(pspec, rule, grouped.get(name))
        if value is None:
            if rule.required:
                raise missing(name)
            continue
        out[name] = value
    return out


def _group(spec: ActionSpec, raw: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Collect each known parameter's raw entries, keyed by the text after its name."""
    grouped: dict[str, dict[str, str]] = {}
    for key, value in raw.items():
        if key in COMMON_PARAMS:
            continue
        head, dot, rest = key.partition(".")
        pspec = spec.params.get(head)
        if pspec is None:
            continue  # Unknown parameters are ignored, as newer SDKs may add some.
        if (pspec.kind == "scalar") == bool(dot) or (pspec.kind == "repeat" and "." in rest):
            raise invalid(key, f"{head} is {_shape(pspec)}")
        if pspec.kind == "struct_list" and rest.partition(".")[2] not in pspec.fields:
            raise invalid(key, f"the fields of {head}.N are {', '.join(pspec.fields)}")
        grouped.setdefault(head, {})[rest] = value
    return grouped


def _shape(pspec: ParamSpec) -> str:
    if pspec.kind == "scalar":
        return "a single value"
    if pspec.kind == "repeat":
        return f"a list ({pspec.name}.N)"
    return f"a list of structs ({pspec.name}.N.Field)"


def _convert(pspec: ParamSpec, rule: Rule, entries: dict[str, str] | None) -> Any:
    if not entries:
        return None
    if pspec.kind == "scalar":
        text = entries[""]
        if text in ("", "None"):
            return None
        return _scalar(pspec.name, rule, text)
    if pspec.kind == "repeat":
        items = _ordered(pspec.name, entries)
        values = [_scalar(f"{pspec.name}.{i + 1}", rule, v) for i, v in enumerate(items)]
        _check_list(pspec.name, rule, values, values)
        return values
    return _struct_list(pspec, rule, entries)


def _struct_list(pspec: ParamSpec, rule: Rule, entries: dict[str, str]) -> list[dict[str, Any]]:
    by_index: dict[str, dict[str, str]] = {}
    for rest, value in entries.items():
        index, _, field = rest.partition(".")
        by_index.setdefault(index, {})[field] = value
    fields = rule.fields or {}
    structs: list[dict[str, Any]] = []
    for i, raw_struct in enumerate(_ordered(pspec.name, by_index)):
        struct: dict[str, Any] = {}
        for field in pspec.fields:
            frule = fields.get(field, STR)
            label = f"{pspec.name}.{i + 1}.{field}"
            text = raw_struct.get(field)
            if text is None or text == "":
                if frule.required:
                    _fail(rule, missing(label))
                continue
            struct[field] = _scalar(label, frule, text, code_rule=rule)
        structs.append(struct)
    keys = [s.get(rule.unique_field) for s in structs] if rule.unique_field else []
    _check_list(pspec.name, rule, structs, keys)
    return structs


def _ordered(name: str, by_index: dict[str, T]) -> list[T]:
    """Items ordered by their 1-based index; a gap or a bad index is refused."""
    numbered: dict[int, T] = {}
    for index, item in by_index.items():
        if not _INDEX.match(index):
            raise invalid(f"{name}.{index}", "list indexes are 1, 2, 3, ...")
        numbered[int(index)] = item
    count = len(numbered)
    if max(numbered) != count:
        gap = min(set(range(1, count + 1)) - set(numbered))
        raise invalid(f"{name}.{gap}", "missing from the list")
    return [numbered[i] for i in range(1, count + 1)]


def _fail(rule: Rule, error: AliyunError, *, duplicate: bool = False) -> NoReturn:
    code = (rule.duplicate_code or rule.code) if duplicate else rule.code
    if code is not None:
        raise BusinessError(code.code, f"{code.message} ({error.message})")
    raise error


def _scalar(label: str, rule: Rule, text: str, *, code_rule: Rule | None = None) -> Any:
    owner = code_rule or rule
    value: Any
    if rule.type == "bool":
        lowered = text.lower()
        if lowered not in ("true", "false"):
            _fail(owner, invalid(label, "must be true or false"))
        value = lowered == "true"
    elif rule.type == "int":
        value = _integer(label, rule, owner, text)
    else:
        value = _string(label, rule, owner, text)
    if rule.choices is not None and rule.type != "str" and value not in rule.choices:
        _fail(owner, invalid(label, f"must be one of {_choices(rule)}"))
    if rule.check is not None and not isinstance(value, list):
        reason = rule.check(value)
        if reason:
            _fail(owner, invalid(label, reason))
    return value


def _integer(label: str, rule: Rule, owner: Rule, text: str) -> int:
    """A decimal integer within the rule's range, or within 64 bits where it gives none."""
    low = INT64_MIN if rule.min is None else rule.min
    high = INT64_MAX if rule.max is None else rule.max
    try:
        return parse_int(text, label, low, high)
    except Refused:
        _fail(owner, invalid(label, f"must be an integer from {low} to {high}"))


def _string(label: str, rule: Rule, owner: Rule, text: str) -> str:
    if rule.min_len is not None and len(text) < rule.min_len:
        _fail(owner, invalid(label, f"must have at least {rule.min_len} characters"))
    if rule.max_len is not None and len(text) > rule.max_len:
        _fail(owner, invalid(label, f"must have at most {rule.max_len} characters"))
    if rule.pattern is not None and not rule.pattern.fullmatch(text):
        _fail(owner, invalid(label, "has characters that are not allowed"))
    if rule.choices is None:
        return text
    for choice in rule.choices:
        if choice == text or (rule.fold_case and str(choice).lower() == text.lower()):
            return str(choice)
    _fail(owner, invalid(label, f"must be one of {_choices(rule)}"))


def _choices(rule: Rule) -> str:
    return ", ".join(sorted(str(c) for c in rule.choices or ()))


def _check_list(name: str, rule: Rule, items: list[Any], keys: list[Any]) -> None:
    if rule.min_items is not None and len(items) < rule.min_items:
        _fail(rule, invalid(name, f"needs at least {rule.min_items} items"))
    if rule.max_items is not None and len(items) > rule.max_items:
        _fail(rule, invalid(name, f"takes at most {rule.max_items} items"))
    if rule.unique or rule.unique_field:
        seen: set[Any] = set()
        for key in keys:
            if key is not None and key in seen:
                _fail(rule, invalid(name, f"{key!r} is given more than once"), duplicate=True)
            seen.add(key)
    if rule.check is not None and rule.fields is not None:
        reason = rule.check(items)
        if reason:
            _fail(rule, invalid(name, reason))
