"""The ASGI entry of the AWS face: verify, route, parse, validate, call one handler,
serialize; every failure leaves in AWS's error shape."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from otahub.aws.devices.jobs_mqtt import RenderDocument
from otahub.aws.wire import codec, model, sigv4
from otahub.aws.wire.errors import AwsError, from_core, unexpected
from otahub.aws.wire.throttle import AccountThrottle
from otahub.blobs.presign import PresignVerifier
from otahub.core.services import Services
from otahub.core.services.objects import ObjectService
from otahub.core.services.signing import SigningService
from otahub.domain.clock import Clock
from otahub.domain.errors import OtahubError
from otahub.gateway.body import BodyTooLarge, read_body
from otahub.gateway.embedded.pki import IssuedCertificate

log = logging.getLogger("otahub.aws")


@dataclass(frozen=True)
class AwsDeps:
    """What handlers use besides the core services."""

    objects: ObjectService
    signing: SigningService
    downloads: PresignVerifier | None
    http_base: str  # where devices reach otahub's HTTP port
    endpoints: Mapping[str, str]  # endpoint type -> host name, for DescribeEndpoint
    render_document: RenderDocument | None = None  # the document as one device gets it
    issue_certificate: Callable[[], IssuedCertificate] | None = None  # otahub's device CA


@dataclass(frozen=True)
class AwsContext:
    services: Services
    clock: Clock
    tenant_id: int
    account_id: str
    region: str
    service: str
    deps: AwsDeps

    @property
    def objects(self) -> ObjectService:
        return self.deps.objects

    @property
    def endpoints(self) -> Mapping[str, str]:
        return self.deps.endpoints

    def arn(self, resource: str, service: str = "iot") -> str:
        return f"arn:aws:{service}:{self.region}:{self.account_id}:{resource}"


Handler = Callable[[AwsContext, dict[str, Any]], Awaitable[dict[str, Any] | None]]


class AwsApp:
    def __init__(
        self,
        services: Services,
        clock: Clock,
        handlers: Mapping[tuple[str, str], Handler],
        deps: AwsDeps,
        s3: ASGIApp | None = None,
        throttle: AccountThrottle | None = None,
    ) -> None:
        self.throttle = throttle
        self.s3 = s3  # S3 streams its bodies: it gets the request before anything is read
        self.services = services
        self.clock = clock
        self.handlers = handlers
        self.deps = deps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        unreadable: sigv4.SignatureError | None = None
        try:
            headers, raw_path, raw_query = sigv4.request_text(scope)
        except sigv4.SignatureError as err:
            # Latin-1 reads any bytes: enough to tell which API the request is for.
            headers, raw_path, raw_query = sigv4.request_text(scope, "latin-1")
            unreadable = err
        if self.s3 is not None and _for_s3(headers, raw_query):
            await self.s3(scope, receive, send)  # S3 reads (and refuses) its own bytes
            return
        request_id = str(uuid.uuid4())
        service = "iot"
        try:
            if unreadable is not None:
                raise unreadable
            body = await _read_body(receive)
            signed = await sigv4.verify(
                scope["method"],
                raw_path,
                raw_query,
                headers,
                body,
                self.services.accounts.lookup_key,
                self.clock.now(),
            )
            service = signed.service
            if service not in model.SERVICES:
                raise AwsError(
                    "UnknownOperationException",
                    f"otahub does not serve the {service} API here",
                    404,
                )
            if self.throttle is not None:
                self.throttle.check(signed.account_id, service)
            match = model.route(service, scope["method"], raw_path)
            if match is None:
                raise AwsError("UnknownOperationException", "no operation at this path", 404)
            op = match.operation
            params = codec.parse_input(service, op, match.labels, raw_query, headers, body)
            codec.validate(service, op.input_shape, params)
            handler = self.handlers.get((service, op.name))
            if handler is None:
                raise AwsError(
                    "NotImplementedException",
                    f"otahub does not implement {service} {op.name} yet",
                    501,
                )
            tenant = await self.services.accounts.tenant(signed.account_id)
            ctx = AwsContext(
                self.services,
                self.clock,
                tenant.id,
                signed.account_id,
                signed.region,
                service,
                self.deps,
            )
            try:
                output = await handler(ctx, params) or {}
            except OtahubError as exc:
                raise from_core(service, exc) from exc
            status, out_headers, out_body = codec.serialize_output(op, output)
            await _respond(send, status, {**out_headers, "x-amzn-RequestId": request_id}, out_body)
        except AwsError as err:
            await _error(send, service, err, request_id)
        except Exception as exc:
            log.exception("AWS request failed")
            await _error(send, service, unexpected(service, exc), request_id)


def _for_s3(headers: Mapping[str, str], raw_query: str) -> bool:
    return sigv4.scope_service(headers, raw_query) == "s3" or (
        "authorization" not in headers and sigv4.is_v2_presigned(raw_query)
    )


async def _read_body(receive: Receive) -> bytes:
    try:
        return await read_body(receive)
    except BodyTooLarge:
        raise AwsError("InvalidRequestException", "the request body is too large", 413) from None


async def _error(send: Send, service: str, err: AwsError, request_id: str) -> None:
    status = err.status or codec.error_status(service, err.code)
    body = {"message": err.message, "__type": err.code, **err.members}
    await _respond(
        send,
        status,
        {"x-amzn-ErrorType": err.code, "x-amzn-RequestId": request_id},
        json.dumps(body, default=str).encode(),
    )


async def _respond(send: Send, status: int, headers: Mapping[str, str], body: bytes) -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
