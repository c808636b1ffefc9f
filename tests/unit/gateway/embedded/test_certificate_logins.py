"""AWS things over mutual TLS on the embedded broker: a certificate attached to
thing A connects as thing A only. As thing B (or as a client id of no thing) it is
refused, and neither A's nor B's own connection notices."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from otahub.core.services import Services
from otahub.gateway.embedded.broker import EmbeddedBroker
from otahub.gateway.embedded.identity import Identity
from otahub.gateway.embedded.pki import CertificateAuthority, IssuedCertificate
from otahub.gateway.logins import DeviceLogins
from tests.integration.server import free_port
from tests.unit.gateway.certified import certified_thing
from tests.unit.gateway.embedded.mqtt_wire import Connection, login


@dataclass
class TlsGateway:
    broker: EmbeddedBroker
    port: int
    ca: CertificateAuthority
    tmp: Path

    def context(self, issued: IssuedCertificate) -> ssl.SSLContext:
        name = issued.certificate_id[:12]
        cert, key = self.tmp / f"{name}.pem", self.tmp / f"{name}.key"
        cert.write_text(issued.certificate_pem)
        key.write_text(issued.private_key_pem)
        context = ssl.create_default_context(cafile=str(self.ca.path))
        context.load_cert_chain(str(cert), str(key))
        return context


@pytest.fixture
async def gateway(services: Services, tmp_path: Path) -> AsyncIterator[TlsGateway]:
    tenant = await services.accounts.tenant("1")
    logins = DeviceLogins(services, tenant.id, "service-password")
    ca = CertificateAuthority(tmp_path / "ca")
    cert, key = ca.server_files([])

    async def nothing(*args: object) -> None:
        return None

    port = free_port()
    broker = EmbeddedBroker(
        host="127.0.0.1",
        port=free_port(),
        tls={"certfile": str(cert), "keyfile": str(key), "cafile": str(ca.path)},
        tls_port=port,
        authenticate=logins.login,
        on_message=nothing,
        on_presence=nothing,
        workers=1,
    )
    await broker.start()
    try:
        yield TlsGateway(broker, port, ca, tmp_path)
    finally:
        await broker.stop()


async def connected_thing(gw: TlsGateway, name: str, tls: ssl.SSLContext) -> Connection:
    conn, code = await login(gw.port, name, tls=tls)
    assert code == 0
    assert await conn.subscribe(f"$aws/things/{name}/jobs/notify") == 0
    return conn


async def still_receives(gw: TlsGateway, conn: Connection, name: str) -> None:
    topic = f"$aws/things/{name}/jobs/notify"
    await gw.broker.publish(topic, name.encode(), qos=0)
    assert await conn.next_publish() == (topic, name.encode())


async def test_a_certificate_of_thing_a_cannot_connect_as_thing_b(
    services: Services, gateway: TlsGateway
) -> None:
    tenant = await services.accounts.tenant("1")
    a_tls = gateway.context(await certified_thing(services, tenant.id, gateway.ca, "thing-a"))
    b_tls = gateway.context(await certified_thing(services, tenant.id, gateway.ca, "thing-b"))
    a = await connected_thing(gateway, "thing-a", a_tls)
    b = await connected_thing(gateway, "thing-b", b_tls)
    for claimed in ("thing-b", "no-such-thing", "thing-b", "no-such-thing"):
        intruder, code = await login(gateway.port, claimed, tls=a_tls)
        assert code == 5, claimed
        assert await intruder.closed_by_broker()
    await still_receives(gateway, a, "thing-a")
    await still_receives(gateway, b, "thing-b")
    identities = gateway.broker.identities
    assert (identities["thing-a"].thing, identities["thing-b"].thing) == ("thing-a", "thing-b")
    assert "no-such-thing" not in identities
    assert isinstance(identities["thing-a"], Identity)
    a.close()
    b.close()
