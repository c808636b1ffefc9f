"""The ASGI entry of the Alibaba face: RPC requests (GET or POST, parameters in the
query and a form body) through `frontdoor.receive`, one handler per Action, answers
in the RPC envelope (JSON, or XML when `Format=XML`).

Business errors go out as HTTP 200 `Success:false`; gateway errors (signature,
missing parameter, throttling, unknown action) as non-2xx, which the SDK raises.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope, Send

from otahub.aliyun.protocol import envelope, frontdoor
from otahub.aliyun.protocol.errormap import from_core, internal_error
from otahub.aliyun.protocol.errors import AliyunError, gateway
from otahub.aliyun.protocol.nonces import MemoryNonceStore
from otahub.aliyun.protocol.parser import Format
from otahub.aliyun.protocol.ratelimits import ApiRateLimiter
from otahub.aliyun.protocol.signature import Authenticator
from otahub.core.services import Services
from otahub.core.services.accounts import UNSAVED_TENANT_ID
from otahub.core.services.objects import ObjectService
from otahub.domain.clock import Clock
from otahub.domain.entities import Tenant
from otahub.domain.errors import OtahubError
from otahub.gateway.body import BodyTooLarge, read_body

log = logging.getLogger("otahub.aliyun")


@dataclass(frozen=True)
class AliyunDeps:
    """What handlers use besides the core services."""

    objects: ObjectService
    http_base: str  # where clients and devices reach otahub's HTTP port


@dataclass(frozen=True)
class AliyunContext:
    services: Services
    clock: Clock
    tenant: Tenant
    account_id: str
    access_key_id: str
    secret: str
    region: str | None
    deps: AliyunDeps

    @property
    def tenant_id(self) -> int:
        """The instance's tenant; `UNSAVED_TENANT_ID` while nothing was written to it,
        so that reads find nothing in it."""
        return self.tenant.id

    async def saved_tenant_id(self) -> int:
        """The instance's tenant, stored now if it was not: a write calls this just
        before it stores, so a refused call never creates an instance."""
        if self.tenant.id != UNSAVED_TENANT_ID:
            return self.tenant.id
        saved = await self.services.accounts.tenant(self.account_id, self.tenant.instance_id)
        return saved.id

    async def upload_tenant_id(self) -> int:
        """The tenant whose bucket holds the account's uploads (its default instance's),
        for reading them: `UNSAVED_TENANT_ID`, which holds none, if there is none yet."""
        found = await self.services.accounts.find_tenant(self.account_id)
        return found.id if found is not None else UNSAVED_TENANT_ID


Handler = Callable[[AliyunContext, dict[str, Any]], Awaitable[Mapping[str, Any] | None]]


class AliyunApp:
    def __init__(
        self,
        services: Services,
        clock: Clock,
        handlers: Mapping[str, Handler],
        deps: AliyunDeps,
        *,
        limiter: ApiRateLimiter | None = None,
    ) -> None:
        self.services = services
        self.clock = clock
        self.handlers = handlers
        self.deps = deps
        self.limiter = limiter if limiter is not None else ApiRateLimiter(clock)
        self._accounts: dict[str, tuple[str, str]] = {}
        self.authenticator = Authenticator(self._secret_of, clock, MemoryNonceStore(clock))

    async def _secret_of(self, access_key_id: str) -> str | None:
        found = await self.services.accounts.lookup_key(access_key_id)
        if found is None:
            return None
        self._accounts[access_key_id] = found
        return found[0]

    def _account_of(self, access_key_id: str) -> str:
        return self._accounts[access_key_id][1]

    async def _tenant(self, account_id: str, instance_id: str) -> Tenant:
        """The instance's tenant, or an unsaved one if nothing was written to it yet:
        an instance (the default one too) exists from its first successful write."""
        found = await self.services.accounts.find_tenant(account_id, instance_id)
        if found is not None:
            return found
        return Tenant(id=UNSAVED_TENANT_ID, account_id=account_id, instance_id=instance_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = envelope.new_request_id()
        query = scope.get("query_string", b"").decode("latin-1")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        content_type = headers.get("content-type")
        body = b""
        action: str | None = None
        fmt: Format = "JSON"
        try:
            body = await _read_body(receive)
            fmt = frontdoor.format_of(query, body, content_type)
            action = frontdoor.action_of(query, body, content_type)
            received = await frontdoor.receive(
                scope["method"],
                query,
                body,
                content_type,
                authenticator=self.authenticator,
                limiter=self.limiter,
                account_of=lambda caller: self._account_of(caller.access_key_id),
            )
            call = received.call
            handler = self.handlers.get(call.action)
            if handler is None:
                raise gateway(
                    "InvalidApi.NotFound",
                    f"Specified api is not found: otahub does not serve {call.action}.",
                )
            secret, account_id = self._accounts[received.caller.access_key_id]
            instance = call.raw.get("IotInstanceId", "")
            tenant = await self._tenant(account_id, "" if instance in ("None",) else instance)
            ctx = AliyunContext(
                self.services,
                self.clock,
                tenant,
                account_id,
                received.caller.access_key_id,
                secret,
                call.region_id,
                self.deps,
            )
            try:
                payload = await handler(ctx, call.params)
            except OtahubError as exc:
                raise from_core(exc) from exc
            response = envelope.success(call.action, payload, fmt=fmt, request_id=request_id)
        except AliyunError as err:
            response = envelope.error_response(err, action, fmt=fmt, request_id=request_id)
        except Exception:
            log.exception("Alibaba RPC request failed")
            response = envelope.error_response(
                internal_error(), action, fmt=fmt, request_id=request_id
            )
        await _respond(send, response)


async def _read_body(receive: Receive) -> bytes:
    try:
        return await read_body(receive)
    except BodyTooLarge:
        raise gateway("InvalidParameter", "The request body is too large.") from None


async def _respond(send: Send, response: envelope.RpcResponse) -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in response.headers.items()]
    raw.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": raw})
    await send({"type": "http.response.body", "body": response.body})
