"""HTTP hooks that let a production broker (EMQX's HTTP authentication and
authorization) ask otahub who a device is and which topics it may use: the same
rules the embedded broker applies.

    POST /mqtt/auth  {"clientid", "username", "password", "cert_pem"?}
         -> {"result": "allow" | "deny", "is_superuser": false}
    POST /mqtt/acl   {"clientid", "username", "topic", "action": "publish"|"subscribe"}
         -> {"result": "allow" | "deny"}
    POST /mqtt/events  EMQX's webhook: {"event": "client.connected" |
         "client.disconnected", "clientid", "username", "connected_at" |
         "disconnected_at" (epoch ms), ...} -> {"result": "ok" | "ignored"}
         The device's connection state, found by the login rules (the broker has
         checked the password already).

With a hook token (`otahub serve --hook-token`), each hook asks for
`Authorization: Bearer <token>` and answers 401 without it, so only the broker
that was given the token can ask.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from otahub.core.services.registry import RegistryService
from otahub.domain.limits import Refused, loads_json
from otahub.gateway.embedded.identity import Identity, may_use
from otahub.gateway.logins import DeviceLogins

log = logging.getLogger("otahub.gateway")


class BrokerHooks:
    def __init__(
        self, logins: DeviceLogins, registry: RegistryService, token: str | None = None
    ) -> None:
        self.logins = logins
        self.registry = registry
        self._expected = None if not token else f"Bearer {token}".encode()

    def _refused(self, request: Request) -> Response | None:
        """401 for a caller without the hook token, when one is set."""
        if self._expected is None:
            return None
        given = request.headers.get("authorization", "").encode()
        if hmac.compare_digest(given, self._expected):
            return None
        return JSONResponse(
            {"result": "deny", "message": "hook token required"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="otahub broker hooks"'},
        )

    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = loads_json(await request.body() or b"{}")
        except Refused:
            return {}
        return body if isinstance(body, dict) else {}

    async def auth(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        body = await self._body(request)
        fields = _strings(body, "clientid", "username", "password")
        identity = None
        if fields is not None and fields[0]:
            client_id, username, password = fields
            identity = await self.logins.login(
                client_id, username, password, _certificate_der(body.get("cert_pem"))
            )
        return JSONResponse({"result": "allow" if identity else "deny", "is_superuser": False})

    async def acl(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        body = await self._body(request)
        identity = await self._authorized(body)
        topic = str(body.get("topic") or "")
        allowed = identity is not None and bool(topic) and may_use(identity, topic)
        return JSONResponse({"result": "allow" if allowed else "deny"})

    async def _authorized(self, body: dict[str, Any]) -> Identity | None:
        """The client a broker asks about, which the broker has let in already."""
        fields = _strings(body, "clientid", "username")
        if fields is None or not fields[0]:
            return None
        return await self.logins.authorized(fields[0], fields[1])

    async def events(self, request: Request) -> Response:
        if refused := self._refused(request):
            return refused
        """A client connected or disconnected (EMQX webhook). Always 200 for a
        well-formed body, so the broker does not retry what otahub ignores."""
        body = await self._body(request)
        event = body.get("event")
        if event not in PRESENCE_EVENTS:
            if not isinstance(event, str) or not event:
                return JSONResponse({"result": "error", "message": "no event"}, status_code=400)
            return JSONResponse({"result": "ignored"})
        connected = PRESENCE_EVENTS[event]
        identity = await self._authorized(body)
        if identity is None or identity.device_id is None:
            return JSONResponse({"result": "ignored"})
        at = _event_time(body.get("connected_at" if connected else "disconnected_at"))
        done = await self.registry.set_connected(identity.device_id, connected, at=at)
        log.info(
            "device %s",
            "connected" if connected else "disconnected",
            extra={"device": identity.device_id, "applied": done},
        )
        return JSONResponse({"result": "ok" if done else "ignored"})


PRESENCE_EVENTS = {"client.connected": True, "client.disconnected": False}


def _event_time(value: Any) -> datetime | None:
    """EMQX stamps events in epoch milliseconds."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _strings(body: dict[str, Any], *keys: str) -> list[Any] | None:
    """String fields of a hook's body, None where absent; None for them all when one
    is there but is not a string (such a login is denied, not stringified)."""
    values = [body.get(key) for key in keys]
    if any(v is not None and not isinstance(v, str) for v in values):
        return None
    return values


MAX_CERTIFICATE_PEM_CHARS = 64 * 1024  # a device certificate is 1-2 KB; a chain a few


def _certificate_der(pem: Any) -> bytes | None:
    if not pem or not isinstance(pem, str) or len(pem) > MAX_CERTIFICATE_PEM_CHARS:
        return None
    try:
        return x509.load_pem_x509_certificate(pem.encode()).public_bytes(Encoding.DER)
    except (ValueError, UnicodeEncodeError):
        return None
