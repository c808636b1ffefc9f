"""Response envelopes: success, business error (HTTP 200) and gateway error (non-2xx),
in JSON or XML (specs §1.5, §1.6, §7.1, §7.2)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from otahub.aliyun.protocol.errors import AliyunError, GatewayError
from otahub.aliyun.protocol.formats import utc_ms
from otahub.aliyun.protocol.parser import Format
from otahub.aliyun.protocol.xmlser import to_xml

JSON_TYPE = "application/json;charset=utf-8"
XML_TYPE = "text/xml;charset=utf-8"
DEFAULT_HOST_ID = "otahub"
_RESERVED = frozenset({"RequestId", "Success", "Code", "ErrorMessage"})


@dataclass(frozen=True)
class RpcResponse:
    status: int
    body: bytes
    content_type: str
    request_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type, "x-acs-request-id": self.request_id}


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_ms(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _json(data: Mapping[str, Any]) -> bytes:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return text.encode("utf-8")


def _render(status: int, root: str, data: dict[str, Any], fmt: Format) -> RpcResponse:
    request_id = str(data["RequestId"])
    if fmt == "XML":
        return RpcResponse(status, to_xml(root, data), XML_TYPE, request_id)
    return RpcResponse(status, _json(data), JSON_TYPE, request_id)


def success(
    action: str,
    payload: Mapping[str, Any] | None = None,
    *,
    fmt: Format = "JSON",
    request_id: str | None = None,
) -> RpcResponse:
    """`{"RequestId", "Success": true, **payload}`; XML root `<{action}Response>`."""
    payload = payload or {}
    clash = _RESERVED & set(payload)
    if clash:
        raise ValueError(f"payload may not set {sorted(clash)}")
    data: dict[str, Any] = {"RequestId": request_id or new_request_id(), "Success": True}
    data.update(payload)
    return _render(200, f"{action}Response", data, fmt)


def business_error(
    action: str,
    code: str,
    message: str,
    *,
    fmt: Format = "JSON",
    request_id: str | None = None,
) -> RpcResponse:
    """HTTP 200 `{"RequestId", "Success": false, "Code", "ErrorMessage"}`."""
    data: dict[str, Any] = {
        "RequestId": request_id or new_request_id(),
        "Success": False,
        "Code": code,
        "ErrorMessage": message,
    }
    return _render(200, f"{action}Response", data, fmt)


def recommend(code: str) -> str:
    return f"See docs/aliyun-errors.md in otahub for {code}."


def gateway_error(
    error: GatewayError,
    *,
    fmt: Format = "JSON",
    request_id: str | None = None,
    host_id: str = DEFAULT_HOST_ID,
) -> RpcResponse:
    """Non-2xx; the SDK reads `Code`, `Message` and `RequestId`. XML root `<Error>`."""
    data: dict[str, Any] = {
        "RequestId": request_id or new_request_id(),
        "HostId": host_id,
        "Code": error.code,
        "Message": error.message,
        "Recommend": recommend(error.code),
    }
    if fmt == "JSON":
        # Our own clients read ErrorMessage as on business errors (specs §7.1).
        data["ErrorMessage"] = error.message
    return _render(error.http_status, "Error", data, fmt)


def error_response(
    error: AliyunError,
    action: str | None,
    *,
    fmt: Format = "JSON",
    request_id: str | None = None,
    host_id: str = DEFAULT_HOST_ID,
) -> RpcResponse:
    """The response for any protocol error; a business error without an action (not
    yet parsed) is sent in the gateway shape."""
    if isinstance(error, GatewayError) or action is None:
        gw = (
            error
            if isinstance(error, GatewayError)
            else GatewayError(error.code, error.message, 400)
        )
        return gateway_error(gw, fmt=fmt, request_id=request_id, host_id=host_id)
    return business_error(action, error.code, error.message, fmt=fmt, request_id=request_id)
