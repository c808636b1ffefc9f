"""An asyncio client for the Alibaba Cloud IoT RPC API (version 2018-01-20) on httpx.

It signs requests as aliyun-python-sdk-core does (HMAC-SHA1, signature version 1.0;
specs/alibaba.md §1.2-§1.3): every parameter in the query string, except those given
as `form`, which travel as an urlencoded body and are signed too. Lists become the
1-based `Name.N` / `Name.N.Field` parameters, booleans `True` / `False`. Business
errors (HTTP 200 with `Success: false`) raise `AliyunApiError`; throttling, server
errors and broken connections are retried with jittered backoff.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import random
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx

API_VERSION = "2018-01-20"


class AliyunApiError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.code = code
        self.message = message
        self.status = status


def signature(method: str, params: Mapping[str, str], secret: str) -> str:
    """HMAC-SHA1 of the method and every parameter but `Signature`, sorted, each
    percent-encoded (RFC 3986, UTF-8) and the whole encoded once more."""

    def pct(value: str) -> str:
        return quote(value, safe="-_.~")

    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    canonical = "&".join(f"{pct(k)}={pct(v)}" for k, v in pairs)
    to_sign = f"{method.upper()}&{pct('/')}&{pct(canonical)}"
    digest = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def flatten(params: Mapping[str, Any]) -> dict[str, str]:
    """Parameters as the SDK puts them on the wire."""
    out: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            for n, item in enumerate(value, 1):
                if isinstance(item, Mapping):
                    for field, v in item.items():
                        if v is not None:
                            out[f"{name}.{n}.{field}"] = _text(v)
                elif item is not None:
                    out[f"{name}.{n}"] = _text(item)
        else:
            out[name] = _text(value)
    return out


def _text(value: Any) -> str:
    return str(value)  # booleans as True/False, like the SDK's str()


class AsyncAliyunClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoint: str,
        *,
        access_key: str,
        secret_key: str,
        region: str = "cn-shanghai",
        attempts: int = 6,
    ) -> None:
        self.http = http
        self.endpoint = endpoint.rstrip("/") + "/"
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.attempts = attempts

    async def call(
        self, action: str, form: Mapping[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        """One action; its parsed body (`Success` true)."""
        for attempt in range(self.attempts):
            try:
                return await self._call(action, params, form)
            except AliyunApiError as exc:
                retry = exc.status >= 500 or exc.code.startswith("Throttling")
                if not retry or attempt == self.attempts - 1:
                    raise
            except httpx.TransportError:
                if attempt == self.attempts - 1:
                    raise
            await asyncio.sleep(random.uniform(0.05, min(5.0, 0.2 * 2**attempt)))
        raise AssertionError("unreachable")

    async def _call(
        self, action: str, params: Mapping[str, Any], form: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        query = {
            "Action": action,
            "Version": API_VERSION,
            "Format": "JSON",
            "RegionId": self.region,
            "AccessKeyId": self.access_key,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "SignatureType": "",
            "SignatureNonce": uuid.uuid4().hex,
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            **flatten(params),
        }
        body = flatten(form or {})
        query["Signature"] = signature("POST", {**query, **body}, self.secret_key)
        headers = {"x-acs-action": action, "x-acs-version": API_VERSION}
        content = b""
        if body:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            content = urlencode(body).encode()
        response = await self.http.post(
            self.endpoint, params=query, content=content, headers=headers
        )
        try:
            result: dict[str, Any] = response.json()
        except ValueError:
            raise AliyunApiError(
                "UnknownServerError", response.text[:200], response.status_code
            ) from None
        if response.status_code >= 300:
            raise AliyunApiError(
                str(result.get("Code") or response.status_code),
                str(result.get("Message", "")),
                response.status_code,
            )
        if result.get("Success") is False:
            raise AliyunApiError(
                str(result.get("Code")), str(result.get("ErrorMessage", "")), response.status_code
            )
        return result
