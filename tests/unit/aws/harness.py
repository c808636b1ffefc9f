"""The AWS face in process, on the fake clock: requests signed as botocore signs them
(SigV4, dated by the fake clock) go through httpx's ASGI transport to the real app
(wire layer, handlers, S3), so a test can send what boto3 sends or any bytes at all.

    async with aws_console(services, clock, tmp_path) as aws:
        await aws.ok("iot", "CreateThing", thingName="t1")
        reply = await aws.raw("iot", "POST", "/jobs/j1", body=b'{"targets": NaN}', method="PUT")
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import botocore.auth
import botocore.credentials
import botocore.serialize
from botocore.awsrequest import AWSRequest
from botocore.utils import percent_encode_sequence

from otahub.aws.handlers import all_handlers
from otahub.aws.s3 import S3App
from otahub.aws.wire.app import AwsApp, AwsDeps
from otahub.aws.wire.model import service_model
from otahub.blobs.fs import FilesystemBlobStore
from otahub.core.services import Services
from otahub.core.services.objects import ObjectService
from otahub.core.services.signing import SigningService
from otahub.domain.clock import FakeClock

KEY, SECRET, ACCOUNT, REGION = "AKIAHARNESS00000", "harness-secret", "123456789012", "eu-west-1"
BASE = "http://otahub.test"


class AwsConsole:
    """Signed calls to the AWS face, answered in process."""

    def __init__(self, app: AwsApp, clock: FakeClock, objects: ObjectService) -> None:
        import httpx

        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        self.clock = clock
        self.objects = objects
        self._credentials = botocore.credentials.Credentials(KEY, SECRET)

    async def raw(
        self,
        service: str,
        method: str,
        path: str,
        *,
        query: str | Mapping[str, Any] = "",
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Any request, signed for `service` (path already percent-encoded)."""
        query_text = query if isinstance(query, str) else urlencode(query, doseq=True)
        url = BASE + path + (f"?{query_text}" if query_text else "")
        data = body.encode() if isinstance(body, str) else body
        sent = dict(headers or {})
        if service == "s3":  # S3 signs with the payload hash in a header
            sent.setdefault("x-amz-content-sha256", hashlib.sha256(data).hexdigest())
        request = AWSRequest(method=method, url=url, data=data, headers=sent)
        signer = botocore.auth.SigV4Auth(self._credentials, service, REGION)
        at = self.clock.now().replace(tzinfo=None)
        with mock.patch("botocore.auth.get_current_datetime", return_value=at):
            signer.add_auth(request)
        return await self.http.request(
            method, url, content=data, headers=dict(request.headers.items())
        )

    async def call(self, service: str, operation: str, **params: Any) -> Any:
        """The request botocore makes for `operation(**params)` (not validated, so a
        test can send values boto3 would refuse)."""
        op = service_model(service).operation_model(operation)
        serializer = botocore.serialize.create_serializer("rest-json", include_validation=False)
        req = serializer.serialize_to_request(params, op)
        query = percent_encode_sequence(req["query_string"]) if req["query_string"] else ""
        return await self.raw(
            service,
            req["method"],
            req["url_path"],
            query=query,
            body=req["body"] or b"",
            headers={k: v for k, v in req["headers"].items() if isinstance(v, str)},
        )

    async def ok(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        reply = await self.call(service, operation, **params)
        assert reply.status_code < 300, reply.text
        body: dict[str, Any] = json.loads(reply.content or b"{}")
        return body

    async def close(self) -> None:
        await self.http.aclose()


def error_of(reply: Any) -> tuple[int, str]:
    """(HTTP status, AWS error code) of a reply."""
    return reply.status_code, reply.headers.get("x-amzn-ErrorType", "")


@contextlib.asynccontextmanager
async def aws_console(
    services: Services, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[AwsConsole]:
    await services.accounts.ensure_access_key(KEY, SECRET, ACCOUNT)
    objects = ObjectService(services.ctx, FilesystemBlobStore(tmp_path / "blobs"))
    deps = AwsDeps(objects, SigningService(services.ctx, objects), None, BASE, {})
    app = AwsApp(services, clock, all_handlers(), deps, s3=S3App(services, objects, clock))
    console = AwsConsole(app, clock, objects)
    try:
        yield console
    finally:
        await console.close()
