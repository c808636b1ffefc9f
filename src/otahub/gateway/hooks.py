"""HTTP hooks that let a production broker (EMQX's HTTP authentication and
authorization) ask otahub who a device is and which topics it may use: the same
rules the embedded broker applies.

    POST /mqtt/auth  {"clientid", "username", "password", "cert_pem"?}
         -> {"result": "allow" | "deny", "is_superuser": false}
    POST /mqtt/acl   {"clientid", "username", "topic", "action": "publish"|"subscribe"}
         -> {"result": "allow" | "deny"}
"""

from __future__ import annotations

import json
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from otahub.gateway.embedded.identity import may_use
from otahub.gateway.logins import DeviceLogins


class BrokerHooks:
    def __init__(self, logins: DeviceLogins) -> None:
        self.logins = logins

    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    async def auth(self, request: Request) -> Response:
        body = await self._body(request)
        der = _certificate_der(body.get("cert_pem"))
        username, password = body.get("username"), body.get("password")
        identity = await self.logins.login(
            str(body.get("clientid") or ""),
            None if username is None else str(username),
            None if password is None else str(password),
            der,
        )
        return JSONResponse({"result": "allow" if identity else "deny", "is_superuser": False})

    async def acl(self, request: Request) -> Response:
        body = await self._body(request)
        username = body.get("username")
        identity = await self.logins.authorized(
            str(body.get("clientid") or ""), None if username is None else str(username)
        )
        topic = str(body.get("topic") or "")
        allowed = identity is not None and bool(topic) and may_use(identity, topic)
        return JSONResponse({"result": "allow" if allowed else "deny"})


def _certificate_der(pem: Any) -> bytes | None:
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(str(pem).encode()).public_bytes(Encoding.DER)
    except ValueError:
        return None
