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
from cryptography.hazmat.primitives import hashes
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from otahub.core.services import Services
from otahub.gateway.embedded.identity import (
    Identity,
    aliyun_password_ok,
    may_use,
    parse_aliyun_login,
)

SERVICE_USER = "otahub"


class BrokerHooks:
    def __init__(self, services: Services, tenant_id: int, service_password: str) -> None:
        self.services = services
        self.tenant_id = tenant_id
        self.service_password = service_password

    async def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    async def identify(self, body: dict[str, Any], *, check_secret: bool) -> Identity | None:
        client_id = str(body.get("clientid") or "")
        username = body.get("username")
        password = body.get("password")
        if username == SERVICE_USER:
            return (
                Identity("service")
                if (not check_secret or password == self.service_password)
                else None
            )
        login = parse_aliyun_login(client_id, username)
        if login is not None:
            device = await self.services.registry.find_device(
                self.tenant_id, login.device_name, login.product_key
            )
            if device is None or not device.secret:
                return None
            if check_secret and not aliyun_password_ok(login, device.secret, str(password or "")):
                return None
            return Identity(
                "aliyun", device.id, product_key=login.product_key, device_name=login.device_name
            )
        pem = body.get("cert_pem")
        if check_secret:
            if not pem:
                return None
            try:
                cert = x509.load_pem_x509_certificate(str(pem).encode())
            except ValueError:
                return None
            device = await self.services.certificates.device_for(
                cert.fingerprint(hashes.SHA256()).hex(), client_id
            )
        else:
            # Authorization after the broker authenticated the client: its id is the thing.
            device = await self.services.registry.find_device(self.tenant_id, client_id)
        if device is None or not device.is_aws_thing:
            return None
        return Identity("aws", device.id, thing=device.name)

    async def auth(self, request: Request) -> Response:
        identity = await self.identify(await self._body(request), check_secret=True)
        return JSONResponse({"result": "allow" if identity else "deny", "is_superuser": False})

    async def acl(self, request: Request) -> Response:
        body = await self._body(request)
        identity = await self.identify(body, check_secret=False)
        topic = str(body.get("topic") or "")
        allowed = identity is not None and bool(topic) and may_use(identity, topic)
        return JSONResponse({"result": "allow" if allowed else "deny"})
