"""OSS-style browser POST upload: mint the form GenerateOTAUploadURL returns, and
check a posted form's fields (specs §6). Pure functions; streaming the `file` part and
enforcing `max_size` while streaming are the upload endpoint's job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from otahub.aliyun.protocol.formats import utc_ms
from otahub.aliyun.protocol.xmlser import text_of
from otahub.domain.limits import Refused, loads_json

FORM_TTL = timedelta(minutes=1)
MAX_UPLOAD_BYTES = 1000 * 1024 * 1024
SUCCESS_STATUSES = frozenset({200, 201, 204})


class OssError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    def to_xml(self, request_id: str, host_id: str = "otahub") -> bytes:
        """OSS's error body (not an RPC envelope)."""
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
            f"  <Code>{escape(self.code)}</Code>\n"
            f"  <Message>{escape(text_of(self.message))}</Message>\n"
            f"  <RequestId>{escape(request_id)}</RequestId>\n"
            f"  <HostId>{escape(host_id)}</HostId>\n"
            "</Error>\n"
        ).encode()


def malformed(detail: str = "") -> OssError:
    text = "The body of your POST request is not well-formed multipart/form-data."
    return OssError("MalformedPOSTRequest", f"{text} {detail}".strip(), 400)


def invalid_policy(reason: str) -> OssError:
    """A policy that decodes but says nothing OSS can apply (OSS: `InvalidPolicyDocument`)."""
    return OssError("InvalidPolicyDocument", f"Invalid Policy: {reason}", 400)


def access_denied(reason: str) -> OssError:
    return OssError("AccessDenied", f"Invalid according to Policy: {reason}", 403)


def policy_signature(policy_b64: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), policy_b64.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def make_policy(key: str, expires: datetime, max_size: int = MAX_UPLOAD_BYTES) -> str:
    document = {
        "expiration": utc_ms(expires),
        "conditions": [
            ["eq", "$key", key],
            ["content-length-range", 0, max_size],
        ],
    }
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


@dataclass(frozen=True)
class UploadForm:
    host: str
    key: str
    policy: str
    access_key_id: str
    signature: str
    created: datetime

    @property
    def url(self) -> str:
        return f"{self.host.rstrip('/')}/{self.key}"

    def ota_data(self) -> dict[str, str]:
        """`Data` of GenerateOTAUploadURL."""
        return {
            "Host": self.host,
            "Key": self.key,
            "Policy": self.policy,
            "OSSAccessKeyId": self.access_key_id,
            "Signature": self.signature,
            "FirmwareUrl": self.url,
            "ObjectStorage": "OSS",
            "UtcCreate": utc_ms(self.created),
        }

    def device_list_data(self) -> dict[str, str]:
        """`Data` of GenerateDeviceNameListURL: `AccessKeyId` and `FileUrl` (specs §7.20)."""
        return {
            "FileUrl": self.url,
            "Host": self.host,
            "Key": self.key,
            "AccessKeyId": self.access_key_id,
            "Policy": self.policy,
            "Signature": self.signature,
            "ObjectStorage": "OSS",
            "UtcCreate": utc_ms(self.created),
        }


def mint_upload_form(
    *,
    host: str,
    key: str,
    access_key_id: str,
    secret: str,
    now: datetime,
    ttl: timedelta = FORM_TTL,
    max_size: int = MAX_UPLOAD_BYTES,
) -> UploadForm:
    """`host` includes the scheme, e.g. `http://127.0.0.1:8080/oss`; the client posts to it."""
    policy = make_policy(key, now + ttl, max_size)
    return UploadForm(
        host=host,
        key=key,
        policy=policy,
        access_key_id=access_key_id,
        signature=policy_signature(policy, secret),
        created=now,
    )


@dataclass(frozen=True)
class PostedForm:
    key: str
    access_key_id: str
    expires: datetime
    max_size: int
    min_size: int
    success_status: int
    """The status to answer with: `success_action_status` if 200/201, else 204."""

    def check_size(self, size: int) -> None:
        if size > self.max_size:
            raise OssError(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size.", 400
            )
        if size < self.min_size:
            raise OssError(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size.",
                400,
            )


def _parse_expiration(text: Any) -> datetime:
    if not isinstance(text, str):
        raise malformed("Policy expiration is missing.")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise malformed("Policy expiration is not ISO 8601.") from None
    if when.tzinfo is None:
        raise malformed("Policy expiration has no time zone.")
    return when


def _decode_policy(policy_b64: str) -> dict[str, Any]:
    try:
        document = loads_json(base64.b64decode(policy_b64, validate=True))
    except (binascii.Error, Refused) as exc:
        raise malformed(f"Policy is not base64 JSON: {exc}") from None
    if not isinstance(document, dict):
        raise malformed("Policy is not a JSON object with conditions.")
    if not isinstance(document.get("conditions"), list):
        raise invalid_policy("The policy has no list of conditions.")
    return document


Condition = tuple[str, str, Any]
"""(operator, field name in lower case without `$`, value): one checked condition."""


def _condition(raw: Any) -> Condition:
    """A policy condition as OSS spells it (`{"name": "value"}` or `[op, "$name", value]`),
    with the types its operator needs; InvalidPolicyDocument otherwise."""
    if isinstance(raw, dict):
        if len(raw) != 1:
            raise invalid_policy(
                "Invalid Simple-Condition: Simple-Conditions must have exactly one property"
                " specified."
            )
        ((name, value),) = raw.items()
        raw = ["eq", f"${name}", value]
    if not isinstance(raw, list) or len(raw) != 3 or not isinstance(raw[0], str):
        raise invalid_policy("A condition is neither an object nor a list of three.")
    op, name, value = raw
    if op == "content-length-range":
        if not (_is_size(name) and _is_size(value) and name <= value):
            raise invalid_policy(
                "content-length-range takes two integers, minimum and maximum, 0 <= min <= max."
            )
        return op, "", (name, value)
    if not isinstance(name, str) or not name.startswith("$"):
        raise invalid_policy(f"The field of a {op!r} condition must be a string starting with $.")
    expected = _VALUE_TYPES.get(op)
    if expected is None:
        raise invalid_policy(f"Unknown condition operator {op!r}.")
    if not isinstance(value, expected) or (
        isinstance(value, list) and not all(isinstance(v, str) for v in value)
    ):
        raise invalid_policy(f"The value of a {op!r} condition has the wrong type.")
    return op, name[1:].lower(), value


_VALUE_TYPES: dict[str, type] = {"eq": str, "starts-with": str, "in": list, "not-in": list}


def _is_size(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _holds(op: str, given: str | None, value: Any) -> bool:
    if given is None:
        return op == "not-in"
    if op == "eq":
        return bool(given == value)
    if op == "starts-with":
        return given.startswith(value)
    return (given in value) == (op == "in")


def _check_conditions(conditions: list[Any], fields: Mapping[str, str]) -> tuple[int, int]:
    """Check every condition's shape, then apply them; return the size range, within
    the largest upload otahub takes whatever the policy says."""
    checked = [(raw, _condition(raw)) for raw in conditions]
    low, high = 0, MAX_UPLOAD_BYTES
    for raw, (op, field, value) in checked:
        if op == "content-length-range":
            low, high = value[0], min(value[1], MAX_UPLOAD_BYTES)
        elif field != "bucket" and not _holds(op, fields.get(field), value):
            # The bucket is not posted as a field: there is one store.
            raise access_denied(f"Policy Condition failed: {json.dumps(raw)}")
    return low, high


def verify_post_form(
    fields: Mapping[str, str],
    *,
    lookup_secret: Callable[[str], str | None],
    now: datetime,
) -> PostedForm:
    """Check the fields posted before `file`; names are matched ignoring case."""
    lowered = {name.lower(): value for name, value in fields.items()}
    for name in ("key", "policy", "ossaccesskeyid", "signature"):
        if not lowered.get(name):
            raise malformed(f"Field {name} is missing.")
    access_key_id = lowered["ossaccesskeyid"]
    secret = lookup_secret(access_key_id)
    if secret is None:
        raise OssError(
            "InvalidAccessKeyId",
            "The OSS Access Key Id you provided does not exist in our records.",
            403,
        )
    policy_b64 = lowered["policy"]
    expected = policy_signature(policy_b64, secret)
    if not hmac.compare_digest(expected.encode(), lowered["signature"].encode()):
        raise OssError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
            403,
        )
    document = _decode_policy(policy_b64)
    expires = _parse_expiration(document.get("expiration"))
    if now >= expires:
        raise access_denied("Policy expired")
    low, high = _check_conditions(document["conditions"], lowered)
    try:
        requested = int(lowered.get("success_action_status", "204"))
    except ValueError:
        requested = 204
    return PostedForm(
        key=lowered["key"],
        access_key_id=access_key_id,
        expires=expires,
        max_size=high,
        min_size=low,
        success_status=requested if requested in SUCCESS_STATUSES else 204,
    )
