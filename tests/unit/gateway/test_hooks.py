"""The HTTP hooks a production broker (EMQX) asks: the login rules of the embedded
broker, the certificate's thing included, and a clean deny for hostile bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from otahub.core.services import Services
from otahub.gateway.embedded.pki import CertificateAuthority
from otahub.gateway.hooks import BrokerHooks
from otahub.gateway.logins import DeviceLogins
from tests.unit.gateway.certified import certified_thing


@pytest.fixture
async def hooks(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    tenant = await services.accounts.tenant("1")
    routes = BrokerHooks(DeviceLogins(services, tenant.id, "pw"), services.registry)
    app = Starlette(
        routes=[
            Route("/mqtt/auth", routes.auth, methods=["POST"]),
            Route("/mqtt/acl", routes.acl, methods=["POST"]),
        ]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hooks") as client:
        yield client


async def result(client: httpx.AsyncClient, path: str, body: Any) -> str:
    if isinstance(body, bytes):
        answer = await client.post(path, content=body)
    else:
        answer = await client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    out: str = answer.json()["result"]
    return out


async def test_a_certificate_is_allowed_only_as_the_thing_it_is_attached_to(
    services: Services, hooks: httpx.AsyncClient, tmp_path: Path
) -> None:
    tenant = await services.accounts.tenant("1")
    ca = CertificateAuthority(tmp_path / "ca")
    pem = (await certified_thing(services, tenant.id, ca, "thing-a")).certificate_pem
    await certified_thing(services, tenant.id, ca, "thing-b")
    assert await result(hooks, "/mqtt/auth", {"clientid": "thing-a", "cert_pem": pem}) == "allow"
    for other in ("thing-b", "no-such-thing"):
        body = {"clientid": other, "cert_pem": pem}
        assert await result(hooks, "/mqtt/auth", body) == "deny", other


HOSTILE: dict[str, dict[str, Any] | bytes] = {
    "non-ascii-password": {"clientid": "thing-a", "password": "ü" * 20_000},
    "nul": {"clientid": "t\x00a", "username": "u"},
    "70kb-client-id": {"clientid": "x" * 70_000},
    "object-client-id": {"clientid": {"thing": "a"}},
    "list-username": {"clientid": "thing-a", "username": ["otahub"], "password": "pw"},
    "number-cert": {"clientid": "thing-a", "cert_pem": 42},
    "nul-cert": {"clientid": "thing-a", "cert_pem": "-----BEGIN CERTIFICATE-----\x00"},
    "surrogate": b'{"clientid": "\\udc80"}',
    "surrogate-password": b'{"clientid": "a", "password": "\\ud800"}',
    "deep": b"[" * 100_000,
    "not-utf8": b"\xff\xfe",
}


@pytest.mark.parametrize("body", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_hostile_logins_are_denied_cleanly(hooks: httpx.AsyncClient, body: Any) -> None:
    assert await result(hooks, "/mqtt/auth", body) == "deny"
    if isinstance(body, dict):
        acl = {**body, "topic": "$aws/things/thing-a/jobs/get", "action": "publish"}
        assert await result(hooks, "/mqtt/acl", acl) == "deny"
